"""`se-keras inspect`: the paper's excitation plots for a model and a labelled dataset."""


def register(subparsers):
    parser = subparsers.add_parser(
        "inspect",
        help="plot the mean SE excitations per class at several depths (the paper's section 7)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a training run directory (se-keras train)")
    source.add_argument("--model", help="a builder name, e.g. SEResNet50")
    parser.add_argument("--weights", default=None,
                        help="with --model: 'imagenet', a tag or a weights file (default: none)")
    parser.add_argument("--data", default="digits",
                        help="labelled images: digits, folder:PATH, tfrecord:PATH or tfds:NAME")
    parser.add_argument("--split", choices=("validation", "train"), default="validation")
    parser.add_argument("--batches", type=int, default=20, help="batches to average over")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
    parser.add_argument("--blocks", default=None,
                        help="comma-separated SE layer names to plot (default: first block "
                        "of each stage and the last one)")
    parser.add_argument("--output", default="runs/inspect", help="folder for the PNG files")
    parser.set_defaults(run=run)


def run(args):
    from se_keras.data import get_source
    from se_keras.data.pipeline import eval_dataset
    from se_keras.excitations import collect_excitations
    from se_keras.excitations import plot_excitations
    from se_keras.preprocessing import get_preprocessing

    data = get_source(args.data)
    split = data.validation if args.split == "validation" and data.validation else data.train
    if args.checkpoint:
        from se_keras.training.run_files import restore_model

        model, _ = restore_model(args.checkpoint)
    else:
        from se_keras.applications import get_builder

        builder = get_builder(args.model)
        kwargs = {"weights": args.weights}
        if args.size:
            kwargs["input_shape"] = (args.size, args.size, 3)
        model = builder(**kwargs)
    preprocessing = get_preprocessing(model)
    if args.size and args.size != preprocessing.size:
        raise ValueError(
            f"The run's model takes {preprocessing.size}x{preprocessing.size} images; --size "
            f"applies to --model only. Received: size={args.size}"
        )
    dataset = eval_dataset(split, num_classes=data.num_classes, global_batch_size=args.batch_size,
                           preprocessing=preprocessing, pad=False)
    stats = collect_excitations(model, dataset, max_batches=args.batches)
    blocks = args.blocks.split(",") if args.blocks else None
    paths = plot_excitations(stats, args.output, blocks=blocks, class_names=data.class_names)
    specificity = stats.class_specificity()
    print(f"{sum(stats.counts)} images, {len(stats.classes)} classes, {len(stats.blocks)} SE blocks")
    for block in stats.blocks:
        print(f"  {block}: class specificity {specificity[block]:.4f}")
    for path in paths:
        print(f"wrote {path}")
    return 0
