"""The training options on the command line: one `--field-name` per `TrainConfig` field.

Example:
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> overrides_from_args(parser.parse_args(["--epochs", "3", "--no-flip"]))
{'epochs': '3', 'flip': 'false'}
"""

import dataclasses

from se_keras.training.config import field_types
from se_keras.training.config import TrainConfig


def _field_help():
    """{field: description} from `TrainConfig`'s docstring ("name, other: text" entries)."""
    import re

    helps, current = {}, []
    for line in (TrainConfig.__doc__ or "").splitlines():
        match = re.match(r"^        ([a-z_, ]+): (.*)$", line)
        if match:
            current = [name.strip() for name in match.group(1).split(",")]
            for name in current:
                helps[name] = match.group(2).strip()
        elif line.startswith("            ") and current:
            for name in current:
                helps[name] += " " + line.strip()
        else:
            current = []
    return helps


def add_arguments(parser):
    """Adds one `--field-name` option per `TrainConfig` field to an argparse parser.

    Options default to `argparse.SUPPRESS`, so `overrides_from_args` sees
    only what was given on the command line.

    Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> parser.parse_args(["--lr", "0.2"]).lr
    '0.2'
    """
    import argparse

    defaults = TrainConfig()
    types = field_types()
    helps = _field_help()
    for field in dataclasses.fields(TrainConfig):
        if field.name == "recipe":
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        kind = types[field.name]
        metavar = {bool: "BOOL", int: "N", float: "X", list: "X,Y", dict: "K=V,..."}.get(
            kind, "VALUE")
        if kind is bool:
            # --flip, --no-flip, or --flip=false
            parser.add_argument(flag, dest=field.name, nargs="?", const="true",
                                default=argparse.SUPPRESS, metavar=metavar,
                                help=f"{helps.get(field.name, '')} (default: {default})")
            parser.add_argument("--no-" + field.name.replace("_", "-"), dest=field.name,
                                action="store_const", const="false", default=argparse.SUPPRESS,
                                help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, dest=field.name, default=argparse.SUPPRESS,
                                metavar=metavar,
                                help=f"{helps.get(field.name, '')} (default: {default})")


def overrides_from_args(args):
    """The `TrainConfig` fields given on the command line, as {field: string}.

    Example:
    >>> import argparse
    >>> overrides_from_args(argparse.Namespace(lr="0.2", recipe="cifar"))
    {'lr': '0.2'}
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in known and k != "recipe"}
