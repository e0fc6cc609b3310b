"""Export for serving: versioned SavedModels for TensorFlow Serving, and TFLite.

`export_for_serving(model, base)` writes `base/<version>/` with a
`serving_default` signature that takes encoded images (JPEG, PNG, ...) and
runs the package's eval preprocessing in the graph, a `preprocessed`
signature for float32 pixels, and a warm-up file. See
`se_keras.export.versions` for the layout, `se_keras.export.signatures`
for the signature keys, `se_keras.export.optimize` for the inference graph
it serves by default, and `se_keras.export.rest` for TF Serving's REST
format.

Example:
>>> from se_keras.applications import SEResNet50
>>> from se_keras.export import export_for_serving
>>> model = SEResNet50(weights="imagenet")  # doctest: +SKIP
>>> export_for_serving(model, "models/se_resnet50")  # doctest: +SKIP
PosixPath('models/se_resnet50/1')
"""

from se_keras.export.optimize import optimize_for_inference
from se_keras.export.precision import float32_model
from se_keras.export.serving import export_for_serving
from se_keras.export.signatures import IMAGES_INPUT
from se_keras.export.signatures import PIXELS_INPUT
from se_keras.export.signatures import PIXELS_SIGNATURE
from se_keras.export.signatures import PROBABILITIES
from se_keras.export.signatures import SERVING_SIGNATURE
from se_keras.export.signatures import TOP_K_CLASSES
from se_keras.export.signatures import TOP_K_LABELS
from se_keras.export.signatures import TOP_K_PROBABILITIES
from se_keras.export.signatures import preprocess_images
from se_keras.export.signatures import resolve_preprocessing
from se_keras.export.versions import latest_version_dir
from se_keras.export.versions import next_version
from se_keras.export.versions import read_metadata

__all__ = [
    "IMAGES_INPUT",
    "PIXELS_INPUT",
    "PIXELS_SIGNATURE",
    "PROBABILITIES",
    "SERVING_SIGNATURE",
    "TOP_K_CLASSES",
    "TOP_K_LABELS",
    "TOP_K_PROBABILITIES",
    "export_for_serving",
    "float32_model",
    "latest_version_dir",
    "next_version",
    "optimize_for_inference",
    "preprocess_images",
    "read_metadata",
    "resolve_preprocessing",
]
