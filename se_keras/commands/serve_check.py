"""`se-keras serve-check`: load an export the way TF Serving does and try it."""


def register(subparsers):
    parser = subparsers.add_parser(
        "serve-check",
        help="load a TF Serving export, print its signatures and predict on images",
        description="Loads BASE's latest integer version (TF Serving's default policy) with "
        "tf.saved_model.load, prints every signature's inputs and outputs, replays the "
        "warm-up file, and answers REST-format requests ({\"instances\": [{\"b64\": ...}]}) "
        "built from the given images, or a JSON body given with --request.",
    )
    parser.add_argument("base", help="the export base folder (or one version folder)")
    parser.add_argument("--version", type=int, default=None, help="version (default: latest)")
    parser.add_argument("--image", nargs="*", default=[], metavar="PATH",
                        help="image files to predict on (JPEG, PNG, ...)")
    parser.add_argument("--request", default=None, metavar="JSON_FILE",
                        help="a REST predict body to answer (printed as TF Serving would)")
    parser.add_argument("--signature", default="serving_default",
                        help="signature for --image and --request (default: serving_default); "
                        "a body's own 'signature_name' wins")
    parser.set_defaults(run=run)


def _shape(spec):
    return "unknown" if spec.shape.rank is None else str(tuple(
        -1 if d is None else d for d in spec.shape.as_list()))


def describe_signatures(loaded):
    """Lines describing each signature's inputs and outputs (name, dtype, shape)."""
    lines = []
    for name in sorted(loaded.signatures):
        signature = loaded.signatures[name]
        lines.append(f"signature {name!r}:")
        for key, spec in sorted(signature.structured_input_signature[1].items()):
            lines.append(f"  input   {key}: {spec.dtype.name} {_shape(spec)}")
        for key, spec in sorted(signature.structured_outputs.items()):
            lines.append(f"  output  {key}: {spec.dtype.name} {_shape(spec)}")
    return lines


def run(args):
    import json
    import pathlib

    import tensorflow as tf

    from se_keras.export import rest
    from se_keras.export import signatures
    from se_keras.export import versions
    from se_keras.export import warmup

    base = pathlib.Path(args.base)
    missing = [path for path in args.image if not pathlib.Path(path).is_file()]
    if missing:
        raise ValueError(f"No such image file. Received: image={missing[0]!r}")
    if args.request and not pathlib.Path(args.request).is_file():
        raise ValueError(f"No such request file. Received: request={args.request!r}")
    if args.version is not None:
        version_dir = base / str(args.version)
        if not (version_dir / "saved_model.pb").exists():
            raise ValueError(
                f"No SavedModel in {version_dir}. Received: version={args.version}"
            )
    else:
        version_dir = versions.latest_version_dir(base)
    loaded = tf.saved_model.load(str(version_dir))
    print(f"export: {version_dir}")
    for line in describe_signatures(loaded):
        print(line)
    metadata = versions.read_metadata(version_dir)
    if metadata:
        print(f"preprocessing: {json.dumps(metadata['preprocessing'])}")
        print(f"verified max |served - keras|: {metadata.get('verified_max_abs_difference')}")

    warmup_file = version_dir / warmup.WARMUP_DIR / warmup.WARMUP_FILE
    if warmup_file.exists():
        records = warmup.read_warmup_file(warmup_file)
        for signature_name, inputs in records:
            signature = loaded.signatures[signature_name]
            signature(**{k: tf.constant(v) for k, v in inputs.items()})
        print(f"warm-up: {len(records)} requests replayed")
    else:
        print("warm-up: no tf_serving_warmup_requests file (first request will be slow)")

    def answer(body):
        name = body.get("signature_name", args.signature)
        if name not in loaded.signatures:
            raise ValueError(
                f"No such signature; known: {', '.join(sorted(loaded.signatures))}. "
                f"Received: signature={name!r}"
            )
        return rest.predict(loaded.signatures[name], body)

    failures = 0
    if args.request:
        try:
            body = json.loads(pathlib.Path(args.request).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"The request file {args.request} is not valid JSON ({error}). "
                f"Received: request={args.request!r}"
            ) from error
        try:
            print(json.dumps(answer(body)))
        except tf.errors.InvalidArgumentError as error:
            print(json.dumps({"error": error.message}))
            failures += 1
    for path in args.image:
        data = pathlib.Path(path).read_bytes()
        body = {"instances": [{"b64": rest.base64_image(data)}]}
        try:
            prediction = answer(body)["predictions"][0]
        except tf.errors.InvalidArgumentError as error:
            print(f"{path}: error: {error.message}")
            failures += 1
            continue
        if not isinstance(prediction, dict) or signatures.TOP_K_CLASSES not in prediction:
            print(f"{path}: {json.dumps(prediction)[:300]}")
            continue
        names = prediction.get(signatures.TOP_K_LABELS) or [
            str(c) for c in prediction[signatures.TOP_K_CLASSES]]
        scores = prediction.get(signatures.TOP_K_PROBABILITIES) or [
            prediction[signatures.PROBABILITIES][c] for c in prediction[signatures.TOP_K_CLASSES]]
        best = ", ".join(f"{n} {s:.4f}" for n, s in zip(names, scores))
        print(f"{path}: {best}")
    return 1 if failures else 0
