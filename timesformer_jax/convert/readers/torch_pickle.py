"""Read PyTorch checkpoint files (`torch.save` zip format) into NumPy arrays, without torch and without running
code from the file.

`torch.load(weights_only=False)` executes whatever the pickle names; official TimeSformer `.pyth` files also hold
optimizer state and a config, so we unpickle with an allow-list: tensors are rebuilt from their storages as NumPy
arrays, a few containers are allowed, and any other class becomes an inert `OpaqueObject`. Files in the legacy
pre-1.6 (non-zip) format, such as timm's early `jx_vit_base_p16_224-80ecf9dd.pth`, are read the same way.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {  # torch pickles a dtype by its canonical name, e.g. torch.float32
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


class OpaqueObject(dict):
    """Stands in for a pickled object of a class we do not load (e.g. a yacs config); keeps its data."""

    pickled_class = "?"

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.setdefault("__items__", []).append(item)

    def extend(self, items):
        self.setdefault("__items__", []).extend(items)

    def __repr__(self):
        return f"OpaqueObject({self.pickled_class})"


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _PendingStorage:
    """A legacy-format storage, named by key, whose bytes follow the main pickle in the file."""

    def __init__(self, key: str, dtype: np.dtype):
        self.key, self.dtype = key, dtype


class _PendingTensor:
    def __init__(self, storage: _PendingStorage, *args):
        self.storage, self.args = storage, args

    def resolve(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        return _rebuild_tensor(storages[self.storage.key], *self.args[:3], *self.args[3])


def _rebuild_tensor(storage, offset, size, stride, *rest):
    if isinstance(storage, _PendingStorage):  # legacy format: the bytes come after the pickle
        return _PendingTensor(storage, offset, size, stride, rest)
    if len(rest) >= 3 and isinstance(rest[2], np.dtype):  # _rebuild_tensor_v3 passes the dtype explicitly
        storage = storage.view(rest[2])
    if not size:
        return np.array(storage[offset])
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data, *unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}


class _Unpickler(pickle.Unpickler):
    """`read_record(key)` returns a storage's bytes (zip format); None defers them (legacy format)."""

    def __init__(self, file, read_record=None):
        super().__init__(file)
        self._read_record = read_record
        self._storages: dict = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return np.dtype(_TORCH_DTYPES[name])
        if module == "_codecs" and name == "encode":
            return lambda text, encoding="latin1": text.encode(encoding)
        return type(name, (OpaqueObject,), {"pickled_class": f"{module}.{name}"})

    def persistent_load(self, pid):
        # zip format: (kind, type, key, location, numel); legacy: the same plus view metadata.
        kind, storage_type, key = pid[:3]
        if kind != "storage" or (len(pid) > 5 and pid[5] is not None):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r} (storage views are not supported)")
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.uint8)
        if key not in self._storages:
            if self._read_record is None:
                self._storages[key] = _PendingStorage(key, dtype)
            else:
                self._storages[key] = np.frombuffer(self._read_record(key), dtype=dtype)
        return self._storages[key]


def load_torch_file(path: str | Path) -> Any:
    """The object saved by `torch.save` at `path`, with every tensor as a NumPy array.

    Raises ValueError for a file that is not a readable torch checkpoint (truncated, not a zip/pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            if f.read(4) == b"PK\x03\x04":  # starts like a zip but has no central directory: cut short
                raise ValueError(f"cannot read torch checkpoint {path}: the zip archive is truncated or corrupt")
        return _load_legacy(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                raise ValueError(f"{path} is a zip file without data.pkl: not a torch.save checkpoint")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder_name = f"{prefix}byteorder"
            if byteorder_name in archive.namelist() and archive.read(byteorder_name).strip() != b"little":
                raise ValueError(f"{path} was saved big-endian; only little-endian checkpoints are supported")
            with archive.open(pickles[0]) as f:
                return _Unpickler(f, lambda key: archive.read(f"{prefix}data/{key}")).load()
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, KeyError) as e:
        raise ValueError(f"cannot read torch checkpoint {path}: {type(e).__name__}: {e} (truncated or corrupt?)") from e


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _resolve(obj, storages):
    """Replace every `_PendingTensor` inside containers by its array."""
    if isinstance(obj, _PendingTensor):
        return obj.resolve(storages)
    if isinstance(obj, OpaqueObject):
        return obj
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, storages) for v in obj)
    return obj


def _load_legacy(path: Path) -> Any:
    """The pre-1.6 `torch.save` format: magic, protocol and sys-info pickles, the object pickle, the list of
    storage keys, then each storage as an int64 element count followed by its raw bytes."""
    try:
        with path.open("rb") as f:
            def load_plain():  # the small pickles too go through the allow-list: nothing in the file runs
                return _Unpickler(f).load()

            if load_plain() != _LEGACY_MAGIC or load_plain() != _LEGACY_PROTOCOL:
                raise ValueError(f"{path} is not a torch.save checkpoint (neither zip format nor legacy format)")
            sys_info = load_plain()
            if not sys_info.get("little_endian", True):
                raise ValueError(f"{path} was saved big-endian; only little-endian checkpoints are supported")
            unpickler = _Unpickler(f)
            obj = unpickler.load()
            storages = {}
            for key in load_plain():
                pending = unpickler._storages[key]
                count = int(np.frombuffer(f.read(8), dtype="<i8")[0])
                data = f.read(count * pending.dtype.itemsize)
                if len(data) != count * pending.dtype.itemsize:
                    raise EOFError(f"storage {key} is cut short")
                storages[key] = np.frombuffer(data, dtype=pending.dtype)
    except (EOFError, pickle.UnpicklingError, KeyError, IndexError, AttributeError, TypeError) as e:
        raise ValueError(f"cannot read torch checkpoint {path}: {type(e).__name__}: {e} (truncated or corrupt?)") from e
    return _resolve(obj, storages)
