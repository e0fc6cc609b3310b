"""ImageNet channel statistics (RGB, pixels scaled to [0, 1]) and the resize filters.

torchvision's values, used by timm and by every checkpoint in the registry;
one home so that preprocessing, the registry and `preprocess_input` cannot
drift apart.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# PIL's resampling filters, as timm names them (`timm.data.str_to_interp_mode`);
# the eval resize reproduces each of them exactly (se_keras.data.pil_resize).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "box", "hamming", "lanczos")
