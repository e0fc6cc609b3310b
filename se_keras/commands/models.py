"""`se-keras models`: the builders, with parameters and multiply-adds measured by the package."""


def register(subparsers):
    parser = subparsers.add_parser(
        "models", help="list the model builders (with --measure: params and GFLOPs)"
    )
    parser.add_argument(
        "--measure", action="store_true",
        help="build each model (weights=None) and count trainable params and "
        "multiply-adds at its default size, with and without SE (slow)",
    )
    parser.add_argument("names", nargs="*", help="only these builders")
    parser.set_defaults(run=run)


def measure(name):
    """(size, params, GFLOPs, plain params, plain GFLOPs) of one builder at its default size."""
    import keras

    from se_keras.applications import get_builder
    from se_keras.utils import count_flops
    from se_keras.utils import count_params

    builder = get_builder(name)
    figures = []
    for se in (True, False):
        model = builder(weights=None, se=se)
        figures += [count_params(model), count_flops(model) / 1e9]
        size = model.input.shape[1]
        keras.backend.clear_session()
    return (size, *figures)


def _g(gflops):
    return f"{gflops:.2f}" if gflops >= 1 else f"{gflops:.3f}"


def run(args):
    from se_keras.applications import MODELS
    from se_keras.applications import get_builder

    names = args.names or list(MODELS)
    for name in names:
        get_builder(name)  # validates the name before any slow work
    if not args.measure:
        for name in names:
            print(name)
        return 0
    print("| model | input | params | GFLOPs | params (se=False) | GFLOPs (se=False) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        size, params, gflops, plain_params, plain_gflops = measure(name)
        print(f"| {name} | {size} | {params:,} | {_g(gflops)} | {plain_params:,} | "
              f"{_g(plain_gflops)} |", flush=True)
    return 0
