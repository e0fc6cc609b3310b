"""The torch-free checkpoint reader against files that torch itself wrote.

- tests/fixtures/pth/ (make_pth_fixtures.py): both pickle formats, views,
  shared storages, wrapped state dicts.
- tests/fixtures/dtypes/ (make_dtype_fixtures.py): float16, bfloat16 and
  float32 state dicts with a `num_batches_tracked` counter and
  non-contiguous tensors, each written by torch in all three formats
  (safetensors, zip .pth, legacy .pth), with torch's own float32 upcast;
  torch 2.x's untyped storages (`_rebuild_tensor_v3`).
- End to end: a full seresnet18 checkpoint in timm's layout, in float16 and
  bfloat16, through `from_timm`. It is 23 MB in 16 bits, too big for the
  repository, so it is written at test time by the small writers below;
  they are first checked to produce files that read exactly like torch's.
"""

import collections
import io
import json
import pathlib
import pickle
import pickletools
import re
import struct
import zipfile

import keras
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from se_keras.applications import from_timm
from se_keras.weights.readers import CheckpointReadError
from se_keras.weights.readers import read_checkpoint
from se_keras.weights.timm_converter import keras_targets
from tests.weights import checkpoint_generator as gen

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
PTH = FIXTURES / "pth"
DTYPES = FIXTURES / "dtypes"
FORMATS = {"safetensors": "{}.safetensors", "zip": "{}_zip.pth", "legacy": "{}_legacy.pth"}
FIXTURE_FILES = [(fmt, dtype) for fmt in FORMATS for dtype in ("float16", "bfloat16", "float32")]


@pytest.mark.parametrize("name", ["zip_format", "legacy_format", "wrapped"])
def test_reads_both_pickle_formats(name):
    expected = np.load(PTH / "expected.npz")
    state = read_checkpoint(PTH / f"{name}.pth")
    assert sorted(state) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(state[key], expected[key])
        # float16 and bfloat16 (which NumPy lacks) come back as float32.
        wanted = "float32" if key in ("half", "bf16") else expected[key].dtype
        assert state[key].dtype == wanted, key
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


# --- float16 / bfloat16 / float32 fixtures written by torch --------------------------


def _same_bits(actual, expected):
    """Equal dtype, shape and bytes: -0.0 is not 0.0, NaN payloads count."""
    return (
        actual.dtype == expected.dtype
        and actual.shape == expected.shape
        and np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes()
    )


@pytest.mark.parametrize("fmt,dtype", FIXTURE_FILES, ids=[f"{f}-{d}" for f, d in FIXTURE_FILES])
def test_reads_torch_files_of_each_dtype(fmt, dtype):
    expected = np.load(DTYPES / f"expected_{dtype}.npz")
    state = read_checkpoint(DTYPES / FORMATS[fmt].format(dtype))
    assert sorted(state) == sorted(expected.files)
    for key in expected.files:
        # torch's own .float(): float16/bfloat16 come back as float32, bit for bit.
        assert _same_bits(state[key], expected[key]), (key, state[key], expected[key])
    counter = state["bn.num_batches_tracked"]
    assert counter.dtype == np.int64 and counter.shape == () and counter == 2**33 + 5
    assert state["fc.weight"].shape == (5, 6)  # saved transposed (strided) in .pth
    assert np.isnan(state["extremes"][4]) and np.signbit(state["extremes"][1])


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_untyped_storages_of_torch_2(fmt):
    """uint16/32/64: raw byte storages with the dtype in `_rebuild_tensor_v3`."""
    expected = np.load(DTYPES / "expected_uint.npz")
    state = read_checkpoint(DTYPES / f"uint_{fmt}.pth")
    for key in expected.files:
        assert _same_bits(state[key], expected[key]), key


def test_unsupported_dtype_is_named():
    with pytest.raises(CheckpointReadError, match=r"float8_zip\.pth.*torch\.float8_e4m3fn"):
        read_checkpoint(DTYPES / "float8_zip.pth")


@pytest.mark.parametrize("fmt,dtype", FIXTURE_FILES, ids=[f"{f}-{d}" for f, d in FIXTURE_FILES])
def test_truncated_fixtures_are_errors_naming_the_file(fmt, dtype, tmp_path):
    name = FORMATS[fmt].format(dtype)
    data = (DTYPES / name).read_bytes()
    for cut in sorted({0, 1, 7, 8, 9, 16, *range(32, len(data), 61), len(data) - 1}):
        bad = tmp_path / f"cut{cut}_{name}"
        bad.write_bytes(data[:cut])
        # Exactly CheckpointReadError: no raw struct/json/pickle/NumPy error.
        with pytest.raises(CheckpointReadError, match=re.escape(str(bad))) as caught:
            read_checkpoint(bad)
        assert caught.type is CheckpointReadError


def _safetensors_parts(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _safetensors_bytes(header, buffer):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    return struct.pack("<Q", len(text)) + text + buffer


def _edit(header, **changes):
    header = json.loads(json.dumps(header))
    for key, (field, value) in changes.items():
        header[key.replace("__", ".")][field] = value
    return header


def test_inconsistent_safetensors_are_errors_naming_the_file(tmp_path):
    header, buffer = _safetensors_parts(DTYPES / "bfloat16.safetensors")
    end = header["fc.weight"]["data_offsets"][1]
    cases = {
        "long_header": (struct.pack("<Q", 10**12) + b"{}", "header length 1000000000000"),
        "not_json": (_safetensors_bytes(b"{not json}", buffer), "not JSON"),
        "not_utf8": (_safetensors_bytes(b"\xff\xfe", buffer), "not JSON"),
        "list": (_safetensors_bytes(b"[1, 2]", buffer), "not a JSON object"),
        "duplicate": (
            _safetensors_bytes(
                json.dumps(header).replace('"bn.bias"', '"conv.weight"').encode(), buffer
            ),
            "more than once",
        ),
        "dtype": (_safetensors_bytes(_edit(header, bn__bias=("dtype", "F8_E4M3")), buffer),
                  "'bn.bias' has dtype 'F8_E4M3'"),
        "shape": (_safetensors_bytes(_edit(header, bn__bias=("shape", [5])), buffer),
                  "'bn.bias' of shape \\[5\\].*needs 10 bytes"),
        "negative": (_safetensors_bytes(_edit(header, bn__bias=("shape", [-4])), buffer),
                     "'bn.bias'.*non-negative"),
        "boolean": (_safetensors_bytes(_edit(header, bn__bias=("shape", [True])), buffer),
                    "'bn.bias'.*non-negative"),
        "no_offsets": (_safetensors_bytes(_edit(header, bn__bias=("data_offsets", [8])), buffer),
                       "'bn.bias' has shape"),
        "past_the_end": (
            _safetensors_bytes(_edit(header, fc__weight=("data_offsets", [end, end + 60])),
                               buffer),
            "starts at byte",
        ),
        "overlap": (
            _safetensors_bytes(_edit(header, bn__running_mean=("data_offsets", [0, 8])), buffer),
            "starts at byte",
        ),
        "trailing": (_safetensors_bytes(header, buffer + b"\0" * 8), "trailing bytes"),
        "short": (_safetensors_bytes(header, buffer[:-2]), "truncated"),
        "missing_field": (
            _safetensors_bytes({**header, "x": {"dtype": "F32", "shape": [1]}}, buffer),
            "'x' needs dtype, shape and data_offsets",
        ),
    }
    for case, (content, message) in cases.items():
        bad = tmp_path / f"{case}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(CheckpointReadError, match=f"{case}.safetensors.*{message}") as caught:
            read_checkpoint(bad)
        assert caught.type is CheckpointReadError, case


def test_inconsistent_pth_are_errors_naming_the_file(tmp_path):
    source = DTYPES / "bfloat16_zip.pth"

    def rewrite(name, change):
        bad = tmp_path / name
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.infolist():
                data = change(item.filename, src.read(item.filename))
                if data is not None:
                    dst.writestr(item, data)
        return bad

    cases = {
        "byteorder.pth": (lambda n, d: b"middle" if n.endswith("/byteorder") else d,
                          "unknown byte order 'middle'"),
        "no_record.pth": (lambda n, d: None if n.endswith("/data/0") else d,
                          "storage record '.*data/0' is missing"),
        "odd_storage.pth": (lambda n, d: d[:-1] if n.endswith("/data/0") else d,
                            "storage '0' holds .* bytes, expected"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(CheckpointReadError, match=f"{name}.*{message}"):
            read_checkpoint(rewrite(name, change))
    # Legacy: the first storage's element count disagrees with the pickle's.
    data = bytearray((DTYPES / "bfloat16_legacy.pth").read_bytes())
    stream = io.BytesIO(bytes(data))
    for _ in range(3):  # magic number, protocol version, sys info
        pickle.load(stream)
    for opcode, _, _ in pickletools.genops(stream):  # the state dict, not loaded
        if opcode.name == "STOP":
            break
    pickle.load(stream)  # the storage keys
    position = stream.tell()
    (numel,) = struct.unpack("<q", data[position : position + 8])
    data[position : position + 8] = struct.pack("<q", numel + 1)
    bad = tmp_path / "count.pth"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointReadError, match=f"count.pth.*has {numel + 1} elements"):
        read_checkpoint(bad)


# --- Writers for test-time checkpoints -------------------------------------------
# Stand-ins pickled under this module's name and then renamed to the globals
# that torch.save writes: pickle protocol 2 writes a global as the plain text
# "c<module>\n<name>\n", so the renamed stream is what torch would have written.


class BFloat16Storage:  # -> torch.BFloat16Storage
    pass


class HalfStorage:  # -> torch.HalfStorage
    pass


class FloatStorage:  # -> torch.FloatStorage
    pass


class LongStorage:  # -> torch.LongStorage
    pass


def _rebuild_tensor_v2(*args):  # -> torch._utils._rebuild_tensor_v2
    raise AssertionError("a stand-in, never called")


# dtype: (safetensors dtype, torch storage stand-in, NumPy type of the stored bits)
_KINDS = {
    "float32": ("F32", FloatStorage, "<f4"),
    "float16": ("F16", HalfStorage, "<f2"),
    "bfloat16": ("BF16", BFloat16Storage, "<u2"),
    "int64": ("I64", LongStorage, "<i8"),
}


class _Stored:
    """A tensor to write: its torch dtype and its bits, little-endian."""

    def __init__(self, dtype, bits):
        self.dtype, self.bits = dtype, np.array(bits, _KINDS[dtype][2], order="C")

    @classmethod
    def rounded(cls, array, dtype):
        """float32 -> float16/bfloat16 rounded to nearest even (ml_dtypes, like torch's .to())."""
        if dtype == "bfloat16":
            return cls(dtype, np.asarray(array).astype(ml_dtypes.bfloat16).view("<u2"))
        return cls(dtype, np.asarray(array).astype(_KINDS[dtype][2]))

    def upcast(self):
        """float32 values the reader must return, computed by ml_dtypes, not by the reader."""
        if self.dtype == "bfloat16":
            return self.bits.view(ml_dtypes.bfloat16).astype(np.float32)
        return self.bits.astype(np.float32) if self.dtype != "int64" else self.bits.astype(np.int64)


class _StorageRef:
    def __init__(self, key, stored):
        self.key, self.stored = key, stored


class _TensorRef:
    def __init__(self, key, stored):
        self.key, self.stored = key, stored

    def __reduce__(self):
        bits = self.stored.bits
        stride = tuple(s // bits.itemsize for s in bits.strides)
        args = (_StorageRef(self.key, self.stored), 0, bits.shape, stride, False,
                collections.OrderedDict())
        return (_rebuild_tensor_v2, args)


class _TorchPickler(pickle.Pickler):
    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if not isinstance(obj, _StorageRef):
            return None
        pid = ("storage", _KINDS[obj.stored.dtype][1], obj.key, "cpu", obj.stored.bits.size)
        return pid + (None,) if self.legacy else pid  # legacy: view metadata


def _torch_pickle(state, legacy):
    buffer = io.BytesIO()
    refs = collections.OrderedDict(
        (name, _TensorRef(str(i), stored)) for i, (name, stored) in enumerate(state.items())
    )
    _TorchPickler(buffer, legacy).dump(refs)
    data = buffer.getvalue()
    renames = {"_rebuild_tensor_v2": "torch._utils"}
    renames.update({kind[1].__name__: "torch" for kind in _KINDS.values()})
    for name, module in renames.items():
        data = data.replace(f"c{__name__}\n{name}\n".encode(), f"c{module}\n{name}\n".encode())
    assert __name__.encode() not in data
    return data


def _write_safetensors(path, state):
    header, offset = {}, 0
    for name, stored in state.items():
        size = stored.bits.nbytes
        header[name] = {"dtype": _KINDS[stored.dtype][0], "shape": list(stored.bits.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    data = b"".join(stored.bits.tobytes() for stored in state.values())
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _write_zip_pth(path, state, byteorder="little"):
    """torch >= 2.1 writes storages in the machine's byte order and records it."""
    order = "<" if byteorder == "little" else ">"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _torch_pickle(state, legacy=False))
        archive.writestr("archive/byteorder", byteorder)
        for i, stored in enumerate(state.values()):
            bits = stored.bits.astype(stored.bits.dtype.newbyteorder(order))
            archive.writestr(f"archive/data/{i}", bits.tobytes())
        archive.writestr("archive/version", "3\n")


def _write_legacy_pth(path, state):
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(_torch_pickle(state, legacy=True))
        pickle.dump([str(i) for i in range(len(state))], f, protocol=2)
        for stored in state.values():
            f.write(struct.pack("<q", stored.bits.size) + stored.bits.tobytes())


WRITERS = {"safetensors": _write_safetensors, "zip": _write_zip_pth, "legacy": _write_legacy_pth}
SUFFIXES = {"safetensors": ".safetensors", "zip": ".pth", "legacy": ".pth"}
REDUCED = [(fmt, dtype) for fmt in FORMATS for dtype in ("float16", "bfloat16")]


@pytest.mark.parametrize("fmt,dtype", REDUCED, ids=[f"{f}-{d}" for f, d in REDUCED])
def test_writers_below_match_torch(fmt, dtype, tmp_path):
    """The test-time writers give files that read exactly like torch's own."""
    torch_state = read_checkpoint(DTYPES / FORMATS[fmt].format(dtype))
    state = {
        k: _Stored("int64", v) if v.dtype == np.int64 else _Stored.rounded(v, dtype)
        for k, v in torch_state.items()
    }
    path = tmp_path / f"ours{SUFFIXES[fmt]}"
    WRITERS[fmt](path, state)
    ours = read_checkpoint(path)
    assert sorted(ours) == sorted(torch_state)
    for key, value in torch_state.items():
        assert _same_bits(ours[key], value), key
        assert _same_bits(ours[key], state[key].upcast()), key


def test_big_endian_zip_archives(tmp_path):
    """An archive written on a big-endian machine says so in its byteorder record."""
    torch_state = read_checkpoint(DTYPES / "bfloat16_zip.pth")
    state = {
        k: _Stored("int64", v) if v.dtype == np.int64 else _Stored.rounded(v, "bfloat16")
        for k, v in torch_state.items()
    }
    _write_zip_pth(tmp_path / "big.pth", state, byteorder="big")
    ours = read_checkpoint(tmp_path / "big.pth")
    for key, value in torch_state.items():
        assert _same_bits(ours[key], value), key


@pytest.fixture(scope="module")
def seresnet18_state():
    keys_shapes, stats, _, meta = gen.load_fixture(FIXTURES / "timm" / "seresnet18.npz")
    state = gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats)
    # timm's state dict has a counter per BatchNorm; the generator leaves them out.
    counters = [k for k, _ in keys_shapes if k.endswith("num_batches_tracked")]
    return state, counters


@pytest.mark.parametrize("fmt,dtype", REDUCED, ids=[f"{f}-{d}" for f, d in REDUCED])
def test_reduced_precision_timm_checkpoint_end_to_end(fmt, dtype, seresnet18_state, tmp_path):
    """seresnet18 in float16/bfloat16 with counters: the model gets the exact upcast values."""
    float32_state, counters = seresnet18_state
    state = {k: _Stored.rounded(v, dtype) for k, v in float32_state.items()}
    state.update({k: _Stored("int64", np.array(2**33 + i)) for i, k in enumerate(counters)})
    path = tmp_path / f"seresnet18_{dtype}{SUFFIXES[fmt]}"
    WRITERS[fmt](path, state)

    read = read_checkpoint(path)
    assert len(counters) == 20  # stem, 2 per block, 3 downsamples
    for i, key in enumerate(counters):
        assert read[key].dtype == np.int64 and read[key] == 2**33 + i

    model = from_timm("seresnet18", path, input_shape=(64, 64, 3))
    targets = keras_targets(model, "timm")
    assert sorted(targets) == sorted(float32_state)
    for key, (variable, transform) in targets.items():
        expected = state[key].upcast()
        # Not vacuous: rounding changed every drawn tensor (the running
        # statistics are float16 values already, see checkpoint_generator).
        if not key.endswith(("running_mean", "running_var")):
            assert not np.array_equal(expected, float32_state[key]), key
        if transform is not None:
            expected = transform(expected)
        assert _same_bits(variable.numpy(), expected), key
    keras.backend.clear_session()
