"""`se-keras predict IMAGE...`: the top-5 classes of images, from a run or a pretrained model."""


def register(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="top-5 classes of image files (a training run or pretrained ImageNet weights)",
        description="Classify image files with a training run's latest checkpoint "
        "(--run) or a pretrained model (--model, ImageNet class names).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG/GIF/BMP files")
    parser.add_argument("--run", dest="run_dir", default=None, metavar="RUN_DIR",
                        help="a training run directory")
    parser.add_argument("--model", default="SEResNet50",
                        help="builder name when no --run is given (default: SEResNet50)")
    parser.add_argument("--weights", default="imagenet",
                        help="pretrained weights for --model (default: imagenet)")
    parser.add_argument("--top", type=int, default=5, help="classes per image (default: 5)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args):
    import json

    from se_keras.training.evaluation import predict_images

    results = predict_images(args.images, run_dir=args.run_dir, model=args.model,
                             weights=args.weights, top=args.top)
    if args.format == "json":
        print(json.dumps([{"image": p, "top": [{"class": c, "probability": s} for c, s in top]}
                          for p, top in results], indent=2))
        return 0
    for path, top in results:
        print(path)
        for rank, (name, prob) in enumerate(top, 1):
            print(f"  {rank}. {name:<30} {prob:.4f}")
    return 0
