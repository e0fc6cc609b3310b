"""`se-keras data`: write image folders as sharded TFRecords, inspect datasets."""


def register(subparsers):
    parser = subparsers.add_parser(
        "data", help="datasets: write TFRecords (for TPUs), show what a --data spec holds"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    write = actions.add_parser(
        "to-tfrecords",
        help="write an image folder as sharded TFRecords in the ImageNet/TPU layout",
        description="Write a folder of class subfolders (or any --data spec) as sharded "
        "TFRecords (image/encoded, image/class/label, ...) with dataset_info.json. Shards "
        "are written under temporary names and renamed when complete.",
    )
    write.add_argument("data", metavar="FOLDER", help="image folder (or digits, folder:PATH)")
    write.add_argument("output", metavar="OUTPUT_DIR", help="destination folder")
    write.add_argument("--val-split", default="none",
                       help="none (all images in train; default), a count or fraction per "
                       "class to hold out as validation, or auto (train/ and val/ subfolders)")
    write.add_argument("--shards", type=int, default=None, help="training shards (~100 MiB each)")
    write.add_argument("--val-shards", type=int, default=None, help="validation shards")
    write.add_argument("--no-shuffle", action="store_true",
                       help="keep the folder order (default: a seeded shuffle mixes classes)")
    write.add_argument("--seed", type=int, default=0)
    write.add_argument("--skip-bad-files", action="store_true",
                       help="skip unreadable files with a warning instead of failing")
    write.set_defaults(run=run_to_tfrecords)
    info = actions.add_parser("info", help="classes and split sizes of a --data spec")
    info.add_argument("data", metavar="DATA", help="digits, folder:PATH, tfrecord:PATH, tfds:NAME")
    info.add_argument("--data-dir", default=None)
    info.add_argument("--val-split", default="auto")
    info.set_defaults(run=run_info)


def run_to_tfrecords(args):
    import logging

    from se_keras.data.to_tfrecords import write_tfrecords

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = write_tfrecords(args.data, args.output, val_split=args.val_split,
                           num_shards=args.shards, val_shards=args.val_shards,
                           shuffle=not args.no_shuffle, seed=args.seed,
                           skip_bad_files=args.skip_bad_files)
    for name, split in info["splits"].items():
        print(f"{name}: {split['num_examples']} examples in {split['num_shards']} shard(s)")
    print(f"{len(info['class_names'])} classes; wrote {args.output}")
    return 0


def run_info(args):
    from se_keras.data import sources

    source = sources.get_source(args.data, data_dir=args.data_dir, val_split=args.val_split)
    print(sources.describe(source))
    names = source.class_names
    print("classes: " + ", ".join(names[:20]) + (f", ... ({len(names)})" if len(names) > 20 else ""))
    return 0
