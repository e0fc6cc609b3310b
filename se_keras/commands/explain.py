"""`se-keras explain IMAGE...`: one PNG per image with its top classes, SE gates and Grad-CAM."""


def register(subparsers):
    parser = subparsers.add_parser(
        "explain",
        help="explain predictions: top-5 classes, SE gates of every block and Grad-CAM, one PNG "
        "per image",
        description="For each image, write a PNG with the model's input crop, its top-5 "
        "classes, the SE gate vectors of the chosen blocks as bar charts grouped by stage, and "
        "the Grad-CAM heatmap of the last stage overlaid on the image. The model is a training "
        "run's latest checkpoint (--run) or a builder with pretrained weights (--model, "
        "ImageNet class names).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="JPEG/PNG/GIF/BMP files, or folders of them (searched recursively)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", dest="run_dir", default=None, metavar="RUN_DIR",
                        help="a training run directory")
    source.add_argument("--model", default=None,
                        help="builder name when no --run is given (default: SEResNet50)")
    parser.add_argument("--weights", default=None,
                        help="weights for --model: imagenet, a tag, a weights file, or none "
                        "for random weights (default: imagenet)")
    parser.add_argument("--blocks", default=None,
                        help="comma-separated SE layer or stage names to draw, e.g. "
                        "stage4_block1_se,stage3 (default: every SE block)")
    parser.add_argument("--class", dest="target_class", default=None, metavar="CLASS",
                        help="the class Grad-CAM explains: an index or a class name "
                        "(default: each image's top-1)")
    parser.add_argument("--output", default="runs/explain",
                        help="folder for the PNG files (default: runs/explain)")
    parser.set_defaults(run=run)


def _output_names(files):
    """`<stem>.explain.png` per image, numbered where two images share a stem."""
    names, seen = [], {}
    for path in files:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        names.append(f"{path.stem}.explain.png" if not count else
                     f"{path.stem}-{count + 1}.explain.png")
    return names


def run(args):
    import pathlib

    from se_keras.explain import explain
    from se_keras.explain import load_image
    from se_keras.explain import plot_explanation
    from se_keras.training.evaluation import image_files

    files = image_files(args.images)
    # Every image is read and decoded before the model is built, so a
    # missing or broken file fails in a second and writes nothing.
    pixels = [load_image(path) for path in files]
    if args.run_dir is not None:
        if args.weights is not None:
            raise ValueError("--weights applies to --model only; a run uses its own checkpoint. "
                             f"Received: weights={args.weights!r}")
        from se_keras.training.run_files import restore_model

        model, config = restore_model(args.run_dir)
        class_names = list(config["class_names"])
        origin = f"run {args.run_dir}"
    else:
        from se_keras.applications import get_builder
        from se_keras.applications import imagenet_class_names

        name = args.model or "SEResNet50"
        weights = args.weights or "imagenet"
        builder = get_builder(name)
        model = builder(weights=None if weights.lower() == "none" else weights)
        classes = model.output_shape[-1]
        class_names = imagenet_class_names() if classes == 1000 else [
            str(i) for i in range(classes)]
        origin = f"{name}, weights {weights}"
    output = pathlib.Path(args.output)
    for path, image, name in zip(files, pixels, _output_names(files)):
        result = explain(model, image, blocks=args.blocks, target_class=args.target_class,
                         class_names=class_names)
        written = plot_explanation(result, output / name, title=f"{path}  ({origin})")
        print(path)
        for rank, (_, label, prob) in enumerate(result.top, 1):
            print(f"  {rank}. {label:<30} {prob:.4f}")
        print(f"  Grad-CAM of {result.target_name!r} at {result.cam_layer}; wrote {written}")
    return 0
