"""Search latency of libraries of 1k/10k/100k/1M items, one query at a time, on this machine (issue 4).

    python benchmarks/search_speed.py [--sizes 1000,10000,100000,1000000] [--queries 50] [--dim 2560]
                                      [--index flat,ivf,hnsw] [--bank 1000] [--e2e-items 10000]
                                      [--pq-sizes 1000000 --pq-baseline-queries 5 --scratch DIR]
                                      [--json out.json] [--out DIR]

For every library size, synthetic L2-normalised embeddings (clustered fused embeddings, beat-head
embeddings, 0/1 beat grids of 100 frames at 10 fps) are searched one query at a time, as an
interactive user does, with:

- ``numpy``: the baseline, a plain brute force ``q @ G.T`` + argpartition top-k on the fused embeddings;
- ``search none``: GallerySearch (vector-index candidates -> beat-enhanced score), no hubness reduction;
- ``search dis``: the same with DIS, querybank statistics fitted by fit_gallery_querybank on a
  synthetic bank (the fitting time is reported separately, in ``fit s``).

Both searches use the default beat weights of LibraryConfig().search. ``recall@10`` is the overlap of
the index's fused-cosine top 10 with the exact brute-force top 10 (1.00 for flat, up to ties); ``RAM B/item``
is the index's FAISS bytes per item (the baseline: the float32 matrix it scans).

``--pq-sizes`` (opt-in, e.g. 1000000) adds rows at the full ``--dim`` with the gallery memory-mapped from a
scratch file, an ``ivfpq`` index and a chunked numpy baseline (benchmarks/search_speed_pq.py).

Memory: the model's embeddings are 2560-d (10 segments x 256) for the fused and the beat-head
embedding, so 1M items would need 2 x 10 GB plus the index's copy. Each size runs at the largest dim
(``--dim``, halved as needed) whose estimated peak fits ``--mem-fraction`` of MemAvailable; the dim
used is a table column. The end-to-end row builds a real library (write_library) of ``--e2e-items``
items with a randomly initialised model of the default size and times Library.search on a 10-s WAV:
feature extraction + beat tracking + embedding + search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from beatdance.library import LibraryConfig
from beatdance.retrieval.hubness import QuerybankStats
from beatdance.retrieval.index import VectorIndex
from beatdance.retrieval.scoring import ModalityEmbeddings
from beatdance.retrieval.search import GallerySearch, fit_gallery_querybank

FRAMES = 100  # 10-s beat grids at 10 fps
BEAT_RATE = 0.2  # share of grid frames holding a beat
CLUSTERS = 1024  # centres of the synthetic fused embeddings (ANN indexes need structure to be judged fairly)
ROW_CHUNK = 65536  # rows generated / added to an index at a time (bounded temporaries)
CHUNK_BYTES = 1e9  # budget of one querybank score chunk
TOP = 10
COLUMNS = (
    "size",
    "dim",
    "index",
    "threads",
    "method",
    "p50 ms",
    "p95 ms",
    "cold ms",
    "build s",
    "fit s",
    "recall@10",
    "RAM B/item",
)


@contextmanager
def thread_limit(threads: int | None) -> Iterator[str]:
    """Limit every BLAS / OpenMP pool (numpy's, scipy's, FAISS's, torch's) to ``threads``; None: the defaults.
    Yields the label of the threads column."""
    import torch

    if threads is None:
        yield f"default ({torch.get_num_threads()})"
        return
    from threadpoolctl import threadpool_limits  # installed with scikit-learn, a dependency of librosa

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield str(threads)
    finally:
        torch.set_num_threads(before)


def mem_available_bytes() -> int:
    """MemAvailable of /proc/meminfo (0 where it cannot be read: no size is then memory-checked)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def bank_chunk(n: int) -> int:
    """Bank rows scored at a time so that one chunk of (rows, n) scores and its temporaries stays near CHUNK_BYTES."""
    return int(max(8, min(1024, CHUNK_BYTES // (40 * n))))


def peak_bytes(*, n: int, dim: int) -> int:
    """Estimated peak memory of one size: fused + beat-head embeddings + one index copy (float32), beat
    grids and kernels, and the largest transient (the float64 beat kernel, a norm check, a score chunk)."""
    persistent = 3 * 4 * n * dim + 9 * n * FRAMES
    transient = max(40 * n * FRAMES, 4 * n * dim, 40 * bank_chunk(n) * n)
    return persistent + transient


def choose_dim(*, n: int, dim: int, budget_bytes: int) -> int | None:
    """``dim``, halved until the size fits ``budget_bytes`` (None: not even 32-d fits); no check without a budget."""
    d = dim
    while budget_bytes and peak_bytes(n=n, dim=d) > budget_bytes:
        if d // 2 < 32:
            return None
        d //= 2
    return d


def unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_side(
    *,
    n: int,
    dim: int,
    rng: np.random.Generator,
    centres: np.ndarray,
    near: np.ndarray | None = None,
    out: np.ndarray | None = None,
    heads: bool = True,
) -> ModalityEmbeddings:
    """``n`` items: fused embeddings around random ``centres`` (or around rows of ``near``: queries that
    resemble gallery items), random beat-head embeddings (unless not ``heads``) and 0/1 beat grids, generated
    chunk by chunk; the fused rows are written into ``out`` when given (e.g. a memory-mapped file)."""
    fuse = np.empty((n, dim), dtype=np.float32) if out is None else out
    head = np.empty((n, dim), dtype=np.float32) if heads else None
    for a in range(0, n, ROW_CHUNK):
        m = min(ROW_CHUNK, n - a)
        base = (
            near[rng.integers(len(near), size=m)] if near is not None else centres[rng.integers(len(centres), size=m)]
        )
        fuse[a : a + m] = unit_rows(base + rng.standard_normal((m, dim), dtype=np.float32) * (0.6 / np.sqrt(dim)))
        if head is not None:
            head[a : a + m] = unit_rows(rng.standard_normal((m, dim), dtype=np.float32))
    grid = (rng.random((n, FRAMES), dtype=np.float32) < BEAT_RATE).astype(np.uint8)
    ids = [str(i) for i in range(n)]
    return ModalityEmbeddings(fuse=fuse, beat_head=head, beat_grid=grid, ids=ids)


def one_row(emb: ModalityEmbeddings, i: int) -> ModalityEmbeddings:
    sl = slice(i, i + 1)
    head = None if emb.beat_head is None else emb.beat_head[sl]
    return ModalityEmbeddings(fuse=emb.fuse[sl], beat_head=head, beat_grid=emb.beat_grid[sl], ids=[emb.ids[i]])


def latency(fn: Callable[[int], Any], count: int) -> dict[str, float]:
    """Cold (first) call, then p50/p95 of ``count`` calls fn(0..count-1), in ms (the first call of a setting is
    the cold one: the first query of a new GallerySearch computes the gallery's beat kernel)."""
    t0 = time.perf_counter()
    fn(0)
    cold = time.perf_counter() - t0
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50 ms": 1e3 * p50, "p95 ms": 1e3 * p95, "cold ms": 1e3 * cold}


def numpy_top(q: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """The baseline: full scores and an argpartition top-k, best first."""
    s = q @ gallery.T
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.argsort(-s[part])]


def build_index(kind: str, gallery: np.ndarray) -> VectorIndex:
    """An index of ``kind`` with LibraryConfig's parameters (IVF lists capped to 1 per 39 items, FAISS's minimum)."""
    lib = LibraryConfig()
    cfg = dataclasses.replace(
        lib.index_config(gallery.shape[1]), kind=kind, nlist=min(lib.nlist, max(1, len(gallery) // 39))
    )
    index = VectorIndex(cfg)
    for a in range(0, len(gallery), ROW_CHUNK):
        index.add(gallery[a : a + ROW_CHUNK])
    return index


def index_label(index: VectorIndex) -> str:
    c = index.config
    return {
        "flat": "flat",
        "ivf": f"ivf{c.nlist}/{c.lists_probed}",
        "hnsw": f"hnsw{c.hnsw_m}/{c.hnsw_ef_search}",
        "ivfpq": f"ivfpq{c.nlist}/{c.lists_probed} PQ{c.pq_m}",
    }[c.kind]


def timed_rows(
    run: dict[str, Callable[[int], Any]],
    *,
    threads: Sequence[int | None],
    count: int,
    fixed: dict[str, Any],
    fit_s: float | None,
) -> list[dict[str, Any]]:
    """A row per thread setting and method of ``run``: the ``fixed`` columns and the latency of ``count`` calls
    (``fit s`` on the DIS rows)."""
    rows = []
    for t in threads:
        with thread_limit(t) as t_label:
            for method, fn in run.items():
                rows.append(
                    {
                        **fixed,
                        "threads": t_label,
                        "method": method,
                        **latency(fn, count),
                        "fit s": fit_s if method == "search dis" else None,
                    }
                )
    return rows


def bench_size(
    *, n: int, dim: int, kinds: Sequence[str], threads: Sequence[int | None], queries: int, bank_size: int, seed: int
) -> list[dict[str, Any]]:
    """Rows of one library size, per thread setting: the numpy baseline, then GallerySearch without and with DIS
    per index kind."""
    rng = np.random.default_rng([seed, n])
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    gallery = synthetic_side(n=n, dim=dim, rng=rng, centres=centres)
    qs = synthetic_side(n=queries, dim=dim, rng=rng, centres=centres, near=gallery.fuse)
    bank = synthetic_side(n=bank_size, dim=dim, rng=rng, centres=centres, near=gallery.fuse)
    base = {"size": n, "dim": dim}
    lib_settings = LibraryConfig().search
    t0 = time.perf_counter()
    qb: QuerybankStats = fit_gallery_querybank(
        bank=bank, gallery=gallery, direction="m2d", settings=lib_settings, chunk_size=bank_chunk(n)
    )
    fit_s = time.perf_counter() - t0
    del bank
    exact = [numpy_top(qs.fuse[i], gallery.fuse, TOP) for i in range(queries)]
    rows = []
    for kind in [None, *kinds]:
        if kind is None:
            facts: dict[str, Any] = {"index": "-", "recall@10": 1.0, "build s": None, "RAM B/item": 4 * dim}
            run = {"numpy brute force": lambda i: numpy_top(qs.fuse[i], gallery.fuse, TOP)}
        else:
            facts, run = index_runs(kind, gallery=gallery, queries=qs, exact=exact, querybank=qb)
        rows += timed_rows(run, threads=threads, count=len(qs), fixed={**base, **facts}, fit_s=fit_s)
        del run  # frees the index before the next one is built
    return rows


def index_facts(index: VectorIndex, *, queries: np.ndarray, exact: Sequence[np.ndarray]) -> dict[str, Any]:
    """The index's label, recall@10 of its top 10 for ``queries`` against the ``exact`` top 10s, and its FAISS
    bytes per item."""
    _, found = index.search(queries, k=TOP)
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / TOP for f, e in zip(found, exact)]))
    return {"index": index_label(index), "recall@10": recall, "RAM B/item": index.faiss_bytes() / len(index)}


def searcher_runs(
    index: VectorIndex, *, gallery: ModalityEmbeddings, queries: ModalityEmbeddings, querybank: QuerybankStats
) -> dict[str, Callable[[int], Any]]:
    """Single-query GallerySearch over ``index`` with the library's settings, without and with DIS."""
    searcher = GallerySearch(
        index=index, beat_head=gallery.beat_head, beat_grid=gallery.beat_grid, direction="m2d", querybank=querybank
    )
    singles = [one_row(queries, i) for i in range(len(queries))]
    settings = {hub: dataclasses.replace(LibraryConfig().search, hubness=hub) for hub in ("none", "dis")}
    return {
        f"search {hub}": (lambda i, s=s: searcher.search(singles[i], top=TOP, settings=s))
        for hub, s in settings.items()
    }


def index_runs(
    kind: str,
    *,
    gallery: ModalityEmbeddings,
    queries: ModalityEmbeddings,
    exact: list[np.ndarray],
    querybank: QuerybankStats,
) -> tuple[dict[str, Any], dict[str, Callable[[int], Any]]]:
    """Build a ``kind`` index: its columns (label, recall@10 vs ``exact``, build seconds, bytes per item) and its
    single-query searches without and with DIS."""
    t0 = time.perf_counter()
    index = build_index(kind, gallery.fuse)
    build_s = time.perf_counter() - t0
    facts = {**index_facts(index, queries=queries.fuse, exact=exact), "build s": build_s}
    return facts, searcher_runs(index, gallery=gallery, queries=queries, querybank=querybank)


def write_query_wav(path: Path, *, duration_s: float, seed: int) -> Path:
    import soundfile as sf

    from beatdance.synth.media import synthesize_pair

    pair = synthesize_pair(seed=seed, duration_s=duration_s)
    sf.write(path, pair.music.audio, pair.music.sr, subtype="PCM_16")
    return path


def synthetic_prior(*, seed: int) -> Any:
    """A metre prior fitted on synthetic pairs (waltzes danced at a third of the beat, duple songs at a half),
    for a randomly initialised default-recipe model: the prior's size and cost are what the search pays."""
    from beatdance.beats.rhythm import RhythmConfig, tempo_bump
    from beatdance.model.prior import fit_metre_prior

    rng = np.random.default_rng(seed)
    config = RhythmConfig()
    bpm = rng.uniform(80, 130, size=16)
    bars = np.where(np.arange(16) % 2 == 0, 3, 4)

    def rhythm(tempo: float) -> np.ndarray:
        return np.stack([tempo_bump(tempo_bpm=tempo, config=config)] * 3)

    return fit_metre_prior(
        music_rhythm=np.stack([rhythm(b) for b in bpm]),
        dance_rhythm=np.stack([rhythm(b / (3 if k == 3 else 2)) for b, k in zip(bpm, bars)]),
        beats_per_bar=bars,
        rhythm=config,
    )


def build_e2e_library(out: Path, *, n: int, seed: int, recipe: str = "official") -> Path:
    """A real library of ``n`` synthetic items embedded 'by' a randomly initialised model of ``recipe``'s size
    (``official``: the paper's 2560-d embedding; ``default``: the default recipe's small model)."""
    import torch

    from beatdance.library import write_library
    from beatdance.library.catalog import Item
    from beatdance.model import BeatBlender
    from beatdance.model.checkpoint import save_checkpoint
    from beatdance.model.inference import embedding_dim
    from beatdance.pipeline.prepare import PrepareConfig
    from beatdance.train.recipes import get_recipe

    torch.manual_seed(seed)
    model_config, _ = get_recipe(recipe).configs(model={"music_dim": 93, "dance_dim": 56}, train={})
    net = BeatBlender(model_config)
    if model_config.metre_prior:
        net.prior = synthetic_prior(seed=seed)
    ckpt = save_checkpoint(
        out / "checkpoint", model=net, config={"note": "randomly initialised (search_speed benchmark)"}
    )
    dim = embedding_dim(net)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    music = synthetic_side(n=n, dim=dim, rng=rng, centres=centres)
    dance = synthetic_side(n=n, dim=dim, rng=rng, centres=centres, near=music.fuse)
    items = [
        Item(
            row=i,
            clip_id=f"clip{i:07d}",
            grp=f"clip{i:07d}",
            music_file=None,
            dance_file=None,
            dance_kind=None,
            start_s=0.0,
            music_start_s=0.0,
            duration_s=10.0,
            music_tempo_bpm=None,
            dance_tempo_bpm=None,
        )
        for i in range(n)
    ]
    write_library(
        out=out / "library",
        checkpoint=ckpt,
        items=items,
        music=music,
        dance=dance,
        config=LibraryConfig(),
        store_config=PrepareConfig().store_config(),
    )
    return out / "library"


def ensure_e2e_library(folder: Path, *, n: int, seed: int, recipe: str = "official") -> Path:
    """``folder/library`` from :func:`build_e2e_library`, reused when an earlier run built it with ``n`` items and
    today's default extraction settings, else rebuilt (a library of another beat tracker would time another
    query extraction)."""
    from beatdance.pipeline.prepare import PrepareConfig

    manifest = folder / "library" / "library.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        if meta.get("items") == n and meta.get("store_config") == PrepareConfig().store_config():
            return folder / "library"
    shutil.rmtree(folder, ignore_errors=True)
    return build_e2e_library(folder, n=n, seed=seed, recipe=recipe)


def bench_end_to_end(*, out: Path, n: int, threads: Sequence[int | None], runs: int, seed: int) -> list[dict[str, Any]]:
    """Library.search(music=<10-s wav>) end to end and its extraction + embedding part alone, per thread setting."""
    from beatdance.library import Library

    t0 = time.perf_counter()
    path = build_e2e_library(out, n=n, seed=seed)
    build_s = time.perf_counter() - t0
    wav = write_query_wav(out / "query.wav", duration_s=10.0, seed=seed)
    t0 = time.perf_counter()
    lib = Library.open(path)
    open_ms = 1e3 * (time.perf_counter() - t0)
    dim = lib.model.config.num_segments * lib.model.config.embed_dim
    base = {"size": n, "dim": dim, "index": lib.config.index}
    rows = [{**base, "method": "e2e Library.open", "cold ms": open_ms, "build s": build_s}]
    for t in threads:
        with thread_limit(t) as t_label:
            rows.append(
                {
                    **base,
                    "threads": t_label,
                    "method": "e2e Library.search(wav)",
                    **latency(lambda i: lib.search(music=wav, top=TOP), runs),
                }
            )
            rows.append(
                {
                    **base,
                    "threads": t_label,
                    "method": "e2e  of which extract+embed",
                    **latency(lambda i: lib.extract_query(modality="music", path=wav), runs),
                }
            )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000", help="comma-separated library sizes")
    ap.add_argument("--queries", type=int, default=50, help="timed single queries per row (after one cold call)")
    ap.add_argument(
        "--dim", type=int, default=2560, help="embedding dim (the model's: 2560), halved where memory is short"
    )
    ap.add_argument("--index", default="flat", help="comma-separated index kinds: flat, ivf, hnsw")
    ap.add_argument(
        "--threads",
        default="default,1",
        help="comma-separated thread settings to time: 'default' (the libraries' own) or a count",
    )
    ap.add_argument("--bank", type=int, default=1000, help="querybank size for DIS")
    ap.add_argument("--mem-fraction", type=float, default=0.5, help="share of MemAvailable one size may use")
    ap.add_argument(
        "--pq-sizes",
        default="",
        help="opt-in sizes (e.g. 1000000) run at the full --dim: gallery memory-mapped, ivfpq index, chunked numpy",
    )
    ap.add_argument("--pq-baseline-queries", type=int, default=5, help="timed chunked numpy queries per --pq-sizes row")
    ap.add_argument("--scratch", default=None, help="folder of the --pq-sizes gallery files (default: the temp folder)")
    ap.add_argument("--e2e-items", type=int, default=10_000, help="items of the end-to-end library (0: skip it)")
    ap.add_argument("--e2e-runs", type=int, default=10, help="timed Library.search calls after the cold one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows and the machine to this JSON file")
    ap.add_argument(
        "--out", default=None, help="keep the end-to-end library and query here (default: a temporary folder)"
    )
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.pq_sizes = [int(s) for s in args.pq_sizes.split(",") if s]
    args.index = [k for k in args.index.split(",") if k]
    try:
        args.threads = [None if t == "default" else int(t) for t in args.threads.split(",") if t]
    except ValueError:
        ap.error(f"--threads {args.threads!r}: expected 'default' and/or positive counts, e.g. default,1")
    bad = [k for k in args.index if k not in ("flat", "ivf", "hnsw")]
    if (
        bad
        or not (args.sizes or args.pq_sizes)
        or min(args.sizes + args.pq_sizes) < TOP
        or args.queries < 1
        or args.pq_baseline_queries < 1
        or not args.threads
        or any(t is not None and t < 1 for t in args.threads)
    ):
        ap.error(
            f"--index {bad} not in flat,ivf,hnsw, --sizes {args.sizes} or --pq-sizes {args.pq_sizes} none or below "
            f"{TOP}, --queries, --pq-baseline-queries or --threads < 1"
        )
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, return (and optionally save) rows and machine info."""
    args = parse_args(argv)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for n in args.sizes:
        budget = int(args.mem_fraction * mem_available_bytes())
        dim = choose_dim(n=n, dim=args.dim, budget_bytes=budget)
        if dim is None:
            notes.append(f"size {n} skipped: needs more than {budget / 1e9:.1f} GB even at 32-d")
            continue
        if dim != args.dim:
            notes.append(
                f"size {n} ran at dim {dim} instead of {args.dim}: est. peak {peak_bytes(n=n, dim=args.dim) / 1e9:.1f} GB "
                f"> budget {budget / 1e9:.1f} GB ({args.mem_fraction:g} x MemAvailable)"
            )
        rows += bench_size(
            n=n,
            dim=dim,
            kinds=args.index,
            threads=args.threads,
            queries=args.queries,
            bank_size=args.bank,
            seed=args.seed,
        )
        print(f"[size {n} done, {time.perf_counter() - t_start:.0f} s]", file=sys.stderr, flush=True)
    rows += pq_rows(args, notes=notes, started=t_start)
    if args.e2e_items:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out) if args.out else Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            rows += bench_end_to_end(
                out=out, n=args.e2e_items, threads=args.threads, runs=args.e2e_runs, seed=args.seed
            )
    print(markdown_table(rows))
    for note in notes:
        print(f"- {note}")
    return finish({"rows": rows, "notes": notes}, started=t_start, json_path=args.json)


def pq_rows(args: argparse.Namespace, *, notes: list[str], started: float) -> list[dict[str, Any]]:
    """The ``--pq-sizes`` rows (benchmarks/search_speed_pq.py); sizes that do not fit add a note instead."""
    if not args.pq_sizes:
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from search_speed_pq import bench_pq_size, pq_skip_reason

    scratch = Path(args.scratch or tempfile.gettempdir())
    rows: list[dict[str, Any]] = []
    for n in args.pq_sizes:
        budget = int(args.mem_fraction * mem_available_bytes())
        skip = pq_skip_reason(n=n, dim=args.dim, budget_bytes=budget, scratch=scratch)
        if skip:
            notes.append(skip)
            continue
        rows += bench_pq_size(
            n=n,
            dim=args.dim,
            threads=args.threads,
            queries=args.queries,
            baseline_queries=args.pq_baseline_queries,
            bank_size=args.bank,
            seed=args.seed,
            scratch=scratch,
        )
        print(f"[pq size {n} done, {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
    return rows


def finish(result: dict[str, Any], *, started: float, json_path: str | None) -> dict[str, Any]:
    """``result`` with the total time and the machine, whose line is printed; also written to ``json_path``."""
    result = {
        **result,
        "total_s": time.perf_counter() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "mem_available_gb": mem_available_bytes() / 1e9,
        },
    }
    m = result["machine"]
    print(f"- total {result['total_s']:.0f} s on {m['cpus']} CPUs, load average {m['load_avg'][0]:.1f}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
