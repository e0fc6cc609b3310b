"""`se-keras predict IMAGE...`: the top-5 classes of images, from a run or a pretrained model."""


def register(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="top-5 classes of image files (a training run or pretrained ImageNet weights)",
        description="Classify image files with a training run's latest checkpoint "
        "(--run) or a pretrained model (--model, ImageNet class names).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="JPEG/PNG/GIF/BMP files, or folders of them (searched recursively)")
    parser.add_argument("--run", dest="run_dir", default=None, metavar="RUN_DIR",
                        help="a training run directory")
    parser.add_argument("--model", default="SEResNet50",
                        help="builder name when no --run is given (default: SEResNet50)")
    parser.add_argument("--weights", default="imagenet",
                        help="pretrained weights for --model: imagenet, a tag, a weights "
                        "file, or none (default: imagenet)")
    parser.add_argument("--top", type=int, default=5, help="classes per image (default: 5)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args):
    import json

    from se_keras.training.evaluation import predict_images

    import sys

    results = predict_images(args.images, run_dir=args.run_dir, model=args.model,
                             weights=args.weights, top=args.top)
    failed = [r for r in results if r.error]
    if args.format == "json":
        print(json.dumps([
            {"image": r.path, "top": [{"class": c, "probability": s} for c, s in r.top]}
            if r.error is None else {"image": r.path, "error": r.error}
            for r in results], indent=2))
    else:
        for r in results:
            if r.error:
                continue
            print(r.path)
            for rank, (name, prob) in enumerate(r.top, 1):
                print(f"  {rank}. {name:<30} {prob:.4f}")
    for r in failed:
        print(f"se-keras predict: error: {r.path}: {r.error}", file=sys.stderr)
    # Every good image is answered; a bad one is named and fails the command.
    return 2 if failed else 0
