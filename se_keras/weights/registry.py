"""Every public ImageNet-1k SE checkpoint, in one table (timm's `default_cfgs` style).

Each row names the Keras architecture (`se_keras.applications.resnet.
ARCHITECTURES`) and its checkpoint layout ("timm" or "legacy"), where the
file lives, how to check it, how to preprocess for it, and the accuracy its
publisher reported at 224x224 (timm's results tables).

Hashes: every row's file is a GitHub release `.pth` whose name carries the
first hex digits of its sha256 (the torch.hub convention), which the
download verifies before the file is trusted. For the weights that timm
now serves from the Hugging Face hub (safetensors), timm's own
`default_cfgs` list beside each hub id the release `.pth` the hub copy was
made from; that verified file is the source here, and the hub id is kept
for reference (`hf_hub_id`). No row is left without a hash. Every converted
checkpoint must also supply every tensor the architecture needs with the
right shape, and nothing else.
"""

import dataclasses
import os
import re
import warnings

from se_keras._constants import IMAGENET_MEAN
from se_keras._constants import IMAGENET_STD

GITHUB = "https://github.com/rwightman/pytorch-image-models/releases/download"
GITHUB_HF = "https://github.com/huggingface/pytorch-image-models/releases/download"
GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download"
MIRROR_ENV = "SE_KERAS_WEIGHTS_MIRROR"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One pretrained checkpoint.

    Attributes:
        arch: architecture key (e.g. "seresnet50").
        tag: pretrained tag, unique per architecture (e.g. "ra2_in1k").
        layout: checkpoint key layout, "timm" or "legacy" (`variant` is its
            deprecated old name).
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
        hf_hub_id: where timm serves the same weights today (the Hugging
            Face hub, safetensors; no hash published), for reference.
    """

    arch: str
    tag: str
    layout: str
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
    hf_hub_id: str = None

    @property
    def variant(self):
        """Deprecated name of `layout`, removed in 0.2."""
        warnings.warn("Checkpoint.variant is deprecated; use Checkpoint.layout.",
                      DeprecationWarning, stacklevel=2)
        return self.layout

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

    def preprocessing_record(self):
        """The eval preprocessing of the published top-1, as a `se_keras.Preprocessing`.

        Example:
        >>> get("seresnet50", "legacy_in1k").preprocessing_record().interpolation
        'bilinear'
        """
        from se_keras.preprocessing import Preprocessing

        return Preprocessing(
            size=self.input_size,
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            weights=self.name,
        )


def _hf(arch, tag, url, top1, params, **kwargs):
    """A timm-layout row: the release `.pth` timm lists for the hub weights `timm/<arch>.<tag>`."""
    name = f"{arch}.{tag}"
    return Checkpoint(arch, tag, "timm", name, url, top1, params, hf_hub_id=f"timm/{name}",
                      **kwargs)


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
    _hf("seresnet50", "ra2_in1k",
        f"{GITHUB}/v0.1-weights/seresnet50_ra_224-8efdb4bb.pth",
        80.26, 28_088_024, test_input_size=288, crop_pct=0.875),
    _hf("seresnet50", "a2_in1k",
        f"{GITHUB_HF}/v0.1-rsb-weights/seresnet50_a2_0-850de0d9.pth",
        80.10, 28_088_024, test_input_size=288, crop_pct=0.95),
    _hf("seresnet50", "a1_in1k",
        f"{GITHUB_HF}/v0.1-rsb-weights/seresnet50_a1_0-ffa00869.pth",
        80.01, 28_088_024, test_input_size=288, crop_pct=0.95),
    _legacy("seresnet50", "v0.1-cadene/se_resnet50-ce0d4300.pth", 77.65, 28_088_024),
    # Trained at 160 px; its published 77.04 is measured at 224.
    _hf("seresnet50", "a3_in1k",
        f"{GITHUB_HF}/v0.1-rsb-weights/seresnet50_a3_0-317ecd56.pth",
        77.04, 28_088_024, crop_pct=0.95),
    _legacy("seresnet101", "v0.1-cadene/se_resnet101-7e38fcc6.pth", 78.37, 49_326_872),
    _legacy("seresnet152", "v0.1-cadene/se_resnet152-d17c99b7.pth", 78.66, 66_821_848),
    _hf("seresnet152d", "ra2_in1k",
        f"{GITHUB}/v0.1-weights/seresnet152d_ra2-04464dd2.pth",
        83.70, 66_841_080, input_size=256, test_input_size=320,
        crop_pct=0.95),
    _legacy("seresnext26_32x4d", "v0.1-weights/seresnext26_32x4d-65ebdb501.pth", 77.10,
            16_790_280, interpolation="bicubic"),
    _hf("seresnext26d_32x4d", "bt_in1k",
        f"{GITHUB}/v0.1-weights/seresnext26d_32x4d-80fa48a3.pth",
        77.59, 16_809_512, test_input_size=288),
    _hf("seresnext26t_32x4d", "bt_in1k",
        f"{GITHUB}/v0.1-weights/seresnext26tn_32x4d-569cb627.pth",
        77.98, 16_806_976, test_input_size=288),
    _hf("seresnext50_32x4d", "racm_in1k",
        f"{GITHUB}/v0.1-weights/seresnext50_32x4d_racm-a304a460.pth",
        81.27, 27_559_896, test_input_size=288),
    _hf("seresnext50_32x4d", "gluon_in1k",
        f"{GLUON}/v0.1/gluon_seresnext50_32x4d-90cf2d6e.pth",
        79.92, 27_559_896),
    _legacy("seresnext50_32x4d", "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
            79.08, 27_559_896),
    _hf("seresnext101_32x4d", "gluon_in1k",
        f"{GLUON}/v0.1/gluon_seresnext101_32x4d-cf52900d.pth",
        80.89, 48_955_416),
    _legacy("seresnext101_32x4d", "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
            80.27, 48_955_416),
    _hf("seresnext101_32x8d", "ah_in1k",
        f"{GITHUB}/v0.1-tpu-weights/seresnext101_32x8d_ah-e6bc4c0a.pth",
        83.62, 93_569_048, crop_pct=0.95,
        test_input_size=288),
    _hf("seresnext101_64x4d", "gluon_in1k",
        f"{GLUON}/v0.1/gluon_seresnext101_64x4d-f9926f93.pth",
        80.88, 88_232_984),
    _legacy("senet154", "v0.1-weights/legacy_senet154-e9eb9fe6.pth", 81.32, 115_088_984),
    _hf("senet154", "gluon_in1k",
        f"{GLUON}/v0.1/gluon_senet154-70a1a3c0.pth",
        81.26, 115_088_984),
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


# timm's default pretrained tag of a model name given without one (the first
# of its `default_cfgs`), where the registry holds several rows of one layout.
TIMM_DEFAULT_TAGS = {"seresnet50": "a1_in1k", "seresnext50_32x4d": "racm_in1k"}


def for_timm_name(timm_name):
    """The registry row that a timm model name means, or None.

    "legacy_seresnet50" and "legacy_seresnet50.in1k" mean the legacy row;
    "seresnet50.ra2_in1k" that tag; a name without a tag means the tag timm
    itself loads for it ("seresnet50" -> a1_in1k). timm's deprecated
    "gluon_" model names mean their gluon_in1k rows.

    Example:
    >>> for_timm_name("legacy_seresnet50").tag
    'legacy_in1k'
    >>> for_timm_name("seresnet50").tag
    'a1_in1k'
    """
    name, _, tag = str(timm_name).partition(".")
    if name.startswith("gluon_"):
        name, tag = name[len("gluon_"):], tag or "gluon_in1k"
    legacy = name.startswith("legacy_")
    arch = name[len("legacy_"):] if legacy else name
    rows = [c for c in checkpoints_for(arch) if (c.layout == "legacy") == legacy]
    if tag:
        rows = [c for c in rows if tag in (c.tag, c.timm_name.partition(".")[2])]
    elif len(rows) > 1:
        rows = [c for c in rows if c.tag == TIMM_DEFAULT_TAGS.get(arch)]
    return rows[0] if len(rows) == 1 else None


def default_layout(arch, fallback="timm"):
    """The layout of the architecture's best checkpoint ("imagenet").

    Example:
    >>> default_layout("seresnet101")
    'legacy'
    """
    rows = checkpoints_for(arch)
    return rows[0].layout if rows else fallback


def default_variant(arch, fallback="timm"):
    """Deprecated name of `default_layout`, removed in 0.2."""
    warnings.warn("default_variant is deprecated; use default_layout.",
                  DeprecationWarning, stacklevel=2)
    return default_layout(arch, fallback)
