"""Explaining one prediction: top classes, the SE gates of every block, and Grad-CAM.

The per-image view of the seminar notebook, next to `se_keras.excitations`'s
per-class averages. For a model and one image, `explain` returns:

- the top-k classes with their probabilities;
- the gate vector of each chosen `SqueezeExcitation` block (all by
  default), read through the layer's own `excitation` on its input, and
  grouped by stage from the layer names (`stage3_block2_se` -> "stage3",
  `block5_se` -> "block");
- a Grad-CAM heatmap (Selvaraju et al., arXiv 1610.02391) of the last stage,
  the feature map that the classifier head pools, for a target class
  (default: the top-1), upsampled to the model's input.

The image goes through the model's own preprocessing record
(`se_keras.get_preprocessing`) and the shared `se_keras.data.preprocess_image`,
exactly as `se-keras predict` feeds it. One forward pass collects the
probabilities, every SE block's input and the last stage; Grad-CAM then
differentiates only the classifier head. `plot_explanation` draws it all
into one PNG (`se-keras explain`).

Example:
>>> from se_keras.applications import SEResNet20
>>> result = explain(SEResNet20(weights=None), "digit.png")  # doctest: +SKIP
>>> result.top[0], result.gates["stage3_block3_se"].shape  # doctest: +SKIP
((7, '7', 0.31), (64,))
"""

import dataclasses
import os
import pathlib
import re

import numpy as np

from se_keras.gradcam import gradient
from se_keras.gradcam import last_stage
from se_keras.gradcam import score_head

@dataclasses.dataclass
class Explanation:
    """What `explain` found for one image.

    Attributes:
        image: the model's view of the image in pixels, uint8
            (size, size, 3): the record's resize and center crop, before
            normalization.
        probabilities: float32 (classes,), the model's output.
        top: `[(class index, class name, probability), ...]`, best first.
        gates: `{block name: float32 (channels,)}`, the chosen SE blocks in
            depth order.
        groups: `{stage: [block names]}`, the same blocks grouped by stage.
        target_class: the class index Grad-CAM explains.
        target_name: its name.
        cam: float32 (h, w), the Grad-CAM map at the last stage's spatial
            size, `relu(sum_k alpha_k A_k)`, not normalized; None when
            `grad_cam=False`.
        heatmap: float32 (size, size) in [0, 1], `cam` upsampled
            (bilinear) to `image` and divided by its maximum; None when
            `grad_cam=False`.
        cam_layer: the name of the layer whose output Grad-CAM uses.
    """

    image: np.ndarray
    probabilities: np.ndarray
    top: list
    gates: dict
    groups: dict
    target_class: int
    target_name: str
    cam: np.ndarray = None
    heatmap: np.ndarray = None
    cam_layer: str = None


def load_image(image):
    """Decoded RGB pixels of an image file, encoded bytes or an array.

    Args:
        image: a path (str or `os.PathLike`) of a JPEG, PNG, GIF or BMP
            file; its encoded bytes; or pixels, an array of shape (H, W, 3)
            (grayscale (H, W) or (H, W, 1), and RGBA, are converted), uint8
            or float in [0, 255].

    Returns:
        A tensor of shape (H, W, 3): uint8 for files and bytes (decoded by
        `se_keras.data.decode_image`, as `predict` decodes), else the
        array's own dtype.

    Raises:
        ValueError: a missing file, bytes that are not a decodable image,
            or an array of another shape, naming the image.

    Example:
    >>> load_image(np.zeros((4, 5), "uint8")).shape
    TensorShape([4, 5, 3])
    """
    import tensorflow as tf

    from se_keras.data import decode_image

    if isinstance(image, (str, os.PathLike)):
        path = pathlib.Path(image)
        if not path.is_file():
            raise ValueError(f"No such image file. Received: image={str(path)!r}")
        data, label = path.read_bytes(), str(path)
    elif isinstance(image, bytes):
        data, label = image, f"<{len(image)} bytes>"
    else:
        pixels = np.asarray(image)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.ndim == 3 and pixels.shape[-1] in (1, 4):
            pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise ValueError(
                "An image array must have the shape (height, width, 3) (RGB), (height, width) "
                f"or (height, width, 1). Received: image with shape {np.shape(image)}"
            )
        return tf.convert_to_tensor(pixels)
    try:
        return decode_image(tf.constant(data))
    except tf.errors.InvalidArgumentError as error:
        first_line = error.message.splitlines()[0][:200] if error.message else ""
        raise ValueError(
            f"Not a decodable image (JPEG, PNG, GIF or BMP): {first_line}. "
            f"Received: image={label!r}"
        ) from None


def se_blocks(model):
    """The names of the model's `SqueezeExcitation` layers, in depth order.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> se_blocks(SEResNet20(weights=None))[:2]
    ['stage1_block1_se', 'stage1_block2_se']
    """
    from se_keras.excitations import se_layers

    return [layer.name for layer in se_layers(model)]


def _group_key(name):
    base = name[: -len("_se")] if name.endswith("_se") else name
    if "_" in base:
        return base.rsplit("_", 1)[0]  # stage3_block2 -> stage3, block35_4 -> block35
    return re.sub(r"\d+$", "", base) or base  # block5 -> block, mixed10 -> mixed


def group_blocks(blocks):
    """Groups SE block names by stage, from the names alone (no per-family table).

    A block's stage is its name without the "_se" suffix and the last
    "_part" (`stage3_block2_se` -> "stage3", `block35_4_se` -> "block35"),
    or without trailing digits when there is no other part (`block5_se` ->
    "block" in MobileNet, `mixed7_se` -> "mixed"). Consecutive blocks of a
    stage form its group; a stage name that comes back after another stage
    (Inception-ResNet's `mixed_5b`, `mixed_6a`) is labelled by its first
    block instead, so that each group stays one contiguous run.

    Args:
        blocks: SE layer names in depth order.

    Returns:
        `{stage: [block names]}` in depth order.

    Example:
    >>> group_blocks(["stage1_block1_se", "stage1_block2_se", "stage2_block1_se"])
    {'stage1': ['stage1_block1_se', 'stage1_block2_se'], 'stage2': ['stage2_block1_se']}
    >>> list(group_blocks(["block1_se", "block2_se"]))
    ['block']
    """
    runs = []
    for name in blocks:
        key = _group_key(name)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(name)
        else:
            runs.append((key, [name]))
    repeated = {key for key, _ in runs if sum(k == key for k, _ in runs) > 1}
    groups = {}
    for key, names in runs:
        label = key
        if key in repeated:
            first = names[0]
            label = first[: -len("_se")] if first.endswith("_se") else first
        while label in groups:  # two runs whose first blocks share a name prefix
            label += "'"
        groups[label] = names
    return groups


def _resolve_blocks(available, blocks):
    if blocks is None:
        return list(available)
    if isinstance(blocks, str):
        blocks = [b for b in blocks.split(",") if b]
    groups = group_blocks(available)
    chosen, unknown = [], []
    for name in blocks:
        if name in available:
            chosen.append(name)
        elif name in groups:
            chosen.extend(groups[name])
        else:
            unknown.append(name)
    if unknown:
        known = ", ".join(available) or "none (the model has no SqueezeExcitation layers)"
        stages = f"; stages: {', '.join(groups)}" if groups else ""
        raise ValueError(f"Unknown SE blocks; known: {known}{stages}. Received: blocks={unknown}")
    # Depth order without repeats, whatever order they were asked in.
    return [name for name in available if name in set(chosen)]


def _resolve_class(target_class, class_names):
    if target_class is None:
        return None
    if isinstance(target_class, str) and target_class in class_names:
        return class_names.index(target_class)
    try:
        index = int(target_class)
    except (TypeError, ValueError):
        index = None
    if index is None or isinstance(target_class, bool) or not 0 <= index < len(class_names):
        examples = ", ".join(repr(n) for n in class_names[:5])
        raise ValueError(
            f"The class must be an index from 0 to {len(class_names) - 1} or a class name "
            f"({examples}, ...). Received: class={target_class!r}"
        )
    return index


def explain(model, image, blocks=None, target_class=None, class_names=None, top=5,
            grad_cam=True):
    """Top classes, SE gates and a Grad-CAM heatmap for one image.

    The image goes through the model's own record exactly as `predict`
    feeds it (`se_keras.get_preprocessing(model)`, then
    `se_keras.data.preprocess_image`), so a model that normalizes itself
    (`include_preprocessing=True`) and its twin that does not give the same
    answer. One forward pass returns the probabilities, the input of every
    chosen SE block and the last stage; each gate vector is that block's
    `SqueezeExcitation.excitation` of its input (the documented way to read
    the gates); Grad-CAM then differentiates the classifier head only.

    Args:
        model: a functional Keras classifier carrying a preprocessing record
            (any model from `se_keras.applications`, or a run's model).
        image: a file path, encoded image bytes, or decoded RGB pixels
            (see `load_image`).
        blocks: SE layer names or stage names (see `group_blocks`), a list
            or a comma-separated string; default: every SE block.
        target_class: the class Grad-CAM explains, an index or a name from
            `class_names`; default: the top-1 class.
        class_names: names of the model's classes; default "0", "1", ....
        top: how many classes `top` lists.
        grad_cam: compute Grad-CAM (needs the TensorFlow, JAX or PyTorch
            backend); False leaves `cam` and `heatmap` None.

    Returns:
        An `Explanation`.

    Raises:
        ValueError: an unreadable image, an unknown block (listing the known
            ones), an unknown class, a model without a record or without a
            (batch, classes) output.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> model = SEResNet20(weights=None)
    >>> result = explain(model, np.zeros((40, 40, 3), "uint8"), blocks="stage3")
    >>> list(result.groups), result.cam.shape, result.heatmap.shape
    (['stage3'], (8, 8), (32, 32))
    """
    import keras
    from keras import ops

    from se_keras.data import preprocess_image
    from se_keras.excitations import se_layers
    from se_keras.preprocessing import get_preprocessing

    record = get_preprocessing(model)
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "explain needs a classifier with one (batch, classes) output (include_top=True). "
            f"Received: model={model.name!r} with outputs {[tuple(o.shape) for o in model.outputs]}"
        )
    classes = int(model.outputs[0].shape[-1])
    class_names = [str(i) for i in range(classes)] if class_names is None else list(class_names)
    if len(class_names) != classes:
        raise ValueError(f"The model has {classes} classes. Received: {len(class_names)} "
                         "class_names")
    target = _resolve_class(target_class, class_names)
    layers = {layer.name: layer for layer in se_layers(model)}
    chosen = [layers[name] for name in _resolve_blocks(list(layers), blocks)]

    pixels = load_image(image)
    inputs = np.asarray(preprocess_image(pixels, record))[None]
    # What the model sees, in pixels, for display: the same function and
    # record, only without the normalization (the crop is computed on uint8
    # pixels either way, so it is the input's crop exactly).
    view = inputs[0] if record.normalize_in_model else np.asarray(
        preprocess_image(pixels, record.replace(normalize_in_model=True)))
    view = np.clip(np.round(view), 0, 255).astype("uint8")

    outputs = [layer.input for layer in chosen] + [model.outputs[0]]
    if grad_cam:
        cam_layer, feature_map, channel_axis = last_stage(model)
        outputs.append(feature_map)
    # One forward pass for the probabilities, every chosen SE input and the
    # last stage: a probe model sharing the layers (and weights) of `model`.
    results = keras.Model(model.input, outputs)(inputs, training=False)
    results = list(results) if isinstance(results, (list, tuple)) else [results]
    features = results[: len(chosen)]
    probabilities = np.asarray(ops.convert_to_numpy(results[len(chosen)]), "float32")[0]
    gates = {layer.name: np.asarray(ops.convert_to_numpy(layer.excitation(x)), "float32")[0]
             for layer, x in zip(chosen, features)}
    order = np.argsort(-probabilities, kind="stable")[: min(top, classes)]
    explanation = Explanation(
        image=view, probabilities=probabilities,
        top=[(int(i), class_names[i], float(probabilities[i])) for i in order],
        gates=gates, groups=group_blocks(list(gates)),
        target_class=int(order[0]) if target is None else target, target_name="",
    )
    explanation.target_name = class_names[explanation.target_class]
    if grad_cam:
        head = score_head(model, feature_map)
        c = explanation.target_class
        activations = results[-1]
        grads = gradient(lambda a: head(a)[0, c], activations)
        a = ops.convert_to_numpy(activations)[0].astype("float64")
        g = ops.convert_to_numpy(grads)[0].astype("float64")
        if channel_axis == 1:
            a, g = np.moveaxis(a, 0, -1), np.moveaxis(g, 0, -1)
        # alpha_k: the gradient averaged over the positions (Selvaraju eq. 1);
        # the map keeps only what raises the score (the ReLU of eq. 2).
        alpha = g.mean(axis=(0, 1))
        cam = np.maximum((a * alpha).sum(axis=-1), 0.0).astype("float32")
        size = view.shape[:2]
        up = ops.image.resize(cam[None, :, :, None], size, interpolation="bilinear",
                              data_format="channels_last")
        heatmap = np.maximum(np.asarray(ops.convert_to_numpy(up), "float32")[0, :, :, 0], 0.0)
        peak = float(heatmap.max())
        explanation.cam = cam
        explanation.heatmap = heatmap / peak if peak > 0 else heatmap
        explanation.cam_layer = cam_layer
    return explanation


def plot_explanation(explanation, path, title=None):
    """Writes one PNG: the image, the top classes, Grad-CAM, and the SE gates by stage.

    The top row shows what the model saw (its input crop), the Grad-CAM
    heatmap overlaid on it, and the top classes as bars; below, one row per
    stage draws the gate vectors of that stage's blocks side by side (a bar
    per channel, one color per block). The file is written atomically.

    Args:
        explanation: an `Explanation`.
        path: the PNG file to write (its folder is created).
        title: the figure's title (e.g. the image's file name).

    Returns:
        The written path.

    Example:
    >>> plot_explanation(explain(model, "digit.png"), "out/digit.png")  # doctest: +SKIP
    PosixPath('out/digit.png')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from se_keras._files import atomic_path

    e = explanation
    groups = list(e.groups.items())
    rows = 1 + len(groups)
    # A Figure of its own, not pyplot: no global state, no GUI backend.
    fig = Figure(figsize=(13, 3.6 + 1.9 * len(groups)))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 3, height_ratios=[1.9] + [1.0] * len(groups),
                            width_ratios=[1, 1, 1.6])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(e.image, interpolation="nearest")
    ax.set_title(f"input ({e.image.shape[1]}x{e.image.shape[0]})", fontsize=10)
    ax.axis("off")

    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(e.image, interpolation="nearest")
    if e.heatmap is not None:
        overlay = ax.imshow(e.heatmap, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0,
                            interpolation="bilinear")
        fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.03)
        h, w = e.cam.shape
        ax.set_title(f"Grad-CAM for {e.target_name!r}\n({e.cam_layer}, {h}x{w})", fontsize=10)
    else:
        ax.set_title("Grad-CAM not computed", fontsize=10)
    ax.axis("off")

    ax = fig.add_subplot(grid[0, 2])
    names = [name for _, name, _ in e.top][::-1]
    probs = [p for _, _, p in e.top][::-1]
    colors = ["tab:orange" if i == e.target_class else "tab:blue" for i, _, _ in e.top][::-1]
    ax.barh(range(len(probs)), probs, color=colors)
    ax.set_yticks(range(len(probs)), [n[:28] for n in names], fontsize=9)
    ax.set_xlim(0, 1.15)
    for y, p in enumerate(probs):
        ax.text(p + 0.01, y, f"{p:.3f}", va="center", fontsize=9)
    ax.set_title(f"top {len(probs)} classes", fontsize=10)
    ax.set_xlabel("probability")

    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    for row, (stage, blocks) in enumerate(groups, start=1):
        ax = fig.add_subplot(grid[row, :])
        start, centers, lows, highs = 0, [], [], []
        for i, block in enumerate(blocks):
            gate = e.gates[block]
            # A filled step per block is a bar chart with a bar per channel,
            # drawn as one artist: fast for 2048-channel blocks too.
            ax.stairs(gate, np.arange(start, start + len(gate) + 1), fill=True,
                      color=palette[i % len(palette)], baseline=min(0.0, float(gate.min())))
            centers.append(start + len(gate) / 2)
            lows.append(float(gate.min()))
            highs.append(float(gate.max()))
            start += len(gate)
            if i < len(blocks) - 1:
                ax.axvline(start, color="black", linewidth=0.6)
        low, high = min(0.0, min(lows)), max(1.0, max(highs))
        ax.set_ylim(low, high)
        ax.set_xlim(0, start)
        short = [b[len(stage) + 1:] if b.startswith(stage + "_") else b for b in blocks]
        short = [s[: -len("_se")] if s.endswith("_se") else s for s in short]
        ax.set_xticks(centers, short, fontsize=8 if len(blocks) <= 12 else 6,
                      rotation=0 if len(blocks) <= 12 else 90)
        ax.set_ylabel(f"{stage}\ngate", fontsize=9)
    if groups:
        fig.axes[-1].set_xlabel("channel (one bar per channel, blocks side by side)",
                                fontsize=9)
    else:
        fig.text(0.5, 0.02, "the model has no (chosen) SE blocks", ha="center")
    fig.suptitle(title or "", fontsize=11)
    fig.tight_layout()
    path = pathlib.Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path
