"""The checkpoint registry: one consistent table."""

import pytest

from se_keras.applications import resnet
from se_keras.weights import registry
from se_keras.applications.timm_names import parse_timm_name
from tests.applications.test_resnet import TIMM_PARAMS


def test_rows_are_consistent():
    names = [c.name for c in registry.CHECKPOINTS]
    assert len(names) == len(set(names))
    expected = {(resnet.BUILDERS[b].arch, v): n for b, v, n in TIMM_PARAMS}
    for c in registry.CHECKPOINTS:
        assert c.arch in resnet.ARCHITECTURES
        assert c.layout in resnet.LAYOUTS
        assert parse_timm_name(c.timm_name) == (c.arch, c.layout, True)
        if (c.arch, c.layout) in expected:
            assert c.params == expected[(c.arch, c.layout)], c.name
        assert 0.8 <= c.crop_pct <= 1.0
        # Every row is a verified file: a GitHub release .pth with its sha256 prefix.
        assert c.url.startswith("https://github.com/"), c.name
        assert c.file_format == "pth" and len(c.sha256_prefix) >= 8, c.name
        if c.layout == "timm":
            assert c.hf_hub_id == f"timm/{c.timm_name}"


# timm 1.0.31's pretrained_cfg of each row (timm.models.get_pretrained_cfg):
# its release url, input size, crop_pct and interpolation; mean and std are
# ImageNet's for every row.
TIMM_CFGS = {
    "seresnet50.ra2_in1k": ("v0.1-weights/seresnet50_ra_224-8efdb4bb.pth", 224, 0.875, "bicubic"),
    "seresnet50.a1_in1k": ("v0.1-rsb-weights/seresnet50_a1_0-ffa00869.pth", 224, 0.95, "bicubic"),
    "seresnet50.a2_in1k": ("v0.1-rsb-weights/seresnet50_a2_0-850de0d9.pth", 224, 0.95, "bicubic"),
    # timm's default eval size is 160 (the training size); the published
    # 77.04 is timm's result at its test size, 224, which the row records.
    "seresnet50.a3_in1k": ("v0.1-rsb-weights/seresnet50_a3_0-317ecd56.pth", 224, 0.95, "bicubic"),
    "seresnet152d.ra2_in1k": ("v0.1-weights/seresnet152d_ra2-04464dd2.pth", 256, 0.95, "bicubic"),
    "seresnext26d_32x4d.bt_in1k": ("v0.1-weights/seresnext26d_32x4d-80fa48a3.pth", 224, 0.875,
                                   "bicubic"),
    "seresnext26t_32x4d.bt_in1k": ("v0.1-weights/seresnext26tn_32x4d-569cb627.pth", 224, 0.875,
                                   "bicubic"),
    "seresnext50_32x4d.racm_in1k": ("v0.1-weights/seresnext50_32x4d_racm-a304a460.pth", 224,
                                    0.875, "bicubic"),
    "seresnext50_32x4d.gluon_in1k": ("v0.1/gluon_seresnext50_32x4d-90cf2d6e.pth", 224, 0.875,
                                     "bicubic"),
    "seresnext101_32x4d.gluon_in1k": ("v0.1/gluon_seresnext101_32x4d-cf52900d.pth", 224, 0.875,
                                      "bicubic"),
    "seresnext101_32x8d.ah_in1k": ("v0.1-tpu-weights/seresnext101_32x8d_ah-e6bc4c0a.pth", 224,
                                   0.95, "bicubic"),
    "seresnext101_64x4d.gluon_in1k": ("v0.1/gluon_seresnext101_64x4d-f9926f93.pth", 224, 0.875,
                                      "bicubic"),
    "senet154.gluon_in1k": ("v0.1/gluon_senet154-70a1a3c0.pth", 224, 0.875, "bicubic"),
    "legacy_seresnet18.in1k": ("v0.1-weights/seresnet18-4bb0ce65.pth", 224, 0.875, "bicubic"),
    "legacy_seresnet34.in1k": ("v0.1-weights/seresnet34-a4004e63.pth", 224, 0.875, "bilinear"),
    "legacy_seresnet50.in1k": ("v0.1-cadene/se_resnet50-ce0d4300.pth", 224, 0.875, "bilinear"),
    "legacy_seresnet101.in1k": ("v0.1-cadene/se_resnet101-7e38fcc6.pth", 224, 0.875, "bilinear"),
    "legacy_seresnet152.in1k": ("v0.1-cadene/se_resnet152-d17c99b7.pth", 224, 0.875, "bilinear"),
    "legacy_seresnext26_32x4d.in1k": ("v0.1-weights/seresnext26_32x4d-65ebdb501.pth", 224, 0.875,
                                      "bicubic"),
    "legacy_seresnext50_32x4d.in1k": ("v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth", 224,
                                      0.875, "bilinear"),
    "legacy_seresnext101_32x4d.in1k": ("v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
                                       224, 0.875, "bilinear"),
    "legacy_senet154.in1k": ("v0.1-weights/legacy_senet154-e9eb9fe6.pth", 224, 0.875, "bilinear"),
}


def test_rows_record_timms_own_files_and_eval_settings():
    assert {c.timm_name for c in registry.CHECKPOINTS} == set(TIMM_CFGS)
    for c in registry.CHECKPOINTS:
        url_tail, size, crop_pct, interpolation = TIMM_CFGS[c.timm_name]
        assert c.url.endswith("/" + url_tail), c.name
        record = c.preprocessing_record()
        assert (record.size, record.crop_pct, record.interpolation) == (
            size, crop_pct, interpolation), c.name
        assert record.mean == registry.IMAGENET_MEAN and record.std == registry.IMAGENET_STD
        assert record.weights == c.name


def test_timm_names_map_to_their_rows():
    assert registry.for_timm_name("legacy_seresnet50").tag == "legacy_in1k"
    assert registry.for_timm_name("legacy_seresnet50.in1k").interpolation == "bilinear"
    assert registry.for_timm_name("seresnet50").tag == "a1_in1k"  # timm's default tag
    assert registry.for_timm_name("seresnet50.ra2_in1k").tag == "ra2_in1k"
    assert registry.for_timm_name("seresnext50_32x4d").tag == "racm_in1k"
    assert registry.for_timm_name("gluon_seresnext50_32x4d").tag == "gluon_in1k"
    assert registry.for_timm_name("senet154").tag == "gluon_in1k"
    assert registry.for_timm_name("seresnet50.b9_in1k") is None
    assert registry.for_timm_name("resnet50") is None


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
        assert registry.default_layout(arch) == rows[0].layout


def test_tags_and_errors():
    assert registry.get("seresnet50", "a1_in1k").timm_name == "seresnet50.a1_in1k"
    assert registry.get("seresnet50", "legacy_seresnet50.in1k").layout == "legacy"
    with pytest.raises(ValueError, match="Received: weights='b7_in1k'"):
        registry.get("seresnet50", "b7_in1k")


def test_mirror_replaces_the_base_url(monkeypatch):
    c = registry.get("seresnet50", "legacy_in1k")
    monkeypatch.setenv(registry.MIRROR_ENV, "http://mirror.local/weights/")
    assert c.resolved_url() == "http://mirror.local/weights/se_resnet50-ce0d4300.pth"
    hub = registry.get("seresnet50", "ra2_in1k")
    assert hub.resolved_url() == "http://mirror.local/weights/seresnet50_ra_224-8efdb4bb.pth"


def test_moved_names_keep_a_deprecated_alias():
    import se_keras.weights
    from se_keras.applications import timm_names

    with pytest.warns(DeprecationWarning, match="se_keras.applications.from_timm"):
        assert se_keras.weights.from_timm is timm_names.from_timm
    with pytest.warns(DeprecationWarning, match="use Checkpoint.layout"):
        assert registry.get("seresnet50", "legacy_in1k").variant == "legacy"
    assert resnet.resolve_variant is resnet.resolve_layout
    assert resnet.resolve_layout("seresnet101") == "legacy"
