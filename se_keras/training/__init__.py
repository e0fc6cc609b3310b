"""Training: the distributed custom loop, recipes, checkpoints and run files."""
