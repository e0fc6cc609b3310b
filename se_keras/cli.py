"""The `se-keras` command line.

Each subcommand lives in its own module under `se_keras.commands` and
defines `register(subparsers)` (argparse only, no heavy imports, so that
`--help` is instant) and `run(args)`. Add a command by listing its module in
`COMMANDS`.
"""

import argparse
import importlib
import os
import sys

from se_keras.version import __version__

# Module names under se_keras.commands, in the order `--help` lists them.
COMMANDS = ("models", "weights", "convert", "train", "evaluate", "predict", "data", "benchmark", "inspect", "explain", "export", "serve_check")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="se-keras",
        description="Squeeze-and-Excitation networks for Keras 3: models, "
        "pretrained weights, training and export.",
    )
    parser.add_argument(
        "--version", action="version", version=f"se-keras {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f"se_keras.commands.{module_name}")
        module.register(subparsers)
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up chatter hides the command's own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as error:
        # Expected failures (bad input, missing or damaged files, a full
        # disk) are one line and exit code 2; a traceback means a bug.
        print(f"se-keras {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
