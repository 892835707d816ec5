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

    def resolve(self, storages: dict[str, np.ndarray]):
        if self.storage.key not in storages:
            return _InvalidTensor(f"names storage {self.storage.key!r}, which the file does not hold")
        return _rebuild_tensor(storages[self.storage.key], *self.args[:3], *self.args[3])


class _InvalidTensor:
    """Stands in for a tensor whose view does not fit its storage; `load_torch_file` reports it by key."""

    def __init__(self, reason: str):
        self.reason = reason


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def view_problem(num_elements: int, offset, size, stride) -> str | None:
    """Why a tensor view (element `offset`, `size`, `stride`) cannot be read from a storage of `num_elements`
    elements, or None when every element it addresses lies inside it. Shared by both torch formats."""
    if not _is_int(offset) or not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        return f"has a malformed view (offset {offset!r}, size {size!r}, stride {stride!r})"
    if len(size) != len(stride) or not all(_is_int(v) for v in (*size, *stride)):
        return f"has a malformed view (size {tuple(size)!r}, stride {tuple(stride)!r})"
    if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        return f"has a negative offset, size or stride (offset {offset}, size {tuple(size)}, stride {tuple(stride)})"
    if any(n == 0 for n in size):
        return None
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= num_elements:
        return (f"addresses element {last} (offset {offset}, size {tuple(size)}, stride {tuple(stride)}) of a "
                f"storage of {num_elements} elements")
    return None


def _rebuild_tensor(storage, offset, size, stride, *rest):
    if isinstance(storage, _PendingStorage):  # legacy format: the bytes come after the pickle
        return _PendingTensor(storage, offset, size, stride, rest)
    if not isinstance(storage, np.ndarray):
        return _InvalidTensor(f"has no storage (got {type(storage).__name__})")
    if len(rest) >= 3 and isinstance(rest[2], np.dtype):  # _rebuild_tensor_v3 passes the dtype explicitly
        if storage.nbytes % rest[2].itemsize:
            return _InvalidTensor(f"has a storage of {storage.nbytes} bytes, not a whole number of {rest[2]}")
        storage = storage.view(rest[2])
    problem = view_problem(len(storage), offset, size, stride)
    if problem is not None:
        return _InvalidTensor(problem)
    size, stride = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    itemsize = storage.dtype.itemsize
    # Bounds were checked above: every element of the view lies inside `storage`.
    view = np.lib.stride_tricks.as_strided(
        storage[int(offset):], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)


def _invalid_tensors(obj, key: str = "", seen: set | None = None):
    """(key path, reason) of every `_InvalidTensor` inside containers (opaque objects included)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, _InvalidTensor):
        yield key or "<root>", obj.reason
        return
    if isinstance(obj, dict):
        items = list(obj.items())
        if isinstance(obj, OpaqueObject):
            items += [("state", getattr(obj, "state", None)), ("args", getattr(obj, "args", None))]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(enumerate(obj))
    else:
        return
    for name, value in items:
        yield from _invalid_tensors(value, f"{key}.{name}" if key else str(name), seen)


def _checked(obj, path: Path):
    """`obj`, or ValueError naming the file and the first tensor whose view does not fit its storage."""
    for key, reason in _invalid_tensors(obj):
        raise ValueError(f"cannot read torch checkpoint {path}: tensor {key!r} {reason}; the file is corrupt or "
                         "was crafted")
    return obj


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
                obj = _Unpickler(f, lambda key: archive.read(f"{prefix}data/{key}")).load()
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError,
            AttributeError, IndexError) as e:
        if isinstance(e, ValueError) and str(path) in str(e):
            raise

        raise ValueError(f"cannot read torch checkpoint {path}: {type(e).__name__}: {e} (truncated or corrupt?)") from e
    return _checked(obj, path)


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
    size = path.stat().st_size
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
                if count < 0 or count * pending.dtype.itemsize > size - f.tell():
                    raise EOFError(f"storage {key} claims {count} elements, more than the rest of the file holds")
                data = f.read(count * pending.dtype.itemsize)
                if len(data) != count * pending.dtype.itemsize:
                    raise EOFError(f"storage {key} is cut short")
                storages[key] = np.frombuffer(data, dtype=pending.dtype)
    except (EOFError, pickle.UnpicklingError, KeyError, IndexError, AttributeError, TypeError) as e:
        raise ValueError(f"cannot read torch checkpoint {path}: {type(e).__name__}: {e} (truncated or corrupt?)") from e
    return _checked(_resolve(obj, storages), path)
