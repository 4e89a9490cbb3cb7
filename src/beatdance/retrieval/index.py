"""A vector index over L2-normalised embeddings (FAISS), exact by default, IVF or HNSW as options.

The index owns normalisation and the metric (inner product = cosine on normalised vectors), stores its
config next to the FAISS file, coerces inputs to contiguous float32 and raises (never asserts) on a
dimension mismatch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import CheckpointError, ParameterError
from ..util import atomic_write_bytes, atomic_write_json, read_json

IndexKind = Literal["flat", "ivf", "hnsw"]


@dataclass
class IndexConfig:
    """``flat`` is exact; ``ivf`` uses ``nlist`` lists probed ``nprobe`` at a time; ``hnsw`` uses ``hnsw_m`` links."""

    dim: int
    kind: IndexKind = "flat"
    nlist: int = 256
    nprobe: int = 16
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    threads: int = 0  # 0: leave FAISS's default

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "ivf", "hnsw"):
            raise ParameterError(f"index kind {self.kind!r}; expected 'flat' (exact), 'ivf' or 'hnsw'.")
        if self.dim <= 0:
            raise ParameterError(f"dim={self.dim} must be positive.")


def _faiss():
    import faiss

    return faiss


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Contiguous float32 copy of ``x`` with unit-norm rows (zero rows stay zero)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).copy()
    if x.ndim != 2:
        raise ParameterError(f"embeddings have shape {x.shape}; expected a 2-D (n, dim) array.")
    if not np.isfinite(x).all():
        raise ParameterError("embeddings contain NaN or inf values; re-embed the clips.")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class VectorIndex:
    """``add(x)``, ``search(q, k) -> (scores, ids)``, ``save(path)``, ``VectorIndex.load(path)``; ids are 0..n-1."""

    def __init__(self, config: IndexConfig) -> None:
        faiss = _faiss()
        self.config = config
        if config.threads:
            faiss.omp_set_num_threads(config.threads)
        if config.kind == "flat":
            self._index = faiss.IndexFlatIP(config.dim)
        elif config.kind == "ivf":
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(config.dim), config.dim, config.nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            self._index = faiss.IndexHNSWFlat(config.dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        self._apply_runtime()

    def _apply_runtime(self) -> None:
        if self.config.kind == "ivf":
            self._index.nprobe = self.config.nprobe
        elif self.config.kind == "hnsw":
            self._index.hnsw.efSearch = self.config.hnsw_ef_search

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = normalize_rows(x)
        if x.shape[1] != self.config.dim:
            raise ParameterError(
                f"{what} have dim {x.shape[1]}, but the index was built for dim {self.config.dim}; "
                "embed them with the library's model."
            )
        return x

    def add(self, x: np.ndarray) -> None:
        """Append embeddings; an IVF index is trained on the first batch (needs >= nlist vectors)."""
        x = self._check(x, "added embeddings")
        if not self._index.is_trained:
            if len(x) < self.config.nlist:
                raise ParameterError(
                    f"An IVF index with nlist={self.config.nlist} needs at least that many vectors to train; got {len(x)}. "
                    "Use --index flat for small libraries or lower nlist."
                )
            self._index.train(x)
        self._index.add(x)

    def search(self, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (cosine scores, ids) per query row, best first; ids are -1 past the index size."""
        q = self._check(queries, "query embeddings")
        k = max(1, min(int(k), len(self)))
        scores, ids = self._index.search(q, k)
        return scores, ids

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (FAISS) and ``path.json`` (config) atomically."""
        faiss = _faiss()
        path = Path(path)
        atomic_write_bytes(path, faiss.serialize_index(self._index).tobytes())
        atomic_write_json(path.with_name(path.name + ".json"), {**asdict(self.config), "ntotal": len(self)})

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, dim: int | None = None) -> VectorIndex:
        """Read an index written by ``save``; ``dim`` (if given) must match its config."""
        faiss = _faiss()
        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        if not path.is_file() or not meta_path.is_file():
            raise CheckpointError(f"Index {path} or its config {meta_path.name} is missing; rebuild it with `beatdance index`.")
        meta = read_json(meta_path)
        ntotal = meta.pop("ntotal")
        config = IndexConfig(**meta)
        if dim is not None and dim != config.dim:
            raise CheckpointError(f"Index {path} holds dim-{config.dim} vectors but the model produces dim {dim}; rebuild the library.")
        obj = cls.__new__(cls)
        obj.config = config
        obj._index = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        obj._apply_runtime()
        if obj._index.ntotal != ntotal or obj._index.d != config.dim:
            raise CheckpointError(f"Index {path} does not match its config file {meta_path.name} (interrupted write?); rebuild it.")
        return obj
