"""Scaling the vector index out: the ``auto`` choice of index kind by library size, and parallel shard builds.

``choose_index`` keeps the exact ``flat`` index below ``AUTO_FLAT_MAX_ITEMS`` items (a single query then
scans at most that many vectors) and switches to ``ivfpq`` above it, with ``nlist`` growing as sqrt(n).
Not ``opq-ivfpq``: on clustered synthetic vectors (1169-d, 30k items) its learned rotation built 3-5x
slower for the same recall after the exact re-rank. The figures behind the choice are the "Scaling out"
table of the README (``benchmarks/index_scale.py``).

``fill_shards`` fills the K shards of an index as Ray tasks (``pipeline.executors.map_unordered``: actors on
a local Ray instance or a cluster, from the optional ``beatdance[scale]`` extra). The rows and the trained
template travel as files in a scratch folder (on a cluster: one every node sees), not through Ray's object
store, and each shard comes back as a file. There is no local process pool: a process forked after FAISS
has used OpenMP hangs (tried), and on one machine FAISS's own threads already fill a shard with every core.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..threads import usable_cores
from .index import _faiss
from .index_config import Executor, IndexConfig

AUTO_FLAT_MAX_ITEMS = 100_000
AUTO_MAX_NLIST = 4096
GPU_KINDS = ("ivf", "ivfpq", "opq-ivfpq")


@dataclass
class IndexChoice:
    """The index ``config`` chosen for a library, and ``reason``: one sentence saying why (printed by ``index``)."""

    config: IndexConfig
    reason: str


def auto_nlist(items: int) -> int:
    """The power of two nearest sqrt(items), between 64 and ``AUTO_MAX_NLIST``."""
    return int(min(AUTO_MAX_NLIST, max(64, 2 ** round(math.log2(max(1.0, math.sqrt(items)))))))


def choose_index(*, items: int, base: IndexConfig) -> IndexChoice:
    """``auto``: ``base`` as exact ``flat`` for small libraries, as ``ivfpq`` (nlist from the size) above."""
    if items < AUTO_FLAT_MAX_ITEMS:
        return IndexChoice(
            replace(base, kind="flat"),
            f"auto: flat (exact) for {items} items (< {AUTO_FLAT_MAX_ITEMS}: every query scans every vector)",
        )
    cfg = replace(base, kind="ivfpq", nlist=auto_nlist(items))
    return IndexChoice(
        cfg,
        f"auto: ivfpq ({cfg.factory}, nprobe {cfg.lists_probed}, exact re-rank of the best "
        f"max(k x {cfg.rerank_factor}, {cfg.rerank_min})) for {items} items (>= {AUTO_FLAT_MAX_ITEMS})",
    )


def faiss_gpu(device: str, *, kind: str) -> tuple[int | None, str]:
    """The GPU that FAISS trains and fills an index of ``kind`` on when the model runs on torch ``device`` (None:
    CPU FAISS), and a sentence saying which and why. Only the IVF kinds, whose k-means and list assignment are
    the work, go to the GPU, and only where this faiss has GPU support (``faiss.get_num_gpus() > 0``)."""
    device_type, _, number = device.partition(":")
    if device_type != "cuda":
        return None, "FAISS on the CPU"
    if _faiss().get_num_gpus() < 1:
        return None, "FAISS on the CPU (this faiss has no GPU support; install faiss-gpu for GPU builds)"
    if kind not in GPU_KINDS:
        return None, f"FAISS on the CPU (a {kind} index has no k-means to train on a GPU)"
    gpu = int(number or 0)
    return gpu, f"FAISS on GPU {gpu}"


def on_gpu(index: Any, *, gpu: int, pq: bool, step: Callable[[Any], None]) -> Any:
    """Run ``step`` on a copy of the CPU FAISS ``index`` on GPU ``gpu``; the result comes back as a CPU index."""
    faiss = _faiss()
    options = faiss.GpuClonerOptions()
    # ``pq``: float16 look-up tables (GPU IVF-PQ needs them for codes of 56 bytes and more); IVF-Flat keeps float32
    options.useFloat16 = pq
    moved = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index, options)
    step(moved)
    return faiss.index_gpu_to_cpu(moved)


def fill_shard(task: tuple[int, str, str, int, int, int, str]) -> tuple[int, str]:
    """A parallel task: add rows ``a:b`` of the ``.npy`` vectors to a copy of the trained, empty template index
    and write the shard to ``out``; ``task`` = (shard, template, vectors, a, b, threads, out)."""
    faiss = _faiss()
    shard_no, template, vectors, a, b, threads, out = task
    faiss.omp_set_num_threads(threads)
    shard = faiss.read_index(template)
    shard.add(np.ascontiguousarray(np.load(vectors, mmap_mode="r")[a:b]))
    faiss.write_index(shard, out)
    return shard_no, out


def _lost(task: tuple[Any, ...], reason: str) -> tuple[int, str]:
    raise DataError(f"shard {task[0]} of the index was not built: {reason}. Build again, or without --executor ray.")


def fill_shards(
    template: Any,
    x: np.ndarray,
    *,
    bounds: list[tuple[int, int]],
    executor: Executor,
    workers: int | None,
    ray_address: str | None,
    scratch_dir: str | os.PathLike[str] | None,
) -> list[Any]:
    """The FAISS shards of rows ``bounds`` of normalised ``x``, each a copy of the trained, empty ``template``
    filled by a parallel task; ``scratch_dir`` holds the exchanged files (default: the system's temporary folder)."""
    from ..pipeline.executors import map_unordered

    faiss = _faiss()
    tasks_at_once = max(1, min(len(bounds), workers or usable_cores()))
    threads = max(1, usable_cores() // tasks_at_once)
    with tempfile.TemporaryDirectory(prefix="beatdance-shards-", dir=scratch_dir) as tmp:
        folder = Path(tmp)
        faiss.write_index(template, str(folder / "template.faiss"))
        np.save(folder / "vectors.npy", x)
        tasks = [
            (
                i,
                str(folder / "template.faiss"),
                str(folder / "vectors.npy"),
                a,
                b,
                threads,
                str(folder / f"shard{i}.faiss"),
            )
            for i, (a, b) in enumerate(bounds)
        ]
        done = dict(
            map_unordered(fill_shard, tasks, executor=executor, workers=workers, ray_address=ray_address, on_lost=_lost)
        )
        return [faiss.read_index(done[i]) for i in range(len(bounds))]
