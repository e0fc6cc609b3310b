"""Well-scaled random timm checkpoints, regenerated from a seed with NumPy alone.

Shared by the fixture script (which runs timm on them, in an environment
with torch) and the tests (which run the Keras conversion, without torch).
Every tensor is drawn from its own generator seeded by (seed, crc32(key)),
so a key that the converter maps to the wrong Keras weight gets values
different from those timm saw.

BatchNorm running statistics are not drawn: the fixture script calibrates
them on random images in timm (otherwise a deep random network collapses
to a near-constant output and a comparison proves little) and stores them
in the fixture as float16.
"""

import json
import zlib

import numpy as np


def _rng(seed, key):
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def generate(keys_shapes, seed, residual_bn, stats=None):
    """A state dict of float32 arrays for the given keys and shapes.

    Args:
        keys_shapes: [(key, shape)] of the checkpoint, in any order.
        seed: the fixture's seed.
        residual_bn: the name of the last BatchNorm of each residual branch
            ("bn3" or "bn2"); its scale is drawn small (0.2 to 0.5) so that
            deep residual stacks stay well conditioned.
        stats: {key: array} of calibrated running statistics to use.

    Returns:
        {key: np.ndarray}.
    """
    state = {}
    for key, shape in keys_shapes:
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            continue
        if stats is not None and (key.endswith("running_mean") or key.endswith("running_var")):
            state[key] = np.asarray(stats[key], dtype="float32")
            continue
        rng = _rng(seed, key)
        name = key.rsplit(".", 1)[-1]
        module = key.rsplit(".", 2)[-2] if key.count(".") >= 1 else key
        if key.endswith("running_mean"):
            value = np.zeros(shape)
        elif key.endswith("running_var"):
            value = np.ones(shape)
        elif len(shape) == 1 and name == "weight":  # BatchNorm scale
            small = module == residual_bn and key.startswith("layer") and not key.startswith("layer0")
            value = rng.uniform(0.2, 0.5, shape) if small else rng.uniform(0.7, 1.3, shape)
        elif len(shape) == 1 and name == "bias":
            if ".se" in key or "se_module" in key:
                value = rng.normal(0.0, 0.5, shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 4:  # conv, including the SE's 1x1 convs
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif len(shape) == 2:  # classifier
            value = rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape)
        else:
            raise ValueError(f"unexpected tensor {key} {shape}")
        state[key] = value.astype("float32")
    return state


def inputs(seed, size, batch=2):
    """NCHW float32 inputs, standard normal (what normalized images look like)."""
    return np.random.default_rng([seed, size]).normal(0.0, 1.0, (batch, 3, size, size)).astype(
        "float32"
    )


def load_fixture(path):
    """(keys_shapes, stats, logits by size, meta) from a fixture .npz."""
    data = np.load(path, allow_pickle=False)
    meta = json.loads(str(data["meta"]))
    keys_shapes = [(k, tuple(s)) for k, s in meta["keys_shapes"]]
    stat_keys = [k for k, _ in keys_shapes if k.endswith(("running_mean", "running_var"))]
    flat = data["stats"].astype("float32")
    stats, offset = {}, 0
    for key in stat_keys:
        n = int(np.prod(dict(keys_shapes)[key]))
        stats[key] = flat[offset : offset + n]
        offset += n
    logits = {int(k.split("_")[1]): data[k] for k in data.files if k.startswith("logits_")}
    return keys_shapes, stats, logits, meta
