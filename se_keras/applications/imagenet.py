"""ImageNet input normalization and class names, shipped with the package.

`keras.applications.imagenet_utils.decode_predictions` downloads its class
index on first use; ours reads the index shipped in `se_keras._imagenet_classes`
(the 1000 ILSVRC-2012 classes in the usual index order, with their WordNet
ids and first lemmas), so it works offline.
"""

import keras
import numpy as np
from keras import ops

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD
from se_keras._imagenet_classes import class_index as _class_index
from se_keras._imagenet_classes import imagenet_class_names  # noqa: F401 - part of this module's API
from se_keras._validation import check_choice
from se_keras.preprocessing import normalization_constants
from se_keras.preprocessing import normalize_pixels

# The original Caffe SENets take BGR pixels minus this mean (no scaling).
CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)
MODES = ("torch", "caffe")


def preprocess_input(x, data_format=None, mode="torch", mean=None, std=None):
    """Normalizes RGB pixels in [0, 255] for the pretrained SE networks.

    All checkpoints in `se_keras.weights.registry` (timm's and the legacy
    ports of the Caffe models alike) take RGB scaled to [0, 1], minus the
    ImageNet mean, divided by the ImageNet std: `mode="torch"`. The
    authors' original Caffe releases instead take BGR minus (104, 117, 123):
    `mode="caffe"`.

    Args:
        x: a float array or tensor of RGB images, 3D or 4D.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        mode: "torch" (default) or "caffe".
        mean, std: override the RGB mean and std of "torch" mode (in [0, 1]
            units), for example from `se_keras.get_preprocessing(model)`.
            A model whose record has `normalize_in_model=True` normalizes
            itself: do not call this function for it.

    Returns:
        The normalized images, float32.

    Example:
    >>> import numpy as np
    >>> preprocess_input(np.full((1, 2, 2, 3), 255.0))[0, 0, 0].round(3)
    array([2.249, 2.429, 2.64 ], dtype=float32)
    """
    check_choice("mode", mode, MODES)
    data_format = data_format or keras.config.image_data_format()
    check_choice("data_format", data_format, ("channels_last", "channels_first"))
    is_numpy = isinstance(x, np.ndarray)
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    channel_axis = -1 if data_format == "channels_last" else (0 if len(x.shape) == 3 else 1)
    shape = [1] * len(x.shape)
    shape[channel_axis] = 3
    if mode == "caffe":
        x = ops.flip(x, axis=channel_axis)
        x = x - np.reshape(np.asarray(CAFFE_BGR_MEAN, "float32"), shape)
    else:
        mean, std = normalization_constants(
            IMAGENET_MEAN if mean is None else mean, IMAGENET_STD if std is None else std,
            len(x.shape), channel_axis,
        )
        x = normalize_pixels(x, mean, std)
    return ops.convert_to_numpy(x) if is_numpy else x


def decode_predictions(preds, top=5):
    """Turns ImageNet class scores into (wordnet id, class name, score) lists.

    Args:
        preds: array of shape (batch, 1000).
        top: how many classes to return per sample.

    Returns:
        One list per sample of `(wnid, name, score)` tuples, best first.

    Example:
    >>> import numpy as np
    >>> decode_predictions(np.eye(1000)[[1]], top=1)
    [[('n01443537', 'goldfish', 1.0)]]
    """
    # convert_to_numpy: a torch tensor that tracks gradients refuses np.asarray.
    preds = np.asarray(ops.convert_to_numpy(preds))
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
        raise ValueError(f"`top` must be an integer from 1 to 1000. Received: top={top!r}")
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions of shape "
            f"(samples, 1000). Received: preds.shape={preds.shape}"
        )
    index = _class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*index[i], float(row[i])) for i in best])
    return results
