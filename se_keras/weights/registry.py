"""Every public ImageNet-1k SE checkpoint, in one table (timm's `default_cfgs` style).

Each row names the Keras architecture (`se_keras.applications.resnet.
ARCHITECTURES`) and its checkpoint layout ("timm" or "legacy"), where the
file lives, how to check it, how to preprocess for it, and the accuracy its
publisher reported at 224x224 (timm's results tables).

Hashes: the legacy `.pth` files carry the first hex digits of their sha256
in the file name (the torch.hub convention), which the download verifies.
For the Hugging Face safetensors files no full sha256 is recorded here: the
download warns about it and, when the server sends one, checks the
`X-Linked-Etag` header that the Hugging Face hub sets to the sha256 of the
file it stores. Every converted checkpoint must also supply every tensor the
architecture needs with the right shape, and nothing else.
"""

import dataclasses
import os
import re

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD

HF_URL = "https://huggingface.co/timm/{name}/resolve/main/model.safetensors"
GITHUB = "https://github.com/rwightman/pytorch-image-models/releases/download"
MIRROR_ENV = "SE_KERAS_WEIGHTS_MIRROR"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One pretrained checkpoint.

    Attributes:
        arch: architecture key (e.g. "seresnet50").
        tag: pretrained tag, unique per architecture (e.g. "ra2_in1k").
        variant: checkpoint layout, "timm" or "legacy".
        timm_name: timm's `<model>.<tag>` name.
        url: where the file is published.
        top1: published ImageNet-1k top-1 (%) at 224x224 (a3_in1k: 160 train).
        params: parameter count of the model.
        sha256: full sha256 of the file, or None where it is not known.
        input_size: the size the published top-1 was measured at, and the
            builder's default size for these weights.
        test_input_size: the larger size where timm's own evaluation
            reports a higher accuracy (informative).
        crop_pct: fraction of the resized short side kept by the eval crop.
        interpolation: resize method of the eval preprocessing.
        mean, std: RGB normalization of [0, 1] pixels.
        license: the weights' license.
    """

    arch: str
    tag: str
    variant: str
    timm_name: str
    url: str
    top1: float
    params: int
    sha256: str = None
    input_size: int = 224
    test_input_size: int = None
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    license: str = "apache-2.0"

    @property
    def name(self):
        return f"{self.arch}.{self.tag}"

    @property
    def file_format(self):
        return "safetensors" if self.url.endswith(".safetensors") else "pth"

    @property
    def sha256_prefix(self):
        """The hash prefix in a torch.hub-style file name (`name-<hex>.pth`), or None."""
        match = re.search(r"-([0-9a-f]{6,})\.pth$", self.url)
        return match.group(1) if match else None

    @property
    def file_name(self):
        if self.file_format == "safetensors":
            return f"{self.timm_name}.safetensors"
        return self.url.rsplit("/", 1)[-1]

    def resolved_url(self):
        """`url`, with its base replaced by $SE_KERAS_WEIGHTS_MIRROR when set.

        A mirror serves every file under its own base URL by file name, which
        is what an air-gapped cluster (or a test server) can provide.

        Example:
        >>> get("seresnet50", "legacy_in1k").resolved_url()  # without a mirror
        'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/se_resnet50-ce0d4300.pth'
        """
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            return f"{mirror.rstrip('/')}/{self.file_name}"
        return self.url

    def preprocessing(self):
        """The eval preprocessing of the published top-1, as a plain dict.

        Example:
        >>> get("seresnet50", "imagenet").preprocessing()["crop_pct"]
        0.875
        """
        return dict(
            mean=self.mean,
            std=self.std,
            input_size=self.input_size,
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
        )


def _hf(arch, tag, top1, params, **kwargs):
    name = f"{arch}.{tag}"
    return Checkpoint(arch, tag, "timm", name, HF_URL.format(name=name), top1, params, **kwargs)


def _legacy(arch, file_path, top1, params, **kwargs):
    return Checkpoint(
        arch, "legacy_in1k", "legacy", f"legacy_{arch}.in1k", f"{GITHUB}/{file_path}",
        top1, params, interpolation=kwargs.pop("interpolation", "bilinear"), **kwargs,
    )


# Ordered best first within each architecture: the first row is "imagenet".
CHECKPOINTS = (
    _legacy("seresnet18", "v0.1-weights/seresnet18-4bb0ce65.pth", 71.74, 11_778_592,
            interpolation="bicubic"),
    _legacy("seresnet34", "v0.1-weights/seresnet34-a4004e63.pth", 74.79, 21_958_868),
    _hf("seresnet50", "ra2_in1k", 80.26, 28_088_024, test_input_size=288, crop_pct=0.875),
    _hf("seresnet50", "a2_in1k", 80.10, 28_088_024, test_input_size=288, crop_pct=0.95),
    _hf("seresnet50", "a1_in1k", 80.01, 28_088_024, test_input_size=288, crop_pct=0.95),
    _legacy("seresnet50", "v0.1-cadene/se_resnet50-ce0d4300.pth", 77.65, 28_088_024),
    # Trained at 160 px; its published 77.04 is measured at 224.
    _hf("seresnet50", "a3_in1k", 77.04, 28_088_024, crop_pct=0.95),
    _legacy("seresnet101", "v0.1-cadene/se_resnet101-7e38fcc6.pth", 78.37, 49_326_872),
    _legacy("seresnet152", "v0.1-cadene/se_resnet152-d17c99b7.pth", 78.66, 66_821_848),
    _hf("seresnet152d", "ra2_in1k", 83.70, 66_841_080, input_size=256, test_input_size=320,
        crop_pct=0.95),
    _legacy("seresnext26_32x4d", "v0.1-weights/seresnext26_32x4d-65ebdb501.pth", 77.10,
            16_790_280, interpolation="bicubic"),
    _hf("seresnext26d_32x4d", "bt_in1k", 77.59, 16_809_512, test_input_size=288),
    _hf("seresnext26t_32x4d", "bt_in1k", 77.98, 16_806_976, test_input_size=288),
    _hf("seresnext50_32x4d", "racm_in1k", 81.27, 27_559_896, test_input_size=288),
    _hf("seresnext50_32x4d", "gluon_in1k", 79.92, 27_559_896),
    _legacy("seresnext50_32x4d", "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
            79.08, 27_559_896),
    _hf("seresnext101_32x4d", "gluon_in1k", 80.89, 48_955_416),
    _legacy("seresnext101_32x4d", "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
            80.27, 48_955_416),
    _hf("seresnext101_32x8d", "ah_in1k", 83.62, 93_569_048, crop_pct=0.95,
        test_input_size=288),
    _hf("seresnext101_64x4d", "gluon_in1k", 80.88, 88_232_984),
    _legacy("senet154", "v0.1-weights/legacy_senet154-e9eb9fe6.pth", 81.32, 115_088_984),
    _hf("senet154", "gluon_in1k", 81.26, 115_088_984),
)


def checkpoints_for(arch):
    """The checkpoints of one architecture, best first.

    Example:
    >>> [c.tag for c in checkpoints_for("senet154")]
    ['legacy_in1k', 'gluon_in1k']
    """
    return [c for c in CHECKPOINTS if c.arch == arch]


def tags_for(arch):
    """The tags `weights=` accepts for one architecture (short and timm-style).

    Example:
    >>> "legacy_in1k" in tags_for("seresnet50")
    True
    """
    tags = set()
    for c in checkpoints_for(arch):
        tags.update({c.tag, c.name, c.timm_name})
    return tags


def get(arch, weights):
    """The checkpoint that `weights` ("imagenet" or a tag) names for `arch`.

    Example:
    >>> get("seresnet50", "imagenet").timm_name
    'seresnet50.ra2_in1k'
    """
    rows = checkpoints_for(arch)
    if weights == "imagenet":
        if not rows:
            raise ValueError(
                f"No pretrained ImageNet weights are published for {arch}. "
                f"Received: weights={weights!r}"
            )
        return rows[0]
    for c in rows:
        if weights in (c.tag, c.name, c.timm_name):
            return c
    raise ValueError(
        f"Unknown pretrained tag for {arch}; known tags: "
        f"{', '.join(sorted(c.tag for c in rows)) or 'none'}. Received: weights={weights!r}"
    )


def default_variant(arch, fallback="timm"):
    """The layout of the architecture's best checkpoint ("imagenet").

    Example:
    >>> default_variant("seresnet101")
    'legacy'
    """
    rows = checkpoints_for(arch)
    return rows[0].variant if rows else fallback
