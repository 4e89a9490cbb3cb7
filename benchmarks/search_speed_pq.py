"""Full-size rows of benchmarks/search_speed.py (``--pq-sizes 1000000``): a million items at the full embedding
dim, the gallery on disk and an ``ivfpq`` index in RAM, against numpy exact search in the same run (issue 13).

At 1M x 2560-d the fused embeddings alone are 10 GB, more than the memory budget of the in-RAM rows (which
halve the dim to fit). These rows keep the gallery where a library keeps its PQ re-rank vectors: one
memory-mapped float32 ``.npy`` in a scratch folder (``--scratch``), written chunk by chunk and shared by the
baseline and the index (``VectorIndex.build`` takes normalised rows as given, without a copy). Rows, per thread
setting:

- ``numpy brute force (chunked)``: the exact baseline, ``q @ G.T`` over 65 536-row chunks of the mapped file
  and a running top 10 (``--pq-baseline-queries`` timed queries, as each reads the whole file);
- ``index top-10``: the ivfpq index alone with the library's defaults (nlist ~ sqrt(n), k = 10, the exact
  re-rank of max(k x 10, 1000) codes); ``recall@10`` is against the baseline's exact top 10 on every row;
- ``search none`` / ``search dis``: the library's GallerySearch over that index (its 1000 candidates re-ranked
  exactly, the beat-alignment term, DIS), as ``Library.search`` runs it after embedding a query.

``build s``: training the index and adding the mapped rows; ``fit s``: the QB-Norm fit of ``--bank`` queries
against the whole gallery (exact scores, read from the mapped file); ``RAM B/item``: the index's FAISS bytes
per item (its float32 vectors, 4 x dim B/item, stay on disk and in the page cache), and on the baseline row
the float32 matrix it scans.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from search_speed import (
    CLUSTERS,
    FRAMES,
    ROW_CHUNK,
    TOP,
    bank_chunk,
    index_facts,
    searcher_runs,
    synthetic_side,
    timed_rows,
)

from beatdance.library import LibraryConfig
from beatdance.retrieval.index import VectorIndex
from beatdance.retrieval.scale import auto_nlist
from beatdance.retrieval.search import fit_gallery_querybank


def chunked_top(queries: np.ndarray, gallery: np.ndarray, *, k: int, chunk_rows: int = ROW_CHUNK) -> np.ndarray:
    """Exact top-``k`` gallery rows per query row, best first: float32 dot products with ``chunk_rows`` gallery rows
    at a time (a memory-mapped file is never read into RAM whole) and a running top ``k``."""
    q = np.atleast_2d(queries)
    best_s = np.empty((len(q), 0), dtype=np.float32)
    best_i = np.empty((len(q), 0), dtype=np.int64)
    for a in range(0, len(gallery), chunk_rows):
        s = q @ gallery[a : a + chunk_rows].T
        part = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part + a], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i


def pq_peak_bytes(*, n: int, dim: int) -> int:
    """Estimated RAM of one size besides the mapped gallery: beat grids and the gallery's beat factor, the float64
    beat kernel and a querybank score chunk (transients), the index's codes and ids, its training sample."""
    config = LibraryConfig().index_config(dim)
    transient = max(40 * n * FRAMES, 40 * bank_chunk(n) * n)
    return 9 * n * FRAMES + transient + (config.pq_m + 8) * n + 4 * config.train_size * dim


def pq_skip_reason(*, n: int, dim: int, budget_bytes: int, scratch: Path) -> str | None:
    """Why size ``n`` cannot run here (RAM budget or scratch disk), or None."""
    need_disk = 4 * n * dim
    free_disk = shutil.disk_usage(scratch).free
    if need_disk > 0.9 * free_disk:
        return f"pq size {n} skipped: its {need_disk / 1e9:.1f} GB gallery file needs more than {scratch} has free"
    if budget_bytes and pq_peak_bytes(n=n, dim=dim) > budget_bytes:
        return (
            f"pq size {n} skipped: est. {pq_peak_bytes(n=n, dim=dim) / 1e9:.1f} GB > budget {budget_bytes / 1e9:.1f} GB"
        )
    return None


def bench_pq_size(
    *,
    n: int,
    dim: int,
    threads: Sequence[int | None],
    queries: int,
    baseline_queries: int,
    bank_size: int,
    seed: int,
    scratch: Path,
) -> list[dict[str, Any]]:
    """The chunked numpy baseline, the ivfpq index alone and the library's search over it, for ``n`` items at
    ``dim`` whose fused embeddings live in a memory-mapped file under ``scratch``."""
    rng = np.random.default_rng([seed, n, dim])
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    with tempfile.TemporaryDirectory(prefix="search-speed-", dir=scratch) as tmp:
        mapped = np.lib.format.open_memmap(Path(tmp) / "gallery.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        gallery = synthetic_side(n=n, dim=dim, rng=rng, centres=centres, out=mapped, heads=False)
        qs = synthetic_side(n=queries, dim=dim, rng=rng, centres=centres, near=gallery.fuse, heads=False)
        bank = synthetic_side(n=bank_size, dim=dim, rng=rng, centres=centres, near=gallery.fuse, heads=False)
        t0 = time.perf_counter()
        qb = fit_gallery_querybank(
            bank=bank, gallery=gallery, direction="m2d", settings=LibraryConfig().search, chunk_size=bank_chunk(n)
        )
        fit_s = time.perf_counter() - t0
        exact = list(chunked_top(qs.fuse, gallery.fuse, k=TOP))
        base = {"size": n, "dim": dim}
        rows = timed_rows(
            {"numpy brute force (chunked)": lambda i: chunked_top(qs.fuse[i], gallery.fuse, k=TOP)},
            threads=threads,
            count=min(baseline_queries, queries),
            fixed={**base, "index": "-", "recall@10": 1.0, "build s": None, "RAM B/item": 4 * dim},
            fit_s=None,
        )
        t0 = time.perf_counter()
        index = VectorIndex.build(
            gallery.fuse, config=LibraryConfig(index="ivfpq", nlist=auto_nlist(n)).index_config(dim)
        )
        build_s = time.perf_counter() - t0
        run = {
            "index top-10": lambda i: index.search(qs.fuse[i : i + 1], k=TOP),
            **searcher_runs(index, gallery=gallery, queries=qs, querybank=qb),
        }
        facts = {**base, **index_facts(index, queries=qs.fuse, exact=exact), "build s": build_s}
        rows += timed_rows(run, threads=threads, count=queries, fixed=facts, fit_s=fit_s)
    return rows
