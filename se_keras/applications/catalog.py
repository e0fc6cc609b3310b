"""Every public builder by name: `MODELS` and `get_builder`, for the command line and the tests.

Its own module so that a family module (`backbones.backbone`) can look a
builder up by name without importing the package that imports it.
"""

from se_keras.applications.cifar_resnet import BUILDERS as _CIFAR_BUILDERS
from se_keras.applications.inception import BUILDERS as _INCEPTION_BUILDERS
from se_keras.applications.mobilenet import BUILDERS as _MOBILENET_BUILDERS
from se_keras.applications.resnet import BUILDERS as _RESNET_BUILDERS
from se_keras.applications.shufflenet import BUILDERS as _SHUFFLENET_BUILDERS
from se_keras.applications.vgg import BUILDERS as _VGG_BUILDERS

# Public name -> builder, for the command line and the tests.
MODELS = {
    **_RESNET_BUILDERS,
    **_CIFAR_BUILDERS,
    **_INCEPTION_BUILDERS,
    **_MOBILENET_BUILDERS,
    **_SHUFFLENET_BUILDERS,
    **_VGG_BUILDERS,
}


def get_builder(name):
    """The builder called `name` (e.g. "SEResNet50").

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Example:
    >>> get_builder("SEResNet50").__name__
    'SEResNet50'
    """
    if name not in MODELS:
        raise ValueError(
            f"Unknown model; known models: {', '.join(MODELS)}. Received: model={name!r}"
        )
    return MODELS[name]
