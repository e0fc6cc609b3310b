"""Model builders in the style of `keras.applications`.

Every builder takes keras.applications' arguments (`include_top`, `weights`,
`input_tensor`, `input_shape`, `pooling`, `classes`,
`classifier_activation`, `name`) plus SE options (`se=False` builds the
plain network from the same code) and the preprocessing record
(`preprocessing`, `include_preprocessing`; see `se_keras.preprocessing`). `MODELS` maps each public name to its
builder.

Example:
>>> from se_keras.applications import SEResNet50
>>> model = SEResNet50(weights=None)
"""

from se_keras.applications.backbones import feature_extractor
from se_keras.applications.cifar_resnet import SEResNet20
from se_keras.applications.cifar_resnet import SEResNet32
from se_keras.applications.cifar_resnet import SEResNet56
from se_keras.applications.cifar_resnet import SEResNet110
from se_keras.applications.cifar_resnet import SEResNet164
from se_keras.applications.cifar_resnet import SEWideResNet16_8
from se_keras.applications.imagenet import decode_predictions
from se_keras.applications.inception import SEBNInception
from se_keras.applications.inception import SEInceptionResNetV2
from se_keras.applications.inception import SEInceptionV3
from se_keras.applications.imagenet import imagenet_class_names
from se_keras.applications.imagenet import preprocess_input
from se_keras.applications.mobilenet import SEMobileNet
from se_keras.applications.mobilenet import SEMobileNetV2
from se_keras.applications.resnet import SENet154
from se_keras.applications.resnet import SEResNet18
from se_keras.applications.resnet import SEResNet34
from se_keras.applications.resnet import SEResNet50
from se_keras.applications.resnet import SEResNet101
from se_keras.applications.resnet import SEResNet152
from se_keras.applications.resnet import SEResNet152D
from se_keras.applications.resnet import SEResNeXt26
from se_keras.applications.resnet import SEResNeXt26D
from se_keras.applications.resnet import SEResNeXt26T
from se_keras.applications.resnet import SEResNeXt50
from se_keras.applications.resnet import SEResNeXt101
from se_keras.applications.resnet import SEResNeXt101_32x8d
from se_keras.applications.resnet import SEResNeXt101_64x4d
from se_keras.applications.shufflenet import SEShuffleNet
from se_keras.applications.timm_names import from_timm
from se_keras.applications.timm_names import parse_timm_name
from se_keras.applications.vgg import SEVGG16
from se_keras.applications.catalog import MODELS
from se_keras.applications.catalog import get_builder
