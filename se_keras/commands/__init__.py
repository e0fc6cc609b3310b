"""Subcommands of the `se-keras` command line, one module each."""
