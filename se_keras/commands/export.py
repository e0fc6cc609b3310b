"""`se-keras export`: a model -> a versioned SavedModel for TensorFlow Serving (or TFLite)."""

from se_keras._constants import INTERPOLATIONS

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "dynamic")


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a model for TensorFlow Serving (SavedModel that takes JPEG/PNG bytes) "
        "or TFLite",
        description="Writes OUTPUT/<version>/, a SavedModel in the layout TensorFlow "
        "Serving watches: signature 'serving_default' takes encoded images (REST: "
        '{"b64": ...}) and runs decoding and the eval preprocessing in the graph; '
        "'preprocessed' takes float32 pixels. Outputs: probabilities, top_k_classes, "
        "top_k_probabilities, top_k_labels (with class names). The export is checked "
        "against the Keras model before it is renamed into place. Mixed precision "
        "models are exported as float32 unless --keep-dtype is given.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        help="a builder name (e.g. SEResNet50, with --weights) or a .keras file",
    )
    source.add_argument(
        "--checkpoint",
        metavar="RUN_DIR",
        help="a training run directory (config.json + checkpoints/): its model, "
        "preprocessing and class names",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="with a builder name: 'imagenet', a pretrained tag, or a .weights.h5 / "
        ".safetensors / .pth file (default: random initialization)",
    )
    parser.add_argument("--output", required=True, help="the model's base folder (TF Serving's "
                        "--model_base_path), or the .tflite file with --format tflite")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: the next one in OUTPUT)")
    parser.add_argument("--classes", type=int, default=None,
                        help="with a builder name: number of classes (builder default)")
    parser.add_argument("--size", type=int, default=None,
                        help="input size (default: the model's, or the weights')")
    parser.add_argument("--crop-pct", type=float, default=None,
                        help="eval center-crop fraction (default: the weights', else 0.875)")
    parser.add_argument("--mean", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                        help="normalization mean of [0, 1] pixels (default: ImageNet's)")
    parser.add_argument("--std", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                        help="normalization std of [0, 1] pixels (default: ImageNet's)")
    parser.add_argument("--interpolation", default=None, choices=INTERPOLATIONS,
                        help="resize method (default: the weights', else bilinear)")
    parser.add_argument("--labels", default=None,
                        help="text file with one class name per line (default: ImageNet "
                        "names for 1000 classes, the run's class names for --checkpoint)")
    parser.add_argument("--top-k", type=int, default=5, help="size of the top-k outputs")
    parser.add_argument("--keep-dtype", action="store_true",
                        help="export a mixed precision model as it is instead of as float32")
    parser.add_argument("--no-optimize", action="store_true",
                        help="serve the model's own graph instead of its inference-optimized "
                        "copy (BatchNorm folded into convolutions, SE squeezed before the "
                        "last 1x1 convolution; the same function, faster)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check of the export against the Keras model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--format", choices=FORMATS, default="saved_model",
                        help="saved_model (TF Serving, default) or tflite (float pixels input)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="with --format tflite: 'dynamic' stores int8 weights "
                        "(dynamic-range quantization)")
    parser.set_defaults(run=run)


def _read_labels(path):
    import pathlib

    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f"No such labels file. Received: labels={path!r}")
    return [line.strip() for line in file.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def load_model(args):
    """The model, its preprocessing and its class names, from the command's arguments."""
    import os

    preprocessing, labels = {}, None
    if args.checkpoint:
        from se_keras.training.run_files import restore_model

        # The restored model carries the run's preprocessing record.
        model, config = restore_model(args.checkpoint)
        labels = config.get("class_names")
        if args.weights:
            raise ValueError(
                "--weights goes with --model, not --checkpoint. "
                f"Received: weights={args.weights!r}"
            )
    elif args.model.endswith(".keras") or os.path.isfile(args.model):
        import keras

        if not os.path.isfile(args.model):
            raise ValueError(f"No such .keras file. Received: model={args.model!r}")
        try:
            model = keras.models.load_model(args.model)
        except Exception as error:  # noqa: BLE001 - zip, JSON and h5 errors alike
            raise ValueError(
                f"Cannot load the .keras file {args.model}: {type(error).__name__}: "
                f"{str(error).strip().splitlines()[0][:300]}. Received: model={args.model!r}"
            ) from error
        if args.weights:
            from se_keras.weights.keras_files import load_keras_weights

            load_keras_weights(model, args.weights)
    else:
        from se_keras.applications import get_builder

        builder = get_builder(args.model)
        kwargs = {"weights": args.weights}
        if args.classes is not None:
            kwargs["classes"] = args.classes
        if args.size is not None:
            kwargs["input_shape"] = (args.size, args.size, 3)
        model = builder(**kwargs)
    overrides = {
        "size": args.size, "crop_pct": args.crop_pct, "mean": args.mean, "std": args.std,
        "interpolation": args.interpolation,
    }
    preprocessing.update({k: v for k, v in overrides.items() if v is not None})
    if args.labels:
        labels = _read_labels(args.labels)
    return model, preprocessing, labels


def run(args):
    if args.format == "tflite":
        from se_keras.export.tflite import export_tflite

        model, preprocessing, _ = load_model(args)
        path = export_tflite(
            model, args.output, quantize=None if args.quantize == "none" else args.quantize,
            preprocessing=preprocessing, keep_dtype=args.keep_dtype,
            optimize=not args.no_optimize,
        )
        print(f"wrote {path}")
        return 0
    if args.quantize != "none":
        raise ValueError(
            f"--quantize applies to --format tflite only. Received: quantize={args.quantize!r}"
        )
    from se_keras.export import export_for_serving

    model, preprocessing, labels = load_model(args)
    export_for_serving(
        model,
        args.output,
        version=args.version,
        preprocessing=preprocessing,
        labels=labels,
        top_k=args.top_k,
        keep_dtype=args.keep_dtype,
        verify=not args.no_verify,
        overwrite=args.overwrite,
        optimize=not args.no_optimize,
    )
    return 0
