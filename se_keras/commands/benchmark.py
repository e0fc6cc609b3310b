"""`se-keras benchmark`: SE models against their plain twins, and a matmul, in one run."""


def register(subparsers):
    parser = subparsers.add_parser(
        "benchmark",
        help="time SE models against their se=False twins (interleaved, one process)",
    )
    parser.add_argument(
        "--models", default="SEResNet50:224,SEResNeXt50:224,SEMobileNet:224,SEResNet20:32",
        help="comma-separated NAME:SIZE pairs (default: %(default)s)",
    )
    parser.add_argument("--batch", default="1,16", help="inference batch sizes (default: 1,16)")
    parser.add_argument("--train-batch", type=int, default=8,
                        help="training-step batch size, 0 to skip (default: 8)")
    parser.add_argument("--rounds", type=int, default=7,
                        help="timed rounds (SE/plain pairs) per comparison (default: 7)")
    parser.add_argument("--xla", action="store_true", help="compile with XLA (jit_compile)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--data-format", choices=("channels_last", "channels_first"),
                        default="channels_last", help="image data format (channels_first: GPU)")
    parser.add_argument("--mixed-precision", choices=("none", "mixed_float16", "mixed_bfloat16"),
                        default="none", help="dtype policy (mixed_float16 on GPU)")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="n of the n x n x n float32 reference matmul (default: 2048)")
    parser.add_argument("--optimize", action="store_true",
                        help="time and profile inference on optimize_for_inference copies of "
                        "both twins (what se-keras export serves)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--profile", metavar="DIR",
                        help="also profile each SE model's inference (CPU, no XLA), with ops "
                             "run one at a time (in a subprocess) and in TensorFlow's default "
                             "schedule, and write the traces here for TensorBoard's Profile tab")
    parser.set_defaults(run=run)


def run(args):
    import keras
    import tensorflow as tf

    from se_keras import benchmarking

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.config.set_image_data_format(args.data_format)
    if args.mixed_precision != "none":
        keras.config.set_dtype_policy(args.mixed_precision)
    models = []
    for item in args.models.split(","):
        name, _, size = item.partition(":")
        if not size.isdigit():
            raise ValueError(f"Each model must be NAME:SIZE. Received: models={args.models!r}")
        models.append((name, int(size)))
    batches = tuple(int(b) for b in args.batch.split(","))
    devices = [d.name for d in tf.config.list_logical_devices()]
    print(f"devices: {devices}; xla={args.xla}; data_format={args.data_format}; "
          f"policy={keras.config.dtype_policy().name}", flush=True)
    _, _, table = benchmarking.run(
        models, batches, args.train_batch, args.xla, args.rounds, args.json,
        log=lambda line: print(line, flush=True), matmul_size=args.matmul_size,
        profile_dir=args.profile, optimize=args.optimize,
    )
    print()
    print(table)
    return 0
