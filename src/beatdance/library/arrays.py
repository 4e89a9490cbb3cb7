"""Reading a library's arrays files (``embeddings.safetensors``, ``bank.safetensors``, written with safetensors)
memory-mapped.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
byte range in the data that follows, then the raw little-endian data. Reading the header and mapping each range
with ``np.memmap`` opens a 10k-item library's 411 MB of embeddings in about a millisecond instead of reading them
(``safetensors.numpy.load_file``), costs page cache rather than private memory, and lets several server
processes share one copy. The arrays are read-only; every library ever written keeps loading (same format).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit


def _damaged(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"cannot read {path} ({why}); the library is damaged. Rebuild it with `beatdance index`.")


def _header(path: Path, size: int) -> tuple[int, dict[str, Any]]:
    """(offset of the data, header without its metadata) of the safetensors file at ``path`` of ``size`` bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _damaged(path, f"{size} bytes, shorter than a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER_BYTES, size - 8):
            raise _damaged(path, f"a header of {length} bytes in a file of {size}")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _damaged(path, f"its header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a JSON object")
    header.pop("__metadata__", None)
    return 8 + length, header


def map_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the safetensors file at ``path`` as a read-only memory-mapped array (empty ones in memory)."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing from the library; rebuild it with `beatdance index`.")
    size = os.path.getsize(path)
    start, header = _header(path, size)
    arrays: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(path, f"tensor {name!r} has an unreadable entry {info!r}") from exc
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != nbytes or begin < 0 or start + end > size:
            raise _damaged(path, f"tensor {name!r} ({info['dtype']} {list(shape)}) at bytes {begin}..{end}")
        if nbytes == 0:
            arrays[name] = np.empty(shape, dtype=dtype)
        else:
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)
    return arrays
