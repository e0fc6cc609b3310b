"""`se-keras weights list`: the table of public SE checkpoints."""


def register(subparsers):
    parser = subparsers.add_parser(
        "weights", help="list the pretrained checkpoints in the registry"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="print the checkpoint table")
    listing.add_argument(
        "--format", choices=("markdown", "json"), default="markdown", help="output format"
    )
    listing.set_defaults(run=run)


def table_rows():
    """One dict per checkpoint, in registry order."""
    from se_keras.applications import MODELS
    from se_keras.weights import registry

    builders = {builder.arch: name for name, builder in MODELS.items()}
    rows = []
    for c in registry.CHECKPOINTS:
        rows.append(
            {
                "builder": builders.get(c.arch, c.arch),
                "weights": c.tag,
                "timm name": c.timm_name,
                "layout": c.layout,
                "top-1": c.top1,
                "params": c.params,
                "input": c.input_size,
                "crop": c.crop_pct,
                "hash": c.sha256 or (f"sha256 {c.sha256_prefix}..." if c.sha256_prefix
                                     else "none known (hub X-Linked-Etag checked)"),
                "hub id": c.hf_hub_id or "",
                "license": c.license,
                "url": c.url,
            }
        )
    return rows


def run(args):
    import json

    rows = table_rows()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return 0
