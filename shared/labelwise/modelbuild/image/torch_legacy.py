"""Read a PyTorch state dict saved in the legacy (pre-zip, ``_use_new_zipfile_serialization=False``)
format into numpy arrays, without PyTorch.

Layout (``torch/serialization.py``: ``_legacy_save``): five things one after another in one stream:
a pickled magic number, a pickled protocol version, a pickled ``sys_info`` dict, the pickled object
(tensors appear as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
storages as persistent ids ``("storage", StorageType, key, location, numel[, view_metadata])``),
a pickled list of storage keys, then each storage's raw bytes in that order, each preceded by its
element count as a little-endian int64.

Only the classes a plain state dict needs are allowed; anything else fails to unpickle.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass
class _Storage:
    key: str
    dtype: np.dtype[Any]
    numel: int
    data: npt.NDArray[Any] | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> npt.NDArray[Any]:
        if self.storage.data is None:
            raise ValueError(f"storage {self.storage.key} has no data")
        base = self.storage.data
        if not self.size:
            return base[self.offset : self.offset + 1].reshape(()).copy()
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any) -> _TensorRef:
    return _rebuild_tensor_v2(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: io.BufferedIOBase, storages: dict[str, _Storage]) -> None:
        super().__init__(fh)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks: data
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(key, np.dtype(_STORAGE_DTYPES[storage_type.name]), numel)
        return self._storages[key]


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load_legacy_state_dict(data: bytes) -> OrderedDict[str, npt.NDArray[Any]]:
    """Tensors of a legacy-format ``.pth`` state dict, in file order, as numpy arrays."""
    fh = io.BytesIO(data)
    magic = pickle.load(fh)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch file (the zip format is not supported here)")
    protocol = pickle.load(fh)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol {protocol}")
    sys_info = pickle.load(fh)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian files are not supported")
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(fh, storages).load()
    keys = pickle.load(fh)
    for key in keys:
        (count,) = struct.unpack("<q", fh.read(8))
        st = storages[str(key)]
        nbytes = count * st.dtype.itemsize
        st.data = np.frombuffer(fh.read(nbytes), dtype=st.dtype.newbyteorder("<"), count=count)
    out = _resolve(obj)
    if not isinstance(out, dict):
        raise ValueError(f"expected a state dict, got {type(out).__name__}")
    return OrderedDict((str(k), np.asarray(v)) for k, v in out.items())
