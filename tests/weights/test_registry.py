"""The checkpoint registry: one consistent table."""

import pytest

from se_keras.applications import resnet
from se_keras.weights import registry
from se_keras.weights.loading import parse_timm_name
from tests.applications.test_resnet import TIMM_PARAMS


def test_rows_are_consistent():
    names = [c.name for c in registry.CHECKPOINTS]
    assert len(names) == len(set(names))
    expected = {(resnet.BUILDERS[b].arch, v): n for b, v, n in TIMM_PARAMS}
    for c in registry.CHECKPOINTS:
        assert c.arch in resnet.ARCHITECTURES
        assert c.variant in resnet.VARIANTS
        assert parse_timm_name(c.timm_name) == (c.arch, c.variant, True)
        if (c.arch, c.variant) in expected:
            assert c.params == expected[(c.arch, c.variant)], c.name
        assert 0.8 <= c.crop_pct <= 1.0
        assert c.url.startswith("https://")
        if c.variant == "legacy":
            assert c.file_format == "pth" and c.sha256_prefix, c.name
        else:
            assert c.url == f"https://huggingface.co/timm/{c.timm_name}/resolve/main/model.safetensors"


def test_at_least_the_notes_tags():
    names = {c.timm_name for c in registry.CHECKPOINTS}
    for name in [
        "seresnet50.a1_in1k", "seresnet50.a2_in1k", "seresnet50.ra2_in1k", "seresnet50.a3_in1k",
        "seresnet152d.ra2_in1k", "seresnext26d_32x4d.bt_in1k", "seresnext26t_32x4d.bt_in1k",
        "seresnext50_32x4d.racm_in1k", "seresnext50_32x4d.gluon_in1k",
        "seresnext101_32x4d.gluon_in1k", "seresnext101_64x4d.gluon_in1k",
        "seresnext101_32x8d.ah_in1k", "senet154.gluon_in1k", "legacy_seresnet18.in1k",
        "legacy_seresnet34.in1k", "legacy_seresnet50.in1k", "legacy_seresnet101.in1k",
        "legacy_seresnet152.in1k", "legacy_seresnext26_32x4d.in1k",
        "legacy_seresnext50_32x4d.in1k", "legacy_seresnext101_32x4d.in1k", "legacy_senet154.in1k",
    ]:
        assert name in names


def test_imagenet_is_the_best_checkpoint_and_sets_the_default_layout():
    for arch in {c.arch for c in registry.CHECKPOINTS}:
        rows = registry.checkpoints_for(arch)
        assert registry.get(arch, "imagenet") is max(rows, key=lambda c: c.top1)
        assert registry.default_variant(arch) == rows[0].variant


def test_tags_and_errors():
    assert registry.get("seresnet50", "a1_in1k").timm_name == "seresnet50.a1_in1k"
    assert registry.get("seresnet50", "legacy_seresnet50.in1k").variant == "legacy"
    with pytest.raises(ValueError, match="Received: weights='b7_in1k'"):
        registry.get("seresnet50", "b7_in1k")


def test_mirror_replaces_the_base_url(monkeypatch):
    c = registry.get("seresnet50", "legacy_in1k")
    monkeypatch.setenv(registry.MIRROR_ENV, "http://mirror.local/weights/")
    assert c.resolved_url() == "http://mirror.local/weights/se_resnet50-ce0d4300.pth"
    hub = registry.get("seresnet50", "ra2_in1k")
    assert hub.resolved_url() == "http://mirror.local/weights/seresnet50.ra2_in1k.safetensors"
