"""Reading checkpoints into {name: numpy array} without torch.

- `.safetensors`: parsed here. The format is an 8-byte little-endian header
  length, a JSON header of {name: {dtype, shape, data_offsets}} and one byte
  buffer that the tensors tile in order. Every offset, shape and dtype is
  checked against the file size before any tensor is read, as the
  reference implementation does. The `safetensors` package's NumPy API is
  not used because it cannot read bfloat16, the dtype most checkpoints on
  the Hugging Face Hub are now published in: it asks NumPy for
  `np.dtype("bfloat16")`, which raises "TypeError: data type 'bfloat16' not
  understood" unless `ml_dtypes` happens to have been imported first, and
  then returns `ml_dtypes` arrays instead of float32 (safetensors 0.8.0).
- `.pth`: PyTorch's two pickle formats, the zip archive (torch >= 1.6) and
  the older single-stream format that the legacy SENet ports use. The
  unpickler only accepts the handful of classes a state dict needs (tensor
  and parameter rebuilders, storage types, dtypes, OrderedDict), as torch's
  `weights_only=True` does, so a malicious file cannot run code. Both the
  typed storages that torch still writes for the classic dtypes
  (`torch.HalfStorage`, `torch.BFloat16Storage` with `_rebuild_tensor_v2`)
  and the untyped storage plus dtype of `_rebuild_tensor_v3` (what torch 2.x
  writes for uint16/32/64) are read, with storage offsets and strides
  (slices and transposed tensors are saved as views of a larger storage).

float16 and bfloat16 tensors are returned as float32: NumPy has no
bfloat16, the Keras weights they go into are float32, and the upcast is
exact (bfloat16 is the top half of a float32's bits; every float16 is a
float32). Integer, bool and float64 tensors keep their dtype, so
`num_batches_tracked` counters come back as int64 scalars.

Written by hand because torch is a multi-gigabyte dependency that the
project must not need; the formats are stable and small to read.
"""

import collections
import io
import json
import math
import os
import pathlib
import pickle
import struct
import zipfile

import numpy as np

# NumPy type codes without byte order; "bfloat16" has no NumPy type.
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    # torch >= 2.0: raw bytes, the tensor's dtype comes with _rebuild_tensor_v3.
    "UntypedStorage": "u1",
}
_TORCH_DTYPES = {
    "float32": "f4", "float": "f4", "float64": "f8", "double": "f8",
    "float16": "f2", "half": "f2", "bfloat16": "bfloat16",
    "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2", "short": "i2",
    "int8": "i1", "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
}
_SAFETENSORS_DTYPES = {
    "F64": "f8", "F32": "f4", "F16": "f2", "BF16": "bfloat16",
    "I64": "i8", "I32": "i4", "I16": "i2", "I8": "i1",
    "U64": "u8", "U32": "u4", "U16": "u2", "U8": "u1", "BOOL": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# The reference implementation's limit: a larger header is a corrupt length.
_MAX_SAFETENSORS_HEADER = 100_000_000


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read (corrupt, truncated or unsupported)."""


def _itemsize(code):
    return 2 if code == "bfloat16" else np.dtype(code).itemsize


def _decode(buffer, code, order="<"):
    """Bytes -> a 1-D array in native byte order; float16/bfloat16 upcast to float32."""
    if len(buffer) % _itemsize(code):
        raise CheckpointReadError(
            f"{len(buffer)} bytes are not a whole number of {code} elements"
        )
    if code == "bfloat16":
        # bfloat16 is the high half of a float32: shifting the bits is exact,
        # NaN payloads and subnormals included.
        bits = np.frombuffer(buffer, dtype=np.dtype("u2").newbyteorder(order))
        return (bits.astype(np.uint32) << 16).view(np.float32)
    array = np.frombuffer(buffer, dtype=np.dtype(code).newbyteorder(order))
    if code == "f2":
        return array.astype(np.float32)
    # Native byte order; no copy when the file's order is already native
    # (the .pth readers copy each tensor out of its storage anyway, and the
    # safetensors reader hands over a bytearray of its own).
    return array.astype(array.dtype.newbyteorder("="), copy=False)


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.code = _STORAGE_DTYPES[name]


class _TorchDtype:
    def __init__(self, name):
        self.name = name
        self.code = _TORCH_DTYPES[name]


def _check_ints(values, what):
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise CheckpointReadError(f"{what} {values!r} is not a list of non-negative integers")


class _LazyTensor:
    """A tensor whose storage bytes may come later in the stream (legacy format)."""

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype = dtype  # a _TorchDtype for _rebuild_tensor_v3, else the storage's

    def materialize(self, storages):
        key, view = self.storage
        array = storages.array(key, None if self.dtype is None else self.dtype.code)
        if view is not None:  # legacy views: (view key, offset, size)
            array = array[view[1] : view[1] + view[2]]
        # Offsets, sizes and strides come from the file: check them before
        # as_strided, which would otherwise read outside the storage.
        size, stride = tuple(self.size), tuple(self.stride)
        _check_ints(size, "tensor size")
        _check_ints(stride, "tensor stride")
        _check_ints((self.offset,), "storage offset")
        if len(size) != len(stride):
            raise CheckpointReadError(f"tensor size {size} and stride {stride} differ in length")
        last = self.offset + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
        if all(n > 0 for n in size) and last >= len(array):
            raise CheckpointReadError(
                f"tensor of size {size} at offset {self.offset} does not fit "
                f"its storage of {len(array)} elements"
            )
        if not size:
            return np.array(array[self.offset])
        view = np.lib.stride_tricks.as_strided(
            array[self.offset :],
            shape=size,
            strides=[s * array.itemsize for s in stride],
        )
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *unused):
    if not isinstance(dtype, _TorchDtype):
        raise CheckpointReadError(f"tensor dtype {dtype!r} is not a torch dtype")
    return _LazyTensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, *unused):
    return data


class _Unpickler(pickle.Unpickler):
    """Rebuilds tensors lazily as NumPy arrays; refuses every other class."""

    def __init__(self, file):
        super().__init__(file)
        self.storage_types = {}
        self.numels = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_tensor_v3":
            return _rebuild_tensor_v3
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _TorchDtype(name)
        if module == "torch" and name.startswith(("float8", "float4", "complex", "qint", "quint")):
            # A dtype, not code: say so rather than "refusing to load".
            raise CheckpointReadError(f"tensor dtype torch.{name} is not supported")
        if module == "torch" and name == "Size":
            return tuple
        raise pickle.UnpicklingError(
            f"Refusing to load {module}.{name} from a checkpoint: only tensors "
            "and dicts of tensors are read."
        )

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel)
        # legacy: ('storage', type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointReadError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        _check_ints((pid[4],), "storage size")
        self.storage_types[key] = storage_type
        self.numels[key] = pid[4]
        return key, pid[5] if len(pid) > 5 else None


class _Storages:
    """Raw storage bytes, decoded once per (storage, dtype) on first use."""

    def __init__(self, unpickler, order="<"):
        self.types, self.numels, self.order = unpickler.storage_types, unpickler.numels, order
        self.raw, self.decoded = {}, {}

    def add(self, key, raw):
        storage_type = self.types.get(key)
        if storage_type is None:
            raise CheckpointReadError(f"storage {key!r} is not used by any tensor")
        expected = self.numels[key] * _itemsize(storage_type.code)
        if len(raw) != expected:
            raise CheckpointReadError(
                f"storage {key!r} holds {len(raw)} bytes, expected {expected} "
                f"({self.numels[key]} elements of {storage_type.name})"
            )
        self.raw[key] = raw

    def array(self, key, code=None):
        if key not in self.raw:
            raise CheckpointReadError(f"storage {key!r} is missing")
        code = code or self.types[key].code
        if (key, code) not in self.decoded:
            self.decoded[key, code] = _decode(self.raw[key], code, self.order)
        return self.decoded[key, code]


def _materialize(value, storages):
    if isinstance(value, _LazyTensor):
        return value.materialize(storages)
    if isinstance(value, dict):
        return type(value)((k, _materialize(v, storages)) for k, v in value.items())
    return value


def _read_zip_pth(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl")), None)
        if pkl is None:
            raise CheckpointReadError("zip archive without data.pkl")
        root = pkl[: -len("data.pkl")]
        # torch >= 2.1 writes storages in the writer's byte order and records
        # it; older archives are little-endian.
        order = "<"
        if f"{root}byteorder" in names:
            byteorder = archive.read(f"{root}byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointReadError(f"unknown byte order {byteorder!r}")
            order = "<" if byteorder == "little" else ">"
        unpickler = _Unpickler(io.BytesIO(archive.read(pkl)))
        obj = unpickler.load()
        storages = _Storages(unpickler, order)
        for key in unpickler.storage_types:
            record = f"{root}data/{key}"
            if record not in names:
                raise CheckpointReadError(f"storage record {record!r} is missing")
            storages.add(key, archive.read(record))
    return _materialize(obj, storages)


class _HeaderUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected class {module}.{name}")


def _read_legacy_pth(path):
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    if _HeaderUnpickler(stream).load() != _LEGACY_MAGIC:
        raise CheckpointReadError("not a PyTorch checkpoint (bad magic number)")
    _HeaderUnpickler(stream).load()  # protocol version
    _HeaderUnpickler(stream).load()  # sys info
    unpickler = _Unpickler(stream)
    obj = unpickler.load()
    keys = _HeaderUnpickler(stream).load()
    if not isinstance(keys, list):
        raise CheckpointReadError(f"storage key list is a {type(keys).__name__}")
    # The legacy writer always writes little-endian storages.
    storages = _Storages(unpickler, "<")
    for key in map(str, keys):
        storage_type = unpickler.storage_types.get(key)
        if storage_type is None:
            raise CheckpointReadError(f"storage {key!r} is not used by any tensor")
        header = stream.read(8)
        if len(header) != 8:
            raise CheckpointReadError("truncated storage data")
        (numel,) = struct.unpack("<q", header)
        if numel != unpickler.numels[key]:
            raise CheckpointReadError(
                f"storage {key!r} has {numel} elements, its tensors say "
                f"{unpickler.numels[key]}"
            )
        raw = stream.read(numel * _itemsize(storage_type.code))
        if len(raw) != numel * _itemsize(storage_type.code):
            raise CheckpointReadError("truncated storage data")
        storages.add(key, raw)
    return _materialize(obj, storages)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        raise CheckpointReadError(f"header names {duplicates} more than once")
    return dict(pairs)


def _safetensors_entries(header, buffer_size):
    """[(name, dtype code, shape, begin, end)], checked, in buffer order."""
    if not isinstance(header, dict):
        raise CheckpointReadError("safetensors header is not a JSON object")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(info, dict) and {"dtype", "shape", "data_offsets"} <= set(info)):
            raise CheckpointReadError(
                f"tensor {name!r} needs dtype, shape and data_offsets; got {info!r}"
            )
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPES:
            raise CheckpointReadError(
                f"tensor {name!r} has dtype {dtype!r}; supported: "
                f"{', '.join(_SAFETENSORS_DTYPES)}"
            )
        if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
            raise CheckpointReadError(
                f"tensor {name!r} has shape {shape!r} and data_offsets {offsets!r}"
            )
        try:
            _check_ints(shape, "shape")
            _check_ints(offsets, "data_offsets")
        except CheckpointReadError as error:
            raise CheckpointReadError(f"tensor {name!r}: {error}") from None
        code = _SAFETENSORS_DTYPES[dtype]
        begin, end = offsets
        nbytes = math.prod(shape) * _itemsize(code)
        if end - begin != nbytes:
            raise CheckpointReadError(
                f"tensor {name!r} of shape {shape} and dtype {dtype} needs {nbytes} "
                f"bytes, its data_offsets {offsets} hold {end - begin}"
            )
        entries.append((name, code, tuple(shape), begin, end))
    # The tensors must tile the buffer: no gaps, no overlaps, nothing after.
    entries.sort(key=lambda entry: (entry[3], entry[4]))
    position = 0
    for name, _, _, begin, end in entries:
        if begin != position:
            raise CheckpointReadError(
                f"tensor {name!r} starts at byte {begin} of the data, expected {position}"
            )
        position = end
    if position != buffer_size:
        raise CheckpointReadError(
            f"the tensors hold {position} bytes, the file's data has {buffer_size} "
            "(truncated or trailing bytes)"
        )
    return entries


def _read_safetensors(path):
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointReadError(f"{file_size} bytes, too short for safetensors")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > min(_MAX_SAFETENSORS_HEADER, file_size - 8):
            raise CheckpointReadError(
                f"header length {header_size} does not fit the file of "
                f"{file_size} bytes"
            )
        try:
            text = f.read(header_size).decode("utf-8")
            header = json.loads(text, object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointReadError(f"safetensors header is not JSON: {error}") from None
        entries = _safetensors_entries(header, file_size - 8 - header_size)
        state = {}
        for name, code, shape, begin, end in entries:
            raw = bytearray(end - begin)
            # Entries are in buffer order with no gaps: read straight on.
            if f.readinto(raw) != len(raw):
                raise CheckpointReadError(f"truncated while reading tensor {name!r}")
            state[name] = _decode(raw, code).reshape(shape)
    return state


def _state_dict(obj):
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise CheckpointReadError("does not hold a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _looks_like_safetensors(path):
    """By content, not name (downloads are read under temporary names)."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    # An 8-byte little-endian header length, then the JSON header.
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(path):
    """Reads a `.safetensors` or `.pth` checkpoint as {key: numpy array}.

    float16 and bfloat16 tensors come back as float32 (an exact upcast);
    other dtypes as they are (`num_batches_tracked` as an int64 scalar).

    Args:
        path: the checkpoint file.

    Returns:
        A dict of NumPy arrays, keyed like the PyTorch state dict.

    Raises:
        CheckpointReadError: when the file is corrupt, truncated, of an
            unknown format or unsupported dtype, or holds anything but
            tensors. The message names the file.

    Example:
    >>> state = read_checkpoint("seresnet50.ra2_in1k.safetensors")  # doctest: +SKIP
    >>> state["conv1.weight"].dtype  # doctest: +SKIP
    dtype('float32')
    """
    path = pathlib.Path(path)
    try:
        if _looks_like_safetensors(path):
            return _read_safetensors(path)
        if zipfile.is_zipfile(path):
            return _state_dict(_read_zip_pth(path))
        return _state_dict(_read_legacy_pth(path))
    except CheckpointReadError as error:
        # One form for every message: the file, then what is wrong with it.
        raise CheckpointReadError(f"Cannot read checkpoint {path}: {error}") from error
    except Exception as error:  # noqa: BLE001 - every failure means "unreadable"
        raise CheckpointReadError(
            f"Cannot read checkpoint {path}: {type(error).__name__}: {error}"
        ) from error
