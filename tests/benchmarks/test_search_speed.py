"""Smoke tests of benchmarks/search_speed.py on tiny sizes: table and JSON shape, memory planning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark

from beatdance.retrieval.search import GallerySearch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("search_speed")


def _exact_top(query: np.ndarray, gallery: np.ndarray, k: int = 10) -> np.ndarray:
    """The ``k`` gallery rows of highest dot product with ``query``, by a full float64 sort."""
    return np.argsort(-(gallery.astype(np.float64) @ query.astype(np.float64)), kind="stable")[:k]


def test_search_rows_and_json(bench, tmp_path, capsys, monkeypatch):
    calls = {"none": 0, "dis": 0}
    real_search = GallerySearch.search

    def search(self, queries, *, top, settings, **kwargs):  # counts the searches each timed row runs
        calls[settings.hubness] += 1
        return real_search(self, queries, top=top, settings=settings, **kwargs)

    monkeypatch.setattr(GallerySearch, "search", search)
    out = tmp_path / "r.json"
    result = bench.main(
        [
            "--sizes",
            "200,400",
            "--queries",
            "3",
            "--dim",
            "64",
            "--index",
            "flat,ivf,hnsw",
            "--bank",
            "20",
            "--e2e-items",
            "0",
            "--json",
            str(out),
        ]
    )
    rows = result["rows"]
    # per size and thread setting (default, 1): the numpy baseline + (none, dis) per index kind
    assert len(rows) == 2 * 2 * (1 + 3 * 2)
    assert {r["threads"] for r in rows} == {rows[0]["threads"], "1"} and rows[0]["threads"].startswith("default")
    assert {r["size"] for r in rows} == {200, 400} and {r["dim"] for r in rows} == {64}
    assert [r["method"] for r in rows[:4]] == ["numpy brute force", "numpy brute force", "search none", "search dis"]
    # each search row timed one cold and 3 single-query searches of its own hubness setting
    assert calls == {"none": 2 * 3 * 2 * 4, "dis": 2 * 3 * 2 * 4}
    for r in rows:
        assert 0 < r["p50 ms"] <= r["p95 ms"] and r["cold ms"] > 0
    assert {r["index"] for r in rows} == {
        "-",
        "flat",
        "ivf5/5",
        "ivf10/10",
        "hnsw32/128",
    }  # nlist = size // 39, all probed
    # recall@10: the overlap of each index's top 10 with the exact top 10, on the benchmark's own data
    for n in (200, 400):
        rng = np.random.default_rng([0, n])
        centres = rng.standard_normal((bench.CLUSTERS, 64), dtype=np.float32) / np.sqrt(64)
        gallery = bench.synthetic_side(n=n, dim=64, rng=rng, centres=centres)
        queries = bench.synthetic_side(n=3, dim=64, rng=rng, centres=centres, near=gallery.fuse)
        exact = [_exact_top(q, gallery.fuse) for q in queries.fuse]
        for kind in ("flat", "ivf", "hnsw"):
            _, found = bench.build_index(kind, gallery.fuse).search(queries.fuse, k=10)
            want = np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact)])
            got = [r["recall@10"] for r in rows if r["size"] == n and r["index"].startswith(kind)]
            assert len(got) == 4 and got == pytest.approx([want] * 4), (n, kind)
            if kind == "flat":
                assert want == 1.0
    assert all((r["fit s"] is not None) == (r["method"] == "search dis") for r in rows if r["index"] != "-")
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["machine"]["cpus"] >= 1
    table = capsys.readouterr().out
    assert table.startswith("| size | dim | index | threads | method | p50 ms | p95 ms |")
    assert table.count("| search dis |") == 12


def test_recall_is_the_overlap_with_the_exact_top10(bench):
    """index_runs scores an index against the top-10 lists it is given: against another query's list the recall
    is the overlap counted here, not 1."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((8, 16), dtype=np.float32) / 4
    gallery = bench.synthetic_side(n=100, dim=16, rng=rng, centres=centres)
    queries = bench.synthetic_side(n=4, dim=16, rng=rng, centres=centres, near=gallery.fuse)
    exact = [_exact_top(q, gallery.fuse) for q in queries.fuse]
    shifted = exact[1:] + exact[:1]
    bank = bench.fit_gallery_querybank(
        bank=queries, gallery=gallery, direction="m2d", settings=bench.LibraryConfig().search
    )
    recall = bench.index_runs("flat", gallery=gallery, queries=queries, exact=shifted, querybank=bank)[0]["recall@10"]
    want = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(exact, shifted)])
    assert want < 1.0 and recall == pytest.approx(want)
    recall = bench.index_runs("flat", gallery=gallery, queries=queries, exact=exact, querybank=bank)[0]["recall@10"]
    assert recall == 1.0


def test_memory_planning_halves_dim(bench):
    n = 1_000_000
    budget = bench.peak_bytes(n=n, dim=320)
    assert bench.choose_dim(n=n, dim=2560, budget_bytes=budget) == 320
    assert bench.choose_dim(n=n, dim=2560, budget_bytes=0) == 2560  # no /proc/meminfo: no check
    assert bench.choose_dim(n=n, dim=2560, budget_bytes=1000) is None
    assert bench.bank_chunk(n) < bench.bank_chunk(1000) == 1024


@pytest.mark.parametrize("argv", [["--index", "lsh"], ["--threads", "0"], ["--threads", "many"], ["--sizes", "5"]])
def test_bad_arguments_exit(bench, argv):
    with pytest.raises(SystemExit):
        bench.main(argv)


@pytest.mark.slow
def test_end_to_end_row(bench, tmp_path):
    result = bench.main(
        [
            "--sizes",
            "100",
            "--queries",
            "2",
            "--dim",
            "32",
            "--bank",
            "10",
            "--e2e-items",
            "64",
            "--e2e-runs",
            "1",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    e2e = [r for r in result["rows"] if r["method"].startswith("e2e")]
    assert [r["method"] for r in e2e] == ["e2e Library.open", "e2e Library.search(wav)", "e2e  of which extract+embed"]
    assert all(r["size"] == 64 and r["dim"] == 2560 and r["cold ms"] > 0 for r in e2e)
    assert all(0 < r["p50 ms"] <= r["p95 ms"] for r in e2e[1:])
    assert (tmp_path / "library" / "library.json").is_file() and (tmp_path / "query.wav").is_file()


def test_pq_rows_keep_the_gallery_on_disk_and_match_the_chunked_baseline(bench, tmp_path):
    """--pq-sizes: the chunked numpy baseline, the ivfpq index alone and the library search over it, at the full
    --dim, with the gallery in a memory-mapped file under --scratch (removed afterwards)."""
    argv = ["--sizes", "", "--pq-sizes", "10000", "--dim", "32", "--queries", "3", "--bank", "20", "--threads", "1"]
    result = bench.main([*argv, "--pq-baseline-queries", "2", "--e2e-items", "0", "--scratch", str(tmp_path)])
    rows = result["rows"]
    assert [r["method"] for r in rows] == ["numpy brute force (chunked)", "index top-10", "search none", "search dis"]
    assert all(r["size"] == 10_000 and r["dim"] == 32 and r["threads"] == "1" for r in rows)
    assert rows[0]["recall@10"] == 1.0 and rows[0]["RAM B/item"] == 4 * 32 and rows[0]["build s"] is None
    assert {r["index"] for r in rows[1:]} == {"ivfpq128/32 PQ64"} and len({r["recall@10"] for r in rows[1:]}) == 1
    assert 0.5 <= rows[1]["recall@10"] <= 1.0 and rows[1]["build s"] > 0
    assert 64 < rows[1]["RAM B/item"] < 4 * 32  # 64-byte codes and 8-byte ids, not the float32 vectors
    assert rows[3]["fit s"] > 0 and rows[1]["fit s"] is None and result["notes"] == []
    assert list(tmp_path.iterdir()) == []
    skipped = bench.main([*argv, "--e2e-items", "0", "--scratch", str(tmp_path), "--mem-fraction", "1e-6"])
    assert skipped["rows"] == [] and skipped["notes"][0].startswith("pq size 10000 skipped: est.")


def test_chunked_top_is_exact_search(bench):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from search_speed_pq import chunked_top

    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((1000, 16)).astype(np.float32)
    queries = rng.standard_normal((5, 16)).astype(np.float32)
    want = np.stack([_exact_top(q, gallery) for q in queries])
    np.testing.assert_array_equal(chunked_top(queries, gallery, k=10, chunk_rows=64), want)
    np.testing.assert_array_equal(chunked_top(queries[0], gallery, k=10, chunk_rows=7)[0], want[0])
