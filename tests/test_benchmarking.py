"""The benchmark's mechanics on a tiny model (timings are reported by the benchmark, never asserted)."""

import json

import pytest

from se_keras import benchmarking
from se_keras.cli import main


def test_train_step_comparison_reports_both_models_and_flops():
    result = benchmarking.compare("SEResNet20", 32, batch=2, mode="train", rounds=1, iterations=1)
    assert result.se_images_per_s > 0 and result.plain_images_per_s > 0
    assert result.se_gmacs > result.plain_gmacs > 0.04
    # A training step costs about three forward passes.
    assert result.se_gmac_per_s == 3 * result.se_gmacs * result.se_images_per_s


def test_interleaving_alternates_which_model_runs_first():
    calls = []
    times_a, times_b = benchmarking.interleaved(
        lambda: calls.append("a"), lambda: calls.append("b"), rounds=4, iterations=1, warmup=0)
    assert "".join(calls) == "abbaabba"
    assert len(times_a) == len(times_b) == 4


def test_slowdown_is_the_median_of_the_paired_ratios():
    result = benchmarking.Result("m", "inference", 1, 32, 10.0, 10.0, 1.0, 1.0,
                                 ratios=(1.10, 1.02, 0.98, 1.04, 1.03))
    assert abs(result.slowdown - 0.03) < 1e-12
    assert result.slowdown_range == pytest.approx((-0.02, 0.10))


def test_profile_finds_the_squeeze_scale_and_excitation_ops(tmp_path):
    profile = benchmarking.profile_se("SEResNet20", 32, batch=2, steps=1, logdir=str(tmp_path))
    # SE-ResNet-20 has nine SE blocks: squeeze by matmul, MLP, sigmoid gate, scale.
    # Grappler may fuse an MLP matmul with its bias and gate (FusedMatMul).
    ops = set(profile.se_ops)
    assert {"BatchMatMulV2", "Mul"} <= ops and ops & {"MatMul", "FusedMatMul"}
    assert "Sigmoid" in ops or "FusedMatMul" in ops
    assert "Conv2D" not in profile.se_ops  # convolutions are outside the SE layers
    assert 0 < profile.se_ms < profile.total_ms
    assert list(tmp_path.rglob("*.xplane.pb")), "the trace for TensorBoard was not written"


def test_serial_profile_runs_one_op_at_a_time(tmp_path):
    # The SE share the README reports: ops one at a time, in a fresh process,
    # so no op's time includes waiting for cores that another op holds.
    serial = benchmarking.profile_se("SEResNet20", 32, batch=2, steps=2, logdir=str(tmp_path),
                                     optimize=True, serial_ops=True)
    assert serial.ops == "serial" and serial.parallel_ops == 1
    assert serial.model == "SEResNet20 (optimized)"
    assert 0 < serial.se_ms < serial.total_ms <= serial.wall_ms
    assert "Mul" in serial.se_ops
    assert list(tmp_path.rglob("*.xplane.pb")), "the serial trace was not written"
    here = benchmarking.profile_se("SEResNet20", 32, batch=2, steps=1)
    assert here.ops == "overlapped" and here.parallel_ops >= 1


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = main(["benchmark", "--models", "SEResNet20:32", "--batch", "2", "--train-batch", "0",
                 "--rounds", "1", "--matmul-size", "256", "--json", str(path),
                 "--profile", str(tmp_path / "traces")])
    assert code == 0
    out = capsys.readouterr().out
    assert "| SEResNet20 (32px) | inference | 2 |" in out and "matmul" in out
    assert "Profile of the SE models" in out
    data = json.loads(path.read_text())
    assert data["results"][0]["model"] == "SEResNet20" and data["matmul_gmac_per_s"] > 0
    assert [p["ops"] for p in data["profiles"]] == ["serial", "overlapped"]
    assert all(p["se_ms"] > 0 for p in data["profiles"])
    assert data["profiles"][0]["parallel_ops"] == 1
    assert "| SEResNet20 (32px) | 2 | serial |" in out
