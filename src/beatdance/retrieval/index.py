"""A vector index over L2-normalised embeddings (FAISS): exact by default, compressed and sharded for large libraries.

Every kind is a ``faiss.index_factory`` string (``IndexConfig.factory``):

- ``flat``: exact inner product over the float32 vectors;
- ``ivf``: inverted lists of the float32 vectors, ``nprobe`` of ``nlist`` lists scanned per query (default: a
  quarter of them, at least 16: ``IndexConfig.lists_probed``);
- ``hnsw``: a graph over the float32 vectors (``hnsw_m`` links per node);
- ``ivfpq``: inverted lists of ``pq_m``-byte product-quantised codes (vectors zero-padded to a multiple of ``pq_m``);
- ``opq-ivfpq``: the same after a learned rotation to ``opq_dim`` dims (OPQ), which also makes the coarse
  k-means and the list assignment cheap at high dims.

Searches return exact cosine scores. The PQ kinds keep the float32 vectors beside the index
(``<name>.vectors.npy``) and re-score the best ``max(k * rerank_factor, rerank_min)`` codes exactly (the floor:
at 1M clustered items a shortlist of 100 kept 0.46 of the exact top 10, one of 1000 all of it); HNSW (whose
scores are exact) searches ``k * rerank_factor`` candidates. Quantisers train on a seeded sample of ``train_size``
vectors with ``train_iters`` k-means iterations. An index of ``shards`` > 1 holds consecutive rows in K
sub-indexes that share the trained quantisers and are searched as one (``faiss.IndexShards``); ``build``
can fill them in parallel (``scale.run_parallel``). ``load`` memory-maps the files by default
(``IO_FLAG_MMAP`` for inverted lists, ``IO_FLAG_MMAP_IFC`` for flat codes and HNSW storage, the re-rank
vectors through ``np.load(mmap_mode='r')``), so a loaded index costs page cache, not private memory.

The index owns normalisation and the metric (inner product = cosine on normalised vectors), stores its
config next to the FAISS files (a mismatch fails at load), coerces inputs to contiguous float32 and raises
(never asserts) on a dimension mismatch. Rows that already are unit-norm float32 are used as given, not
copied (``unit_rows``), and ``build`` adds them in chunks: a memory-mapped ``.npy`` of a million 2560-d
vectors is indexed without holding them in RAM.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ParameterError
from ..util import atomic_write_json, read_json
from .index_config import (
    ADD_CHUNK_ROWS,
    IVF_KINDS,
    OPQ_TRAIN_POINTS,
    PQ_KINDS,
    TRAIN_SEED,
    Executor,
    IndexConfig,
)
from .scoring import first_unnormalised_row


def _faiss() -> Any:
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


def unit_rows(x: np.ndarray, *, chunk_rows: int = 8192) -> np.ndarray:
    """``x`` itself when it already is a C-contiguous float32 matrix of finite unit-norm (or zero) rows, checked
    ``chunk_rows`` at a time: a memory-mapped file then stays on disk and a library's embeddings are not copied
    (a million 2560-d rows are 10 GB); otherwise the normalised copy of ``normalize_rows``."""
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == np.float32 and x.flags.c_contiguous):
        return normalize_rows(x)
    return x if first_unnormalised_row(x, tol=1e-5, chunk_rows=chunk_rows) is None else normalize_rows(x)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` consecutive row ranges covering 0..n-1, sizes differing by at most one."""
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _shard_paths(path: Path, shards: int) -> list[Path]:
    return [path] if shards == 1 else [path.with_name(f"{path.name}.{i}") for i in range(shards)]


def _vectors_path(path: Path) -> Path:
    return path.with_name(path.name + ".vectors.npy")


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class VectorIndex:
    """``build(x)`` or ``add(x)``, ``search(q, k) -> (scores, ids)``, ``save(path)``, ``VectorIndex.load(path)``;
    ids are 0..n-1."""

    def __init__(self, config: IndexConfig) -> None:
        faiss = _faiss()
        self.config = config
        if config.threads:
            faiss.omp_set_num_threads(config.threads)
        self._shards = [self._new_shard() for _ in range(config.shards)]
        self._parts: list[np.ndarray] = []  # re-rank vectors added in this process (PQ kinds)
        self._vectors: np.ndarray | None = None  # or loaded (memory-mapped)
        self.mapped = False
        self._assemble()

    def _new_shard(self) -> Any:
        faiss = _faiss()
        shard = faiss.index_factory(self.config.dim, self.config.factory, faiss.METRIC_INNER_PRODUCT)
        if self.config.kind in PQ_KINDS:  # fewer k-means iterations than FAISS's 25 (PQ): 3x faster
            ivf = faiss.downcast_index(faiss.extract_index_ivf(shard))
            ivf.do_polysemous_training = False  # only polysemous search uses it, and it is slow
            ivf.pq.cp.niter = self.config.train_iters
            if self.config.kind == "opq-ivfpq":
                opq = faiss.downcast_VectorTransform(shard.chain.at(0))
                opq.niter = opq.niter_pq_0 = max(1, self.config.train_iters // 3)
                opq.max_train_points = OPQ_TRAIN_POINTS
        return shard

    def _assemble(self) -> None:
        """Point ``_index`` at the one shard or an IndexShards over all, with the search parameters applied."""
        faiss = _faiss()
        if len(self._shards) == 1:
            self._index = self._shards[0]
        else:
            # not threaded: a thread per shard and query starts a new OpenMP pool each time, and a single query on
            # 2 flat shards of 100k x 1169 took 60 ms that way against 24 ms shard after shard (one thread)
            self._index = faiss.IndexShards(self.config.dim, False, True)  # successive ids
            for shard in self._shards:
                self._index.add_shard(shard)
        params = faiss.ParameterSpace()
        if self.config.kind in IVF_KINDS:
            params.set_index_parameter(self._index, "nprobe", self.config.lists_probed)
        elif self.config.kind == "hnsw":
            params.set_index_parameter(self._index, "efSearch", self.config.hnsw_ef_search)

    def tune(
        self, *, nprobe: int | None = None, rerank_factor: int | None = None, rerank_min: int | None = None
    ) -> None:
        """Change the search-time parameters (lists probed, the re-rank shortlist) without a rebuild; also on a
        memory-mapped index. None keeps a value."""
        c = self.config
        self.config = replace(
            c,
            nprobe=c.nprobe if nprobe is None else nprobe,
            rerank_factor=c.rerank_factor if rerank_factor is None else rerank_factor,
            rerank_min=c.rerank_min if rerank_min is None else rerank_min,
        )
        self._assemble()

    def __len__(self) -> int:
        return int(sum(s.ntotal for s in self._shards))

    def faiss_bytes(self) -> int:
        """Size of the FAISS files of this index (what RAM holds once they are paged in), without the PQ kinds'
        re-rank vectors; measured by writing them to a temporary folder (no in-memory copy)."""
        faiss = _faiss()
        with tempfile.TemporaryDirectory(prefix="beatdance-index-") as tmp:
            for i, shard in enumerate(self._shards):
                faiss.write_index(shard, os.path.join(tmp, str(i)))
            return sum(os.path.getsize(os.path.join(tmp, str(i))) for i in range(len(self._shards)))

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = unit_rows(x)
        if x.shape[1] != self.config.dim:
            raise ParameterError(
                f"{what} have dim {x.shape[1]}, but the index was built for dim {self.config.dim}; "
                "embed them with the library's model."
            )
        return x

    def _train(self, x: np.ndarray, *, gpu: int | None = None) -> None:
        """Train the quantisers on a seeded sample of ``x`` (at least ``min_train_items``; on FAISS GPU ``gpu`` if
        given), copied to every shard."""
        faiss = _faiss()
        need = self.config.min_train_items()
        if self._shards[0].is_trained:
            return
        if len(x) < need:
            raise ParameterError(
                f"A {self.config.kind} index with nlist={self.config.nlist} needs at least {need} vectors to train "
                f"its quantisers; got {len(x)}. Use --index flat (or auto) for small libraries or lower nlist."
            )
        size = min(len(x), max(self.config.train_size, need))
        rows = np.random.default_rng(TRAIN_SEED).choice(len(x), size, replace=False)
        sample = x if size == len(x) else x[np.sort(rows)]
        if gpu is None:
            self._shards[0].train(sample)
        else:
            from .scale import on_gpu

            pq = self.config.kind in PQ_KINDS
            self._shards[0] = on_gpu(self._shards[0], gpu=gpu, pq=pq, step=lambda index: index.train(sample))
        self._shards[1:] = [faiss.clone_index(self._shards[0]) for _ in self._shards[1:]]
        self._assemble()

    def _writable(self) -> None:
        if self.mapped:
            raise ParameterError(
                "this index was loaded memory-mapped (read-only); load it with mmap=False to change "
                "or re-save it, or rebuild it from the embeddings."
            )

    def add(self, x: np.ndarray) -> None:
        """Append embeddings to the last shard; untrained quantisers are trained on this first batch."""
        self._writable()
        x = self._check(x, "added embeddings")
        self._train(x)
        self._shards[-1].add(x)
        self._added(x)

    def _added(self, x: np.ndarray) -> None:
        if len(self._shards) > 1:
            self._index.syncWithSubIndexes()
        if self.config.kind in PQ_KINDS:
            self._parts.append(x)

    @classmethod
    def build(
        cls,
        x: np.ndarray,
        *,
        config: IndexConfig,
        executor: Executor = "local",
        workers: int | None = None,
        ray_address: str | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        gpu: int | None = None,
    ) -> VectorIndex:
        """An index of all of ``x``: quantisers trained once on a sample, then the shards filled with consecutive
        rows, one after the other in this process (``local``; FAISS threads each) or as parallel Ray tasks
        (``ray``: ``workers`` actors on the cluster at ``ray_address``, see ``scale.fill_shards``). ``gpu``: train
        (and fill local shards) on that FAISS GPU (``scale.faiss_gpu`` says when one can); the index stays a CPU
        index."""
        if executor not in ("local", "ray"):
            raise ParameterError(
                f"executor={executor!r}; expected 'local' (this process) or 'ray' (parallel Ray tasks)."
            )
        index = cls(config)
        x = index._check(x, "indexed embeddings")
        index._train(x, gpu=gpu)
        bounds = shard_bounds(len(x), config.shards)
        if executor == "local" or len(bounds) == 1:
            index._shards = [index._filled(shard, x[a:b], gpu=gpu) for shard, (a, b) in zip(index._shards, bounds)]
            index._assemble()
        else:
            from .scale import fill_shards

            index._shards = fill_shards(
                index._shards[0],
                x,
                bounds=bounds,
                executor=executor,
                workers=workers,
                ray_address=ray_address,
                scratch_dir=scratch_dir,
            )
            index._assemble()
        index._added(x)
        return index

    def _filled(self, shard: Any, rows: np.ndarray, *, gpu: int | None) -> Any:
        """``shard`` with ``rows`` added (on FAISS GPU ``gpu`` if given). HNSW gets them at once (a batch's graph
        depends on how it is split); the other kinds encode each row alone, so chunks bound the temporaries
        (padding, residuals) without changing the index."""
        step = max(1, len(rows)) if self.config.kind == "hnsw" else ADD_CHUNK_ROWS

        def add(index: Any) -> None:
            for c in range(0, len(rows), step):
                index.add(np.ascontiguousarray(rows[c : c + step]))

        if gpu is None:
            add(shard)
            return shard
        from .scale import on_gpu

        return on_gpu(shard, gpu=gpu, pq=self.config.kind in PQ_KINDS, step=add)

    def _exact_vectors(self) -> np.ndarray:
        if self._vectors is None or len(self._vectors) != len(self):
            self._vectors = np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]
            self._parts = [self._vectors]
        return self._vectors

    def search(self, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (exact cosine scores, ids) per query row, best first; ids are -1 past the index size."""
        q = self._check(queries, "query embeddings")
        k = max(1, min(int(k), len(self)))
        shortlist = k
        if self.config.kind == "hnsw":
            shortlist = min(len(self), k * self.config.rerank_factor)
        elif self.config.kind in PQ_KINDS:
            shortlist = min(len(self), max(k * self.config.rerank_factor, self.config.rerank_min))
        scores, ids = self._index.search(q, shortlist)
        if self.config.kind in PQ_KINDS:
            scores, ids = self._rerank(q, ids)
        return scores[:, :k], ids[:, :k]

    def _rerank(self, q: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of the shortlisted ``ids`` (rows read in ascending order from the vectors), re-sorted."""
        vectors = self._exact_vectors()
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        for i, row in enumerate(ids):
            valid = np.flatnonzero(row >= 0)
            order = valid[np.argsort(row[valid])]
            scores[i, order] = vectors[row[order]] @ q[i]
        best = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, best, axis=1), np.take_along_axis(ids, best, axis=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (FAISS; ``path.0`` .. ``path.K-1`` for K shards), the PQ kinds' ``path.vectors.npy`` and
        ``path.json`` (config, written last), each atomically."""
        faiss = _faiss()
        self._writable()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for file, shard in zip(_shard_paths(path, len(self._shards)), self._shards):
            tmp = file.with_name(f".{file.name}.tmp")
            faiss.write_index(shard, str(tmp))
            os.replace(tmp, file)
        if self.config.kind in PQ_KINDS:
            tmp = path.with_name(f".{path.name}.vectors.tmp.npy")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(self), self.config.dim))
            a = 0
            for part in self._parts:
                out[a : a + len(part)] = part
                a += len(part)
            out.flush()
            del out
            os.replace(tmp, _vectors_path(path))
        atomic_write_json(
            _meta_path(path),
            {**asdict(self.config), "ntotal": len(self), "shard_sizes": [int(s.ntotal) for s in self._shards]},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, dim: int | None = None, mmap: bool = True) -> VectorIndex:
        """Read an index written by ``save`` (memory-mapped unless ``mmap=False``); ``dim`` (if given) must match."""
        faiss = _faiss()
        path = Path(path)
        meta_path = _meta_path(path)
        if not meta_path.is_file():
            raise CheckpointError(f"Index config {meta_path} is missing; rebuild the index with `beatdance index`.")
        meta = read_json(meta_path)
        ntotal = meta.pop("ntotal")
        sizes = meta.pop("shard_sizes", [ntotal])
        known = {f.name for f in fields(IndexConfig)}
        if set(meta) - known:
            raise CheckpointError(
                f"{meta_path} has unknown fields {sorted(set(meta) - known)} (written by a newer "
                "beatdance?); upgrade beatdance or rebuild the index."
            )
        config = IndexConfig(**meta)
        if dim is not None and dim != config.dim:
            raise CheckpointError(
                f"Index {path} holds dim-{config.dim} vectors but the model produces dim {dim}; rebuild the library."
            )
        files = _shard_paths(path, config.shards)
        vectors_file = _vectors_path(path) if config.kind in PQ_KINDS else None
        missing = [f.name for f in [*files, *([vectors_file] if vectors_file else [])] if not f.is_file()]
        if missing:
            raise CheckpointError(f"Index {path} is missing {missing}; rebuild it with `beatdance index`.")
        flags = 0
        if mmap:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if config.kind in IVF_KINDS else faiss.IO_FLAG_MMAP_IFC
        obj = cls.__new__(cls)
        obj.config, obj.mapped, obj._parts, obj._vectors = config, mmap, [], None
        obj._shards = [faiss.read_index(str(f), flags) for f in files]
        if vectors_file is not None:
            obj._vectors = np.load(vectors_file, mmap_mode="r" if mmap else None)
            obj._parts = [obj._vectors]
        obj._assemble()
        got = [int(s.ntotal) for s in obj._shards]
        shapes_ok = all(s.d == config.dim for s in obj._shards) and (
            obj._vectors is None or obj._vectors.shape == (ntotal, config.dim)
        )
        if got != sizes or sum(got) != ntotal or not shapes_ok:
            raise CheckpointError(
                f"Index {path} ({got} items per shard) does not match its config file "
                f"{meta_path.name} ({sizes}, dim {config.dim}; interrupted write?); rebuild it."
            )
        return obj
