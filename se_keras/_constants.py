"""ImageNet channel statistics (RGB, pixels scaled to [0, 1]).

torchvision's values, used by timm and by every checkpoint in the registry;
one home so that preprocessing, the registry and `preprocess_input` cannot
drift apart.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
