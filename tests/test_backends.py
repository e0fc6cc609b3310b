"""The backend subset (tests/backends) on JAX and on torch, each in its own process.

Keras reads KERAS_BACKEND once, when it is imported, so each backend needs
a process of its own. This TensorFlow process writes TensorFlow's outputs
for the subset's comparisons first (tests/backends/references.py), so the
other backend never imports TensorFlow as a backend. pytest.ini's plugin
(tests/backends/plugin.py) runs the two tests on different xdist workers
and prints their summaries at the end of the session.
"""

import importlib.util
import os
import pathlib
import re
import resource
import subprocess
import sys
import time

import pytest

from tests.backends import references

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Under pytest.ini's --timeout=900 for the whole test.
RUN_TIMEOUT_S = 840


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_subset_passes(backend, tmp_path, record_property):
    assert importlib.util.find_spec(backend), (
        f"{backend} is not installed; it is in the test extra: pip install -e '.[test]'")
    start = time.perf_counter()
    directory = references.write(tmp_path / "tf_references")
    reference_s = time.perf_counter() - start
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    env.update({"KERAS_BACKEND": backend, references.ENV: str(directory)})
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/backends", "-q", "-p", "no:cacheprovider",
         "-n", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    elapsed = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
    output = result.stdout + result.stderr
    counts = re.findall(r"^=*\s*(\d+ \w+.*?) in [\d.]+s", result.stdout, re.MULTILINE)
    differences = re.findall(rf"^{backend}: largest relative difference, (.+)$",
                             result.stdout, re.MULTILINE)
    last = counts[-1] if counts else ""
    summary = (f"{backend}: tests/backends {last or 'did not finish'} in {elapsed:.0f} s "
               f"({cpu:.0f} s of CPU; +{reference_s:.0f} s for TensorFlow's references); "
               f"largest relative differences: {'; '.join(differences)}")
    record_property("backend_run", summary)
    print(summary)
    assert result.returncode == 0, output[-8000:]
    outcomes = {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", last)}
    # Everything ran: nothing skipped, deselected or expected to fail.
    assert outcomes.get("passed") and set(outcomes) <= {"passed", "warning", "warnings"}, summary
