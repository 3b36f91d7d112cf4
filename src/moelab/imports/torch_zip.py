"""What a torch.save file holds, read without torch: plain data, its tensors as read-only numpy memory maps.

Why: the checks of users' dumps run in every Snakemake process before any job (a dry run included), and
importing torch takes longer than the rest of such a run. torch.save writes a zip archive whose members are
stored, not compressed: ``<name>/data.pkl`` pickles the object, each tensor as
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, its storage a persistent id
``("storage", torch.<Dtype>Storage, key, location, numel)`` whose bytes are the member ``<name>/data/<key>``;
``<name>/byteorder`` names the byte order. Exactly those globals are accepted (a subset of what
``torch.load(weights_only=True)`` accepts). Anything else (another class, a dtype numpy lacks such as bfloat16,
big-endian bytes, a compressed member, torch's legacy non-zip format) raises :class:`Unsupported`, and the
caller loads the file with torch instead (:func:`moelab.imports.loaders.torch_load`).
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

# torch's typed storage classes as the pickle names them -> the numpy dtype of their bytes
DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature ... name and extra lengths


class Unsupported(Exception):
    """The file holds something this reader does not map (torch reads it)."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if any(n == 0 for n in size):
        empty = np.empty(size, storage.dtype)
        empty.flags.writeable = False
        return empty
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or min(stride, default=0) < 0 or last >= storage.size:
        raise Unsupported(f"a tensor reaches past its storage ({storage.size} elements)")
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride], writeable=False)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path, zf: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._path, self._zf, self._prefix = path, zf, prefix
        self._file: np.ndarray | None = None  # the whole file, memory-mapped once: storages are views of it
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in DTYPES:
            return _StorageType(name)
        raise Unsupported(f"the pickle names {module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise Unsupported(f"a persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._storage(f"{self._prefix}data/{key}", kind.dtype, int(numel))
        return self._storages[key]

    def _storage(self, member: str, dtype: np.dtype, numel: int) -> np.ndarray:
        info = self._zf.getinfo(member)
        nbytes = numel * dtype.itemsize
        if info.compress_type != zipfile.ZIP_STORED or info.file_size < nbytes:
            raise Unsupported(f"{member} is compressed or shorter than its storage")
        if numel == 0:
            return np.empty(0, dtype)
        if self._file is None:
            self._file = np.memmap(self._path, dtype=np.uint8, mode="r")
        header = bytes(self._file[info.header_offset:info.header_offset + _LOCAL_HEADER.size])
        sig, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        if sig != b"PK\x03\x04":
            raise Unsupported(f"{member}: no local zip header")
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if start + nbytes > self._file.size:
            raise Unsupported(f"{member} ends past the end of the file")
        return self._file[start:start + nbytes].view(dtype)


def read(path: str | Path) -> Any:
    """The object a torch.save file holds, tensors as read-only numpy memory maps. Raises Unsupported (see
    the module's docstring) and the zip module's errors for a file that is not a readable zip archive."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise Unsupported(f"{len(pkls)} data.pkl members")
        prefix = pkls[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() != b"little":
            raise Unsupported("big-endian tensors")
        return _Unpickler(zf.read(pkls[0]), path, zf, prefix).load()
