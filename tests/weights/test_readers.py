"""The torch-free checkpoint reader against files that torch itself wrote."""

import pathlib
import pickle

import numpy as np
import pytest
from safetensors.numpy import save_file

from se_keras.weights.readers import CheckpointReadError
from se_keras.weights.readers import read_checkpoint

PTH = pathlib.Path(__file__).parents[1] / "fixtures" / "pth"


@pytest.mark.parametrize("name", ["zip_format", "legacy_format", "wrapped"])
def test_reads_both_pickle_formats(name):
    expected = np.load(PTH / "expected.npz")
    state = read_checkpoint(PTH / f"{name}.pth")
    assert sorted(state) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(state[key], expected[key])
        if key != "bf16":  # NumPy has no bfloat16: read as float32
            assert state[key].dtype == expected[key].dtype
    assert state["transposed"].shape == (5, 6)
    assert state["count"].shape == ()


def test_reads_safetensors(tmp_path):
    arrays = {"a": np.arange(6, dtype="float32").reshape(2, 3)}
    save_file(arrays, str(tmp_path / "x.safetensors"))
    np.testing.assert_array_equal(read_checkpoint(tmp_path / "x.safetensors")["a"], arrays["a"])


def test_truncated_and_garbage_files(tmp_path):
    data = (PTH / "legacy_format.pth").read_bytes()
    cases = {
        "truncated_legacy.pth": data[: len(data) - 50],
        "truncated_zip.pth": (PTH / "zip_format.pth").read_bytes()[:1000],
        "garbage.pth": b"not a checkpoint at all",
        "garbage.safetensors": b"\x00" * 64,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointReadError, match=name):
            read_checkpoint(tmp_path / name)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_code_in_pickles(tmp_path):
    import io
    import zipfile

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        buffer = io.BytesIO()
        pickle.dump({"x": _Evil()}, buffer)
        archive.writestr("evil/data.pkl", buffer.getvalue())
    with pytest.raises(CheckpointReadError, match="Refusing to load builtins.print"):
        read_checkpoint(path)


def test_storage_shorter_than_its_tensors_is_an_error(tmp_path):
    import zipfile

    source = PTH / "zip_format.pth"
    bad = tmp_path / "short_storage.pth"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if "/data/" in item.filename and not item.filename.endswith(".pkl") and len(data) > 8:
                data = data[:8]  # a storage cut short
            dst.writestr(item, data)
    with pytest.raises(CheckpointReadError, match="short_storage.pth.*expected"):
        read_checkpoint(bad)
