"""The benchmark's mechanics on a tiny model (timings are reported by the benchmark, never asserted)."""

import json

from se_keras import benchmarking
from se_keras.cli import main


def test_train_step_comparison_reports_both_models_and_flops():
    result = benchmarking.compare("SEResNet20", 32, batch=2, mode="train", rounds=1, iterations=1)
    assert result.se_images_per_s > 0 and result.plain_images_per_s > 0
    assert result.se_gmacs > result.plain_gmacs > 0.04
    # A training step costs about three forward passes.
    assert result.se_gmac_per_s == 3 * result.se_gmacs * result.se_images_per_s


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = main(["benchmark", "--models", "SEResNet20:32", "--batch", "2", "--train-batch", "0",
                 "--rounds", "1", "--matmul-size", "256", "--json", str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| SEResNet20 (32px) | inference | 2 |" in out and "matmul" in out
    data = json.loads(path.read_text())
    assert data["results"][0]["model"] == "SEResNet20" and data["matmul_gmac_per_s"] > 0
