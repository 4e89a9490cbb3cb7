"""Index kinds at scale: recall@10 against exact search, memory per item, build and query time (issue 13).

    python benchmarks/index_scale.py [--sizes 100000] [--dims 1169,2560] [--kinds flat,ivf,hnsw,ivfpq,opq-ivfpq,auto]
                                     [--queries 100] [--shards 2] [--shard-kinds flat,ivfpq] [--executor local|ray]
                                     [--qb-items 20000] [--qb-sizes 1000,2500,5000,10000] [--json out.json]

Part 1, per library size and embedding dim (1169: the default recipe's embedding; 2560: the official
model's): clustered synthetic L2-normalised vectors (``search_speed.synthetic_side``) and queries near
gallery items. Every kind is built with ``VectorIndex.build`` (IVF kinds with ``nlist = auto_nlist(size)``,
``auto`` as ``choose_index`` resolves it), saved, loaded memory-mapped as a library opens it, and searched
one query at a time on one thread:

- ``recall@10``: overlap of the index's top 10 with the exact top 10 of a float64 brute force;
- ``top1 = flat``: share of queries whose first result is the exact first (PQ kinds after the exact re-rank);
- ``index B/item``: FAISS files per item (what RAM holds once the pages are touched); ``disk B/item`` adds
  the float32 vectors the PQ kinds re-rank from (memory-mapped, read ``k x rerank_factor`` rows per query).

Sharded rows (``--shards K`` of ``--shard-kinds``, first size and dim only) build K shards (``--executor``)
and check that their top 10 equal the unsharded index's.

Part 2, the querybank (DIS) fit when it is sampled: ``--qb-items`` paired synthetic music/dance items (dance
i is a noisy copy of music i). ``--qb-queries`` music clips search the dance gallery with the library's
default search (flat index, DIS); the querybank is the other music clips, fitted whole and sampled to each
``--qb-sizes`` (``fit_gallery_querybank(bank_size=)``). Reported: fit time, pair R@1 / R@10 (first row:
plain cosine, no QB-Norm), and the overlap of each top 10 with the whole-bank DIS top 10 (what sampling costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_speed import CLUSTERS, finish, markdown_table, synthetic_side, unit_rows

from beatdance.retrieval.index import VectorIndex
from beatdance.retrieval.index_config import KINDS, IndexConfig
from beatdance.retrieval.scale import auto_nlist, choose_index
from beatdance.retrieval.scoring import ModalityEmbeddings
from beatdance.retrieval.search import LIBRARY_SEARCH, GallerySearch, fit_gallery_querybank
from beatdance.threads import limited_threads

TOP = 10
INDEX_COLUMNS = (
    "size",
    "dim",
    "kind",
    "factory",
    "shards",
    "build s",
    "query p50 ms",
    "recall@10",
    "top1 = flat",
    "index B/item",
    "disk B/item",
)
QB_COLUMNS = ("bank", "fit s", "R@1", "R@10", "top-10 overlap with whole bank")


def exact_top(queries: np.ndarray, gallery: np.ndarray, *, k: int = TOP, chunk: int = 65536) -> np.ndarray:
    """The ``k`` gallery rows of highest float64 dot product per query, best first (gallery read in chunks)."""
    q = queries.astype(np.float64)
    scores = np.empty((len(q), len(gallery)))
    for a in range(0, len(gallery), chunk):
        scores[:, a : a + chunk] = q @ gallery[a : a + chunk].astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each ``truth`` row found in the same row of ``found``."""
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / t.size for f, t in zip(found, truth)]))


def kind_config(kind: str, *, n: int, dim: int, shards: int = 1) -> tuple[IndexConfig, str]:
    """The config of ``kind`` at size ``n`` (IVF lists from the size) and its label (``auto``: the choice).
    ``KIND@P`` probes P inverted lists instead of the default ``nprobe``; ``KIND@P/R`` (or ``KIND@/R``) also
    re-ranks a shortlist of exactly k x R (``rerank_factor`` R, no ``rerank_min`` floor)."""
    kind, _, tuning = kind.partition("@")
    probe, _, rerank = tuning.partition("/")
    base = IndexConfig(dim=dim, nlist=auto_nlist(n), shards=shards)
    if probe:
        base = dataclasses.replace(base, nprobe=int(probe))
    if rerank:
        base = dataclasses.replace(base, rerank_factor=int(rerank), rerank_min=1)
    tuned = [f"nprobe {probe}"] * bool(probe) + [f"re-rank k x {rerank}"] * bool(rerank)
    suffix = f" ({', '.join(tuned)})" if tuned else ""
    if kind == "auto":
        choice = choose_index(items=n, base=base)
        return choice.config, f"auto -> {choice.config.kind}{suffix}"
    return dataclasses.replace(base, kind=kind), kind + suffix


def file_bytes(folder: Path, *, vectors: bool) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix != ".json" and f.name.endswith(".npy") == vectors)


@contextmanager
def saved_index(config: IndexConfig, *, gallery: np.ndarray, executor: str) -> Iterator[dict[str, Any]]:
    """Build an index, save it and load it memory-mapped as a library does: the loaded ``index``, ``build s`` and
    the bytes per item of its files (``index B/item``, ``disk B/item`` with the re-rank vectors)."""
    n = len(gallery)
    t0 = time.perf_counter()
    built = VectorIndex.build(gallery, config=config, executor=executor)  # type: ignore[arg-type]
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="index-scale-") as tmp:
        built.save(Path(tmp) / "x.faiss")
        del built
        index_bytes = file_bytes(Path(tmp), vectors=False)
        vector_bytes = file_bytes(Path(tmp), vectors=True)
        yield {
            "index": VectorIndex.load(Path(tmp) / "x.faiss", dim=config.dim),
            "build s": build_s,
            "index B/item": index_bytes / n,
            "disk B/item": (index_bytes + vector_bytes) / n,
        }


def index_rows(
    kinds: Sequence[str],
    *,
    gallery: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    shards: int = 1,
    executor: str = "local",
) -> list[tuple[dict[str, Any], np.ndarray]]:
    """A row and the top 10 per query of each of ``kinds``, searched one query at a time on one thread.
    Consecutive kinds that differ only in search parameters (nprobe, re-rank) search one build (``VectorIndex.tune``)."""
    n, dim = gallery.shape
    out = []
    with ExitStack() as stack:
        built_key = None
        for kind in kinds:
            config, label = kind_config(kind, n=n, dim=dim, shards=shards)
            key = dataclasses.replace(config, nprobe=1, rerank_factor=1, rerank_min=1)
            if key != built_key:
                stack.close()  # frees the previous index first
                built = stack.enter_context(saved_index(config, gallery=gallery, executor=executor))
                built_key = key
            index = built["index"]
            index.tune(nprobe=config.nprobe, rerank_factor=config.rerank_factor, rerank_min=config.rerank_min)
            times, found = [], []
            with limited_threads(1):
                for q in queries:
                    t0 = time.perf_counter()
                    found.append(index.search(q[None], k=TOP)[1][0])
                    times.append(time.perf_counter() - t0)
            top = np.stack(found)
            row = {
                "size": n,
                "dim": dim,
                "kind": label,
                "factory": config.factory,
                "shards": shards,
                "build s": built["build s"],
                "query p50 ms": 1e3 * float(np.median(times)),
                "recall@10": overlap(top, truth),
                "top1 = flat": float(np.mean(top[:, 0] == truth[:, 0])),
                "index B/item": built["index B/item"],
                "disk B/item": built["disk B/item"],
            }
            print(json.dumps(row), file=sys.stderr, flush=True)  # a row as soon as it is measured
            out.append((row, top))
    return out


def index_row(
    kind: str, *, gallery: np.ndarray, queries: np.ndarray, truth: np.ndarray, shards: int = 1, executor: str = "local"
) -> tuple[dict[str, Any], np.ndarray]:
    """Build, save, load (memory-mapped) and time one index; the row and its top 10 per query."""
    return index_rows([kind], gallery=gallery, queries=queries, truth=truth, shards=shards, executor=executor)[0]


def bench_size(
    *,
    n: int,
    dim: int,
    kinds: Sequence[str],
    queries: int,
    shards: int,
    shard_kinds: Sequence[str],
    executor: str,
    seed: int,
) -> list[dict[str, Any]]:
    rng = np.random.default_rng([seed, n, dim])
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    gallery = synthetic_side(n=n, dim=dim, rng=rng, centres=centres).fuse
    qs = synthetic_side(n=queries, dim=dim, rng=rng, centres=centres, near=gallery).fuse
    truth = exact_top(qs, gallery)
    measured = index_rows(kinds, gallery=gallery, queries=qs, truth=truth)
    tops = dict(zip(kinds, (top for _, top in measured)))
    rows = [row for row, _ in measured]
    sharded = index_rows(
        shard_kinds if shards > 1 else (), gallery=gallery, queries=qs, truth=truth, shards=shards, executor=executor
    )
    for kind, (row, top) in zip(shard_kinds, sharded):
        if kind in tops:
            row["kind"] += f" ({executor}; top 10 = 1 shard: {float(np.mean(top == tops[kind])):.2f})"
        rows.append(row)
    return rows


def paired_items(*, n: int, dim: int, seed: int, noise: float) -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    """``n`` music items and their dances: fused embeddings that are noisy copies of the music's (``noise`` /
    sqrt(dim) per coordinate)."""
    rng = np.random.default_rng([seed, n])
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    music = synthetic_side(n=n, dim=dim, rng=rng, centres=centres)
    dance = synthetic_side(n=n, dim=dim, rng=rng, centres=centres)
    noisy = music.fuse + rng.standard_normal(music.fuse.shape, dtype=np.float32) * (noise / np.sqrt(dim))
    dance.fuse = unit_rows(noisy)
    return music, dance


def rows_of(emb: ModalityEmbeddings, rows: np.ndarray) -> ModalityEmbeddings:
    assert emb.beat_head is not None
    return ModalityEmbeddings(
        fuse=emb.fuse[rows],
        beat_head=emb.beat_head[rows],
        beat_grid=emb.beat_grid[rows],
        ids=[emb.ids[i] for i in rows],
    )


def querybank_rows(
    *, n: int, dim: int, sizes: Sequence[int], queries: int, seed: int, noise: float
) -> list[dict[str, Any]]:
    """DIS with the whole querybank against banks sampled to ``sizes``; the bank is the library's music without
    the query songs (as a new song meets a library), and plain cosine ranking is the first row."""
    music, dance = paired_items(n=n, dim=dim, seed=seed, noise=noise)
    index = VectorIndex.build(dance.fuse, config=IndexConfig(dim=dim))
    is_query = np.zeros(n, dtype=bool)
    is_query[np.random.default_rng(seed).choice(n, min(queries, n // 2), replace=False)] = True
    q_rows = np.flatnonzero(is_query)
    q, bank = rows_of(music, q_rows), rows_of(music, np.flatnonzero(~is_query))
    rows, whole = [], None
    for size in [None, 0, *sizes]:
        t0 = time.perf_counter()
        qb = fit_gallery_querybank(
            bank=bank, gallery=dance, direction="m2d", settings=LIBRARY_SEARCH, bank_size=size or 0
        )
        fit_s = time.perf_counter() - t0
        search = GallerySearch(
            index=index, beat_head=dance.beat_head, beat_grid=dance.beat_grid, direction="m2d", querybank=qb
        )
        settings = dataclasses.replace(LIBRARY_SEARCH, hubness="none" if size is None else "dis")
        top = search.search(q, top=TOP, settings=settings).rows
        if size == 0:
            whole = top
        rows.append(
            {
                "bank": "none (plain cosine)" if size is None else f"{qb.bank_size} of {len(bank)}",
                "fit s": None if size is None else fit_s,
                "R@1": float(np.mean(top[:, 0] == q_rows)),
                "R@10": float(np.mean((top == q_rows[:, None]).any(1))),
                "top-10 overlap with whole bank": None if whole is None else overlap(top, whole),
            }
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma-separated library sizes ('': skip part 1)")
    ap.add_argument("--dims", default="1169,2560", help="comma-separated embedding dims")
    ap.add_argument(
        "--kinds",
        default="flat,ivf,hnsw,ivfpq,opq-ivfpq,auto",
        help="index kinds (and auto); KIND@P probes P lists, KIND@P/R or KIND@/R re-ranks k x R",
    )
    ap.add_argument("--queries", type=int, default=100, help="single queries timed per index")
    ap.add_argument("--shards", type=int, default=2, help="shards of the sharded rows (1: none)")
    ap.add_argument("--shard-kinds", default="flat,ivfpq", help="kinds also built sharded (first size and dim)")
    ap.add_argument("--executor", default="local", choices=("local", "ray"), help="where the shards are filled")
    ap.add_argument("--qb-items", type=int, default=20_000, help="library size of the querybank part (0: skip it)")
    ap.add_argument("--qb-sizes", default="1000,2500,5000,10000", help="sampled querybank sizes")
    ap.add_argument("--qb-queries", type=int, default=1000)
    ap.add_argument(
        "--qb-noise",
        type=float,
        default=4.5,
        help="pair noise (at 1169-d, 20k items: plain cosine ranks about half of the pairs first)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows and the machine to this JSON file")
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.dims = [int(s) for s in args.dims.split(",") if s]
    args.kinds = [k for k in args.kinds.split(",") if k]
    args.shard_kinds = [k for k in args.shard_kinds.split(",") if k]
    args.qb_sizes = [int(s) for s in args.qb_sizes.split(",") if s]
    bad = [
        k
        for k in args.kinds + args.shard_kinds
        if k.partition("@")[0] not in (*KINDS, "auto")
        or not re.fullmatch(r"([1-9]\d*)?(/[1-9]\d*)?", k.partition("@")[2])
    ]
    if bad or (args.sizes and min(args.sizes) < TOP) or args.queries < 1 or args.shards < 1:
        ap.error(
            f"--kinds {bad} not in {', '.join(KINDS)}, auto (KIND@P/R: positive counts); "
            f"--sizes below {TOP}; --queries or --shards < 1"
        )
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both parts, print the Markdown tables, return (and optionally save) the rows and the machine."""
    args = parse_args(argv)
    started = time.perf_counter()
    rows = [
        row
        for i, n in enumerate(args.sizes)
        for j, dim in enumerate(args.dims)
        for row in bench_size(
            n=n,
            dim=dim,
            kinds=args.kinds,
            queries=args.queries,
            shards=args.shards if i == j == 0 else 1,
            shard_kinds=args.shard_kinds,
            executor=args.executor,
            seed=args.seed,
        )
    ]
    if rows:
        print(markdown_table(rows, INDEX_COLUMNS))
    qb_rows = []
    if args.qb_items:
        qb_rows = querybank_rows(
            n=args.qb_items,
            dim=args.dims[0],
            sizes=args.qb_sizes,
            queries=args.qb_queries,
            seed=args.seed,
            noise=args.qb_noise,
        )
        print(f"\nQuerybank sampling ({args.qb_items} items, dim {args.dims[0]}, {args.qb_queries} queries, DIS):\n")
        print(markdown_table(qb_rows, QB_COLUMNS))
    return finish({"rows": rows, "querybank": qb_rows}, started=started, json_path=args.json)


if __name__ == "__main__":
    main()
