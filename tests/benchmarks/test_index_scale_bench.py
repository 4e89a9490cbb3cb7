"""Smoke test of benchmarks/index_scale.py on tiny sizes: rows, recall against exact search, the querybank part."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


def _load():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return load_benchmark("index_scale")


def test_rows_recall_and_querybank(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "r.json"
    result = bench.main(
        [
            "--sizes",
            "300",
            "--dims",
            "16",
            "--kinds",
            "flat,ivf,hnsw,auto",
            "--queries",
            "5",
            "--shards",
            "3",
            "--shard-kinds",
            "flat",
            "--qb-items",
            "400",
            "--qb-sizes",
            "50",
            "--qb-queries",
            "40",
            "--json",
            str(out),
        ]
    )
    rows = result["rows"]
    assert [r["kind"] for r in rows] == ["flat", "ivf", "hnsw", "auto -> flat", "flat (local; top 10 = 1 shard: 1.00)"]
    flat = rows[0]
    assert flat["recall@10"] == flat["top1 = flat"] == 1.0 and flat["index B/item"] == flat["disk B/item"] > 16 * 4
    assert rows[-1]["shards"] == 3 and rows[-1]["recall@10"] == 1.0
    assert all(0 < r["query p50 ms"] and r["build s"] >= 0 for r in rows)
    # the recall column is the overlap with a float64 brute force on the benchmark's own data
    rng = np.random.default_rng([0, 300, 16])
    centres = rng.standard_normal((bench.CLUSTERS, 16), dtype=np.float32) / 4
    gallery = bench.synthetic_side(n=300, dim=16, rng=rng, centres=centres).fuse
    queries = bench.synthetic_side(n=5, dim=16, rng=rng, centres=centres, near=gallery).fuse
    _, ivf_top = bench.index_row("ivf", gallery=gallery, queries=queries, truth=bench.exact_top(queries, gallery))
    assert rows[1]["recall@10"] == bench.overlap(ivf_top, bench.exact_top(queries, gallery))
    qb = result["querybank"]
    assert [r["bank"] for r in qb] == ["none (plain cosine)", "360 of 360", "50 of 360"]
    assert qb[1]["top-10 overlap with whole bank"] == 1.0 and 0 <= qb[2]["top-10 overlap with whole bank"] <= 1
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows))
    printed = capsys.readouterr().out
    assert printed.startswith("| size | dim | kind | factory | shards |") and "Querybank sampling" in printed
