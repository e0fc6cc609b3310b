"""`se-keras train`: train an SE network (the no-argument default runs in minutes on a CPU)."""

EPILOG = """\
recipes: default (SE-ResNet-20 on the embedded digits), paper (ImageNet,
SGD lr 0.6 @ 1024, /10 every 30 epochs, 100 epochs), modern (cosine,
warmup, label smoothing 0.1), cifar (He et al.'s CIFAR schedule), or a
.json file of options. Every option below overrides the recipe.

examples:
  se-keras train
  se-keras train --recipe cifar --data folder:cifar10/train --val-split 500
  se-keras train --recipe cifar --model-kwargs se=false --time-budget-min 30
  se-keras train --recipe paper --data tfds:imagenet2012 --data-dir ~/tfds --strategy mirrored
  se-keras train --resume --run-dir runs/my-run
"""


def register(subparsers):
    import argparse

    from se_keras.training import command_line
    from se_keras.training import recipes

    parser = subparsers.add_parser(
        "train",
        help="train an SE network (custom loop; any tf.distribute strategy)",
        description="Train an SE network with the distributed custom loop. With no "
        "arguments: SE-ResNet-20 on the embedded digits, a few minutes on a CPU.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipe", default="default",
                        help=f"{', '.join(recipes.RECIPES)} or a .json file (default: default)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir (or runs/--name) from its latest "
                        "checkpoint, with its saved config plus the options given here")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON and exit")
    command_line.add_arguments(parser)
    parser.set_defaults(run=run)


def resolve_from_args(args):
    """The `TrainConfig` that the command line asks for (a resumed run's saved one plus overrides)."""
    import pathlib

    from se_keras.training import config as config_lib
    from se_keras.training import run_files
    from se_keras.training.command_line import overrides_from_args

    overrides = overrides_from_args(args)
    if args.resume:
        run_dir = overrides.get("run_dir") or (
            str(pathlib.Path(overrides.get("output_root", "runs")) / overrides["name"])
            if overrides.get("name") else None
        )
        if not run_dir:
            raise ValueError("--resume needs the run: pass --run-dir PATH or --name NAME. "
                             "Received: run_dir=None")
        saved = run_files.read_config(run_dir).get("train", {})
        overrides["run_dir"] = run_dir
        return config_lib.resolve_config(base=saved, overrides=overrides)
    return config_lib.resolve_config(args.recipe, overrides)


def run(args):
    import json

    config = resolve_from_args(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from se_keras.training import train

    results = train(config, resume=args.resume)
    return 0 if results is not None else 1
