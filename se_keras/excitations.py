"""The paper's excitation analysis (its section 7): what SE blocks do per class and depth.

For a model and a labelled dataset, `collect_excitations` averages the gate
vector of every SqueezeExcitation block over the images of each class;
`plot_excitations` draws one PNG per chosen block (channel index on x, mean
activation on y, one line per class and the all-class mean) and a summary
of how class-specific each depth is.

Class specificity of a block is the mean over channels of the standard
deviation across classes of the per-class mean excitation: 0 when every
class gets the same gates. The paper finds early blocks class-agnostic and
later ones increasingly class-specific.
"""

import dataclasses
import pathlib

import numpy as np

from se_keras.layers import SqueezeExcitation


@dataclasses.dataclass
class ExcitationStats:
    """Per-class mean excitations of every SE block.

    Attributes:
        blocks: SE layer names, in depth order.
        classes: the class indices seen, sorted.
        means: {block: array (len(classes), channels)} per-class mean gates.
        overall: {block: array (channels,)} mean over all images.
        counts: images per class, aligned with `classes`.
    """

    blocks: list
    classes: list
    means: dict
    overall: dict
    counts: list

    def class_specificity(self):
        """{block: mean over channels of the std across classes of the class means}."""
        return {b: float(np.mean(np.std(self.means[b], axis=0))) for b in self.blocks}


def se_layers(model):
    """The model's SqueezeExcitation layers in graph order."""
    return [layer for layer in model.layers if isinstance(layer, SqueezeExcitation)]


def collect_excitations(model, dataset, max_batches=None):
    """Averages the excitation vectors of every SE block per class.

    Args:
        model: a functional Keras model containing `SqueezeExcitation` layers.
        dataset: an iterable of `(images, labels)` batches (a `tf.data`
            dataset, or NumPy arrays in a list), images already
            preprocessed for the model, labels integer class indices (or
            one-hot).
        max_batches: stop after this many batches.

    Returns:
        An `ExcitationStats`.

    Example:
    >>> stats = collect_excitations(model, dataset.take(10))  # doctest: +SKIP
    >>> stats.class_specificity()["stage3_block1_se"]  # doctest: +SKIP
    """
    import keras

    layers = se_layers(model)
    if not layers:
        raise ValueError(
            f"The model has no SqueezeExcitation layers. Received: model={model.name!r}"
        )
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    sums, counts = {}, {}
    for index, (images, labels) in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        labels = np.asarray(labels)
        if labels.ndim > 1:
            labels = labels.argmax(axis=-1)
        # NumPy in: the model may run on another Keras backend than tf.data.
        features = probe(np.asarray(images), training=False)
        if len(layers) == 1:
            features = [features]
        gates = [np.asarray(keras.ops.convert_to_numpy(layer.excitation(f)), dtype="float64")
                 for layer, f in zip(layers, features)]
        for label in np.unique(labels):
            mask = labels == label
            counts[int(label)] = counts.get(int(label), 0) + int(mask.sum())
            for layer, gate in zip(layers, gates):
                key = (layer.name, int(label))
                sums[key] = sums.get(key, 0.0) + gate[mask].sum(axis=0)
    if not counts:
        raise ValueError("The dataset yielded no batches.")
    classes = sorted(counts)
    total = sum(counts.values())
    means, overall = {}, {}
    for layer in layers:
        per_class = np.stack([sums[(layer.name, c)] / counts[c] for c in classes])
        means[layer.name] = per_class
        overall[layer.name] = sum(sums[(layer.name, c)] for c in classes) / total
    return ExcitationStats(
        blocks=[layer.name for layer in layers], classes=classes, means=means,
        overall=overall, counts=[counts[c] for c in classes],
    )


def plot_excitations(stats, output_dir, blocks=None, class_names=None, max_classes=10):
    """Writes one PNG per block and `class_specificity.png`; returns the paths.

    Args:
        stats: an `ExcitationStats`.
        output_dir: folder for the PNG files (created if needed).
        blocks: block names to draw (default: the first block of each stage
            and the last block, as in the paper's figure).
        class_names: names for the class indices, for the legend.
        max_classes: draw at most this many classes per plot (the first
            ones), plus the all-class mean.

    Returns:
        The list of written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if blocks is None:
        blocks = default_blocks(stats.blocks)
    unknown = [b for b in blocks if b not in stats.means]
    if unknown:
        raise ValueError(
            f"Unknown SE blocks; known: {', '.join(stats.blocks)}. Received: blocks={unknown}"
        )
    paths = []
    for block in blocks:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        channels = np.arange(stats.means[block].shape[1])
        for row, c in zip(stats.means[block][:max_classes], stats.classes[:max_classes]):
            label = class_names[c] if class_names is not None else f"class {c}"
            ax.plot(channels, row, linewidth=0.8, label=label)
        ax.plot(channels, stats.overall[block], color="black", linewidth=1.5, label="all")
        ax.set_xlabel("channel index")
        ax.set_ylabel("mean activation")
        ax.set_title(f"excitations of {block}")
        ax.legend(fontsize=6, ncol=2, loc="upper right")
        fig.tight_layout()
        path = output_dir / f"{block}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    specificity = stats.class_specificity()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(range(len(stats.blocks)), [specificity[b] for b in stats.blocks], marker="o")
    ax.set_xticks(range(len(stats.blocks)))
    ax.set_xticklabels(stats.blocks, rotation=90, fontsize=6)
    ax.set_ylabel("std across classes (mean over channels)")
    ax.set_title("class specificity of the excitations by depth")
    fig.tight_layout()
    path = output_dir / "class_specificity.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return paths


def default_blocks(blocks):
    """The first SE block of each stage and the very last one (the paper's choice)."""
    chosen = [b for b in blocks if b.endswith("_block1_se")] or blocks[:1]
    if blocks[-1] not in chosen:
        chosen.append(blocks[-1])
    return chosen
