"""`se-keras evaluate RUN_DIR`: top-1 / top-5 of a training run's latest checkpoint."""


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="top-1 / top-5 of a training run on its validation split (or another dataset)",
        description="Evaluate a training run's latest checkpoint with the shared eval "
        "preprocessing. By default on the run's own validation split.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/NAME)")
    parser.add_argument("--data", default=None,
                        help="dataset spec (default: the run's): digits, folder:PATH, "
                        "tfrecord:PATH, tfds:NAME")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--val-split", default=None, help="validation split (default: the run's)")
    parser.add_argument("--split", choices=("validation", "train"), default="validation")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args):
    import json

    from se_keras.training.evaluation import evaluate_run

    metrics = evaluate_run(args.run_dir, data=args.data, split=args.split,
                           batch_size=args.batch_size, data_dir=args.data_dir,
                           val_split=args.val_split)
    if args.format == "json":
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{metrics['data']} ({metrics['split']}, {metrics['examples']} images): "
              f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f}, "
              f"loss {metrics['loss']:.4f}")
    return 0
