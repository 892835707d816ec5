"""Read PyTorch checkpoint files (`torch.save` zip format) into NumPy arrays, without torch and without running
code from the file.

`torch.load(weights_only=False)` executes whatever the pickle names; official TimeSformer `.pyth` files also hold
optimizer state and a config, so we unpickle with an allow-list: tensors are rebuilt from their storages as NumPy
arrays, a few containers are allowed, and any other class becomes an inert `OpaqueObject`. Files in the legacy
pre-1.6 (non-zip) format are read with torch itself when it is installed (`weights_only=True`).
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


def _rebuild_tensor(storage, offset, size, stride, *rest):
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
    def __init__(self, file, read_record):
        super().__init__(file)
        self._read_record = read_record
        self._storages: dict[str, np.ndarray] = {}

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
        kind, storage_type, key, _location, _numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.uint8)
        if key not in self._storages:
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


def _load_legacy(path: Path) -> Any:
    try:
        import torch
    except ImportError as e:
        raise ValueError(
            f"{path} is not a zip-format torch checkpoint; reading legacy (pre-1.6) torch files needs torch "
            "installed, or re-save the file with a recent torch"
        ) from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise ValueError(f"cannot read torch checkpoint {path}: {type(e).__name__}: {e}") from e

    def to_numpy(x):
        if isinstance(x, torch.Tensor):
            return x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
        if isinstance(x, dict):
            return type(x)((k, to_numpy(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return type(x)(to_numpy(v) for v in x)
        return x

    return to_numpy(obj)
