"""Distributed and fault-tolerance tests, each training process real and separate.

One run of six processes (SE-ResNet-20 at 16x16 on the embedded digits):

- two MultiWorkerMirroredStrategy workers on 127.0.0.1 (TF_CONFIG),
- MirroredStrategy over two logical CPU devices,
- a plain single-process run (the reference),
- a run killed with SIGKILL after a checkpoint, then resumed.

All see the same global batches; the distributed ones must match the
reference within float tolerance, and the resumed one exactly.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("run_worker.py")
TIMEOUT = 480

BASE = {
    "image_size": 16, "batch_size": 32, "steps_per_epoch": 3, "epochs": 2,
    "warmup_epochs": 0.0, "export": False, "verbose": 2, "seed": 3, "log_every_steps": 1,
    "checkpoint_every_steps": 2, "deterministic": True,
    # BatchNorm statistics over the global batch, as in one process.
    "sync_batchnorm": True,
    # A small learning rate: early training with BatchNorm on tiny batches
    # amplifies float rounding (the all-reduce's summation order)
    # exponentially at large ones.
    "lr": 0.002,
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, name, overrides, tf_config=None, **spec):
    spec = {"overrides": {**BASE, "run_dir": str(tmp_path / name), **overrides}, **spec}
    spec_path = tmp_path / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(WORKER), str(spec_path)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log_path
    return proc


def _wait(proc, deadline):
    try:
        code = proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"timed out; log:\n{proc.log_path.read_text()[-3000:]}")
    assert code == 0, f"exit {code}; log:\n{proc.log_path.read_text()[-3000:]}"


def _weights(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _results(tmp_path, name):
    return json.loads((tmp_path / f"{name}.npz.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts all processes at once, kills one mid-run, resumes it, waits for all."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    deadline = time.time() + TIMEOUT
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = {}
    for index in range(2):
        procs[f"worker{index}"] = _start(
            tmp_path, f"worker{index}", {"strategy": "multi_worker", "run_dir": str(tmp_path / "mw")},
            tf_config={"cluster": cluster, "task": {"type": "worker", "index": index}},
            weights_out=str(tmp_path / f"worker{index}.npz"),
        )
    procs["mirrored"] = _start(tmp_path, "mirrored", {"strategy": "mirrored", "cpu_devices": 2},
                               weights_out=str(tmp_path / "mirrored.npz"))
    procs["single"] = _start(tmp_path, "single", {"strategy": "default"},
                             weights_out=str(tmp_path / "single.npz"),
                             initial_out=str(tmp_path / "initial.npz"))
    marker = tmp_path / "paused"
    killed = _start(tmp_path, "killed", {"strategy": "default"}, pause_at_step=3,
                    pause_marker=str(marker))
    while not marker.exists():
        assert killed.poll() is None, killed.log_path.read_text()[-3000:]
        assert time.time() < deadline, "the training process never reached step 3"
        time.sleep(0.2)
    killed.kill()  # SIGKILL: no cleanup, no final checkpoint.
    killed.wait()
    kill_state = {
        "returncode": killed.returncode,
        "checkpoint_state": (tmp_path / "killed" / "checkpoints" / "checkpoint").read_text(),
        "saved_model": (tmp_path / "killed" / "saved_model").exists(),
    }
    procs["resumed"] = _start(tmp_path, "resumed", {"strategy": "default",
                                                    "run_dir": str(tmp_path / "killed")},
                              resume=True, weights_out=str(tmp_path / "resumed.npz"))
    for proc in procs.values():
        _wait(proc, deadline)
    return tmp_path, kill_state


def test_multi_worker_and_mirrored_match_single_process(runs):
    tmp_path, _ = runs
    worker0, worker1 = _weights(tmp_path / "worker0.npz"), _weights(tmp_path / "worker1.npz")
    mirrored, single = _weights(tmp_path / "mirrored.npz"), _weights(tmp_path / "single.npz")
    # The two workers hold the same (mirrored) variables.
    for a, b in zip(worker0, worker1):
        np.testing.assert_array_equal(a, b)
    # Same global batches, synchronized BatchNorm: the same training, up to
    # the summation order of the all-reduce.
    for a, b, c in zip(worker0, mirrored, single):
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=5e-4)
        np.testing.assert_allclose(b, c, rtol=1e-3, atol=5e-4)
    mean_diff = np.mean([np.abs(a - c).mean() for a, c in zip(worker0, single)])
    assert mean_diff < 1e-4
    # ... while training moved the weights by much more than that.
    moved = max(float(np.abs(a - b).max())
                for a, b in zip(single, _weights(tmp_path / "initial.npz")))
    assert moved > 1e-2

    results, reference = _results(tmp_path, "worker0"), _results(tmp_path, "single")
    assert results["steps"] == reference["steps"] == 6
    # The padded distributed evaluation counts every validation image once.
    assert results["val_examples"] == reference["val_examples"] == 364
    assert abs(results["val_loss"] - reference["val_loss"]) < 1e-3
    # Only the chief wrote the run directory.
    run_config = json.loads((tmp_path / "mw" / "config.json").read_text())
    assert run_config["runtime"]["strategy"] == "multi_worker"
    assert run_config["runtime"]["replicas"] == 2
    checkpoints = sorted(p.name for p in (tmp_path / "mw" / "checkpoints").glob("*.index"))
    assert checkpoints == ["ckpt-3.index", "ckpt-4.index", "ckpt-6.index"]
    mirrored_config = json.loads((tmp_path / "mirrored" / "config.json").read_text())
    assert mirrored_config["runtime"]["strategy"] == "mirrored"
    assert mirrored_config["runtime"]["replicas"] == 2


def test_kill_9_then_resume_matches_uninterrupted_run(runs):
    tmp_path, kill_state = runs
    assert kill_state["returncode"] == -9
    # Killed at step 3, before that step's checkpoint: step 2's is the latest.
    assert 'model_checkpoint_path: "ckpt-2"' in kill_state["checkpoint_state"]
    assert not kill_state["saved_model"]
    assert "Resumed from" in (tmp_path / "resumed.log").read_text()
    for a, b in zip(_weights(tmp_path / "single.npz"), _weights(tmp_path / "resumed.npz")):
        np.testing.assert_array_equal(a, b)
    reference, resumed = _results(tmp_path, "single"), _results(tmp_path, "resumed")
    assert resumed["steps"] == 6
    assert resumed["val_loss"] == reference["val_loss"]
    history = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    # No temporary files left behind by the checkpoint writer.
    leftovers = [p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()
                 if "tmp" in p.name or p.name.startswith(".")]
    assert leftovers == []
