"""A restricted unpickler for numpy-only pickles (AIST++ ``keypoints2d``): arrays and dtypes are rebuilt,
any other global is refused, and array sizes are checked against the query limits before allocation.
Never unpickle anything else: a pickle can run code."""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError
from .limits import QueryLimits

_NDARRAY = object()  # what the pickle gets for numpy.ndarray: a type for _reconstruct, never a callable


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other global in the pickle is refused, ``numpy.ndarray``
    cannot be called to allocate an array of any shape, and with ``limits`` arrays declaring more than
    ``limits.max_keypoint_values`` elements (or 8 bytes each) in all are refused before they are allocated."""

    def __init__(self, fh: io.BufferedReader, *, path: Path, limits: QueryLimits | None) -> None:
        super().__init__(fh)
        self._path, self._limits = path, limits
        self._values = self._bytes = 0

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return self._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def _reconstruct(self, subtype: object, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("_reconstruct of a type other than numpy.ndarray")
        values = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        self._values += values
        self._bytes += values * np.dtype(dtype).itemsize
        if self._limits is not None:
            self._limits.check_values(
                path=self._path, what="the arrays in the pickle declare", values=max(self._values, self._bytes // 8)
            )
        return np._core.multiarray._reconstruct(np.ndarray, shape, dtype)  # type: ignore[attr-defined]


def load_numpy_pickle(path: str | os.PathLike[str], *, limits: QueryLimits | None = None) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and dtypes; anything else raises MediaError. With ``limits``,
    a file larger than 8 bytes per allowed value (float64 data) plus 1 MiB is refused unread, and arrays (at the
    top or in a top-level dict) holding more than ``limits.max_keypoint_values`` numbers in all after loading."""
    path = Path(path)
    if limits is not None and (size := path.stat().st_size) > 8 * limits.max_keypoint_values + (1 << 20):
        raise limits.exceeded(
            path=path,
            limit="max_keypoint_values",
            remedy="Pass a shorter take",
            measured=f"the pickle has {size} bytes (room for over {size // 8} float64 values)",
        )
    try:
        with open(path, "rb") as fh:
            data = _NumpyOnlyUnpickler(fh, path=path, limits=limits).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise MediaError(
            f"{path}: refused or unreadable pickle ({exc}). Only pickles of plain numpy arrays (AIST++ "
            "keypoints2d) are read; convert other data to .npz."
        ) from exc
    if limits is not None:
        arrays = data.values() if isinstance(data, dict) else [data]
        limits.check_values(
            path=path,
            what="the arrays in the pickle hold",
            values=sum(a.size for a in arrays if isinstance(a, np.ndarray)),
        )
    return data
