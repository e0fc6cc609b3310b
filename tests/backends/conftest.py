"""The backend test subset: the same tests on KERAS_BACKEND=tensorflow, jax or torch.

tests/test_backends.py runs this folder in a subprocess per backend; the TF
suite runs it too. Under JAX and torch:

- TensorFlow's outputs come from a TensorFlow process (`references`), never
  from TensorFlow imported here as a second backend;
- no se_keras module may import TensorFlow while these tests run (the
  layers, builders, weights, `se-keras convert` and the preprocessing record
  need only Keras): every `import tensorflow` that an se_keras module
  executes fails the test that triggered it.
"""

import builtins
import os
import pathlib
import random
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.backends import references

BACKEND = keras.backend.backend()
ROOT = pathlib.Path(__file__).resolve().parents[2]

_tensorflow_imports = []
if BACKEND != "tensorflow":
    _import = builtins.__import__

    def _recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        module = (globals or {}).get("__name__") or ""
        if level == 0 and name.partition(".")[0] == "tensorflow" and (
            module == "se_keras" or module.startswith("se_keras.")
        ):
            _tensorflow_imports.append(module)
        return _import(name, globals, locals, fromlist, level)

    builtins.__import__ = _recording_import


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """tests/conftest.py's fixture of this name, without importing TensorFlow.

    `keras.utils.set_random_seed` imports TensorFlow whenever it is
    installed, whatever the backend; these tests need no Keras seed (the
    comparisons load fixed weights), so only NumPy and Python are seeded.
    """
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    random.seed(0)
    np.random.seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


_reported = 0


@pytest.fixture(autouse=True)
def _no_tensorflow_import_by_se_keras():
    """Fails the test during which se_keras imported TensorFlow (the first test
    also reports the imports made while the test modules were collected)."""
    global _reported
    yield
    new, _reported = _tensorflow_imports[_reported:], len(_tensorflow_imports)
    assert not new, (
        f"se_keras imported TensorFlow on the {BACKEND} backend, from {sorted(set(new))}; "
        "import it lazily, where only TensorFlow does the job"
    )


@pytest.fixture(scope="session")
def tf_references(tmp_path_factory):
    """`get(kind)`: a folder with TensorFlow's references of `kind` ("layers", "families").

    From the runner's folder when it gave one; otherwise written here (on
    TensorFlow) or by a TensorFlow subprocess (on another backend).
    """
    given = os.environ.get(references.ENV)
    written = {}

    def get(kind):
        if given:
            return pathlib.Path(given)
        if kind not in written:
            directory = tmp_path_factory.mktemp(f"tf_references_{kind}")
            if BACKEND == "tensorflow":
                references.write(directory, kinds=(kind,))
            else:
                subprocess.run(
                    [sys.executable, "-c",
                     "import sys; from tests.backends import references; "
                     "references.write(sys.argv[1], kinds=(sys.argv[2],))",
                     str(directory), kind],
                    cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "tensorflow"},
                    check=True, timeout=600,
                )
            written[kind] = directory
        return written[kind]

    return get


_LARGEST = {}


@pytest.fixture
def record_difference():
    """`record(what, value)`: keeps the largest difference measured per `what`, for the summary."""

    def record(what, value):
        _LARGEST[what] = max(_LARGEST.get(what, 0.0), float(value))
        return value

    return record


def pytest_terminal_summary(terminalreporter):
    for what, value in sorted(_LARGEST.items()):
        terminalreporter.write_line(
            f"{BACKEND}: largest relative difference, {what}: {value:.1e}"
        )
