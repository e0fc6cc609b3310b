"""`se-keras convert`: a timm checkpoint -> Keras `.weights.h5`."""


def register(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a timm checkpoint (.safetensors or .pth) to Keras .weights.h5",
        description="Builds the Keras model of a timm architecture, loads the "
        "checkpoint through the converter (every tensor checked) and writes "
        "its weights, and the checkpoint's preprocessing record beside them "
        "(out.preprocessing.json, read back by the builders). Load them with the "
        "matching builder: SEResNet50(weights='out.weights.h5', layout=...).",
    )
    parser.add_argument("timm_name", help="timm model name, e.g. seresnet50 or legacy_seresnet50")
    parser.add_argument("checkpoint", help="the timm checkpoint file")
    parser.add_argument("output", help="where to write the .weights.h5 file")
    parser.add_argument(
        "--no-top", action="store_true", help="drop the classifier (include_top=False)"
    )
    parser.set_defaults(run=run)


def run(args):
    import pathlib

    from se_keras.preprocessing import get_preprocessing
    from se_keras.preprocessing import sidecar_path
    from se_keras.applications.timm_names import from_timm
    from se_keras.applications.timm_names import parse_timm_name
    from se_keras.weights.loading import save_weights_atomically

    output = pathlib.Path(args.output)
    if not output.name.endswith(".weights.h5"):
        raise ValueError(
            f"The output file name must end in .weights.h5. Received: output={args.output!r}"
        )
    model = from_timm(args.timm_name, args.checkpoint, include_top=not args.no_top)
    output.parent.mkdir(parents=True, exist_ok=True)
    record = get_preprocessing(model).replace(weights=str(args.checkpoint))
    save_weights_atomically(model, output, record)
    sidecar = sidecar_path(output)
    layout = parse_timm_name(args.timm_name)[1]
    print(f"wrote {output} ({model.name}, layout {layout!r}, {len(model.weights)} weights) "
          f"and {sidecar} ({record.interpolation}, crop_pct {record.crop_pct}, "
          f"size {record.size})")
    return 0
