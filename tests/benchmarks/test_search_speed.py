"""Smoke tests of benchmarks/search_speed.py on tiny sizes: table and JSON shape, memory planning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_speed", ROOT / "benchmarks" / "search_speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_search_rows_and_json(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    result = bench.main(["--sizes", "200,400", "--queries", "3", "--dim", "64", "--index", "flat,ivf,hnsw",
                         "--bank", "20", "--e2e-items", "0", "--json", str(out)])
    rows = result["rows"]
    # per size and thread setting (default, 1): the numpy baseline + (none, dis) per index kind
    assert len(rows) == 2 * 2 * (1 + 3 * 2)
    assert {r["threads"] for r in rows} == {rows[0]["threads"], "1"} and rows[0]["threads"].startswith("default")
    assert {r["size"] for r in rows} == {200, 400} and {r["dim"] for r in rows} == {64}
    assert [r["method"] for r in rows[:4]] == ["numpy brute force", "numpy brute force", "search none", "search dis"]
    for r in rows:
        assert 0 < r["p50 ms"] <= r["p95 ms"]
        assert 0.0 <= r["recall@10"] <= 1.0
    flat = [r for r in rows if r["index"] == "flat"]
    assert all(r["recall@10"] == pytest.approx(1.0) for r in flat)
    assert all((r["fit s"] is not None) == (r["method"] == "search dis") for r in rows if r["index"] != "-")
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["machine"]["cpus"] >= 1
    table = capsys.readouterr().out
    assert table.startswith("| size | dim | index | threads | method | p50 ms | p95 ms |")
    assert table.count("| search dis |") == 12


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
    result = bench.main(["--sizes", "100", "--queries", "2", "--dim", "32", "--bank", "10", "--e2e-items", "64",
                         "--e2e-runs", "1", "--threads", "1", "--out", str(tmp_path)])
    e2e = [r for r in result["rows"] if r["method"].startswith("e2e")]
    assert [r["method"] for r in e2e] == ["e2e Library.open", "e2e Library.search(wav)", "e2e  of which extract+embed"]
    assert all(r["size"] == 64 and r["dim"] == 2560 and r["cold ms"] > 0 for r in e2e)
    assert all(0 < r["p50 ms"] <= r["p95 ms"] for r in e2e[1:])
    assert (tmp_path / "library" / "library.json").is_file() and (tmp_path / "query.wav").is_file()
