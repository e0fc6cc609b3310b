"""Reading checkpoints into {name: numpy array} without torch.

- `.safetensors`: the `safetensors` package's NumPy API.
- `.pth`: PyTorch's two pickle formats, the zip archive (torch >= 1.6) and
  the older single-stream format that the legacy SENet ports use. The
  unpickler only accepts the handful of classes a state dict needs (tensor
  and parameter rebuilders, storage types, OrderedDict), as torch's
  `weights_only=True` does, so a malicious file cannot run code.

Written by hand because torch is a multi-gigabyte dependency that the
project must not need; the formats are stable and small to read.
"""

import collections
import io
import pathlib
import pickle
import struct
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read (corrupt, truncated or unsupported)."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


def _to_numpy(raw, storage_type, numel=None):
    if storage_type.dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    array = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
    if numel is not None and len(array) != numel:
        raise CheckpointReadError(f"storage holds {len(array)} elements, expected {numel}")
    return array


class _LazyTensor:
    """A tensor whose storage bytes may come later in the stream (legacy format)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self, arrays):
        key, view = self.storage
        array = arrays[key]
        if view is not None:  # legacy views: (view key, offset, size)
            array = array[view[1] : view[1] + view[2]]
        # Offsets, sizes and strides come from the file: check them before
        # as_strided, which would otherwise read outside the storage.
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if (
            self.offset < 0
            or any(n < 0 or s < 0 for n, s in zip(self.size, self.stride))
            or (all(n > 0 for n in self.size) and last >= len(array))
        ):
            raise CheckpointReadError(
                f"tensor of size {tuple(self.size)} at offset {self.offset} does not fit "
                f"its storage of {len(array)} elements"
            )
        if not self.size:
            return np.array(array[self.offset])
        view = np.lib.stride_tricks.as_strided(
            array[self.offset :],
            shape=tuple(self.size),
            strides=[s * array.itemsize for s in self.stride],
        )
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


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
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name == "Size":
            return tuple
        raise pickle.UnpicklingError(
            f"Refusing to load {module}.{name} from a checkpoint: only tensors "
            "and dicts of tensors are read."
        )

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel)
        # legacy: ('storage', type, key, location, numel, view_metadata)
        storage_type, key = pid[1], str(pid[2])
        self.storage_types[key] = storage_type
        self.numels[key] = int(pid[4])
        return key, pid[5] if len(pid) > 5 else None


def _materialize(value, arrays):
    if isinstance(value, _LazyTensor):
        return value.materialize(arrays)
    if isinstance(value, dict):
        return type(value)((k, _materialize(v, arrays)) for k, v in value.items())
    return value


def _read_zip_pth(path):
    with zipfile.ZipFile(path) as archive:
        pkl = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
        if pkl is None:
            raise CheckpointReadError(f"{path}: zip archive without data.pkl")
        root = pkl[: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pkl)))
        obj = unpickler.load()
        arrays = {
            key: _to_numpy(archive.read(f"{root}data/{key}"), storage_type, unpickler.numels[key])
            for key, storage_type in unpickler.storage_types.items()
        }
    return _materialize(obj, arrays)


class _HeaderUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected class {module}.{name}")


def _read_legacy_pth(path):
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    if _HeaderUnpickler(stream).load() != _LEGACY_MAGIC:
        raise CheckpointReadError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    _HeaderUnpickler(stream).load()  # protocol version
    _HeaderUnpickler(stream).load()  # sys info
    unpickler = _Unpickler(stream)
    obj = unpickler.load()
    keys = _HeaderUnpickler(stream).load()
    arrays = {}
    for key in keys:
        storage_type = unpickler.storage_types[str(key)]
        header = stream.read(8)
        if len(header) != 8:
            raise CheckpointReadError(f"{path}: truncated storage data")
        (numel,) = struct.unpack("<q", header)
        raw = stream.read(numel * storage_type.itemsize)
        if len(raw) != numel * storage_type.itemsize:
            raise CheckpointReadError(f"{path}: truncated storage data")
        arrays[str(key)] = _to_numpy(raw, storage_type)
    return _materialize(obj, arrays)


def _state_dict(obj, path):
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise CheckpointReadError(f"{path}: does not hold a state dict of tensors")
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

    Args:
        path: the checkpoint file.

    Returns:
        A dict of NumPy arrays, keyed like the PyTorch state dict.

    Raises:
        CheckpointReadError: when the file is corrupt, truncated, of an
            unknown format, or holds anything but tensors.

    Example:
    >>> state = read_checkpoint("seresnet50.ra2_in1k.safetensors")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    try:
        if _looks_like_safetensors(path):
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        if zipfile.is_zipfile(path):
            return _state_dict(_read_zip_pth(path), path)
        return _state_dict(_read_legacy_pth(path), path)
    except CheckpointReadError as error:
        if str(path) in str(error):
            raise
        raise CheckpointReadError(f"Cannot read checkpoint {path}: {error}") from error
    except Exception as error:  # noqa: BLE001 - every failure means "unreadable"
        raise CheckpointReadError(
            f"Cannot read checkpoint {path}: {type(error).__name__}: {error}"
        ) from error
