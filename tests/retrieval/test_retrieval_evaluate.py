"""evaluate_retrieval: chunking invariance, perfect embeddings, groups, hubness wiring, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beatdance.errors import ParameterError
from beatdance.retrieval.evaluate import ModalityEmbeddings, evaluate_retrieval, format_table
from beatdance.retrieval.hubness import dynamic_inverted_softmax
from beatdance.retrieval.metrics import positive_ranks, recall_metrics


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _pair(rng: np.random.Generator, n: int, *, noise: float, groups: list[str] | None = None, dim: int = 24):
    base = rng.normal(size=(n, dim))
    grids = (rng.random((n, 100)) < 0.1).astype(np.float32)
    ids = [f"c{i}" for i in range(n)]

    def make(x: np.ndarray, g: np.ndarray) -> ModalityEmbeddings:
        return ModalityEmbeddings(
            fuse=_unit(x), beat_head=_unit(rng.normal(size=(n, dim))), beat_grid=g, ids=ids, groups=groups
        )

    return (
        make(base + noise * rng.normal(size=base.shape), grids),
        make(base + noise * rng.normal(size=base.shape), (rng.random((n, 100)) < 0.1).astype(np.float32)),
    )


def test_chunked_equals_unchunked_with_all_options():
    rng = np.random.default_rng(0)
    music, dance = _pair(rng, 40, noise=1.5)
    bank_m, bank_d = _pair(rng, 23, noise=1.5)
    kw = dict(bank_music=bank_m, bank_dance=bank_d, hubness="dis", beat_weight_head=0.3, beat_weight_align=0.5)
    full = evaluate_retrieval(music=music, dance=dance, chunk_size=1024, **kw)
    chunked = evaluate_retrieval(music=music, dance=dance, chunk_size=7, **kw)
    for direction in ("m2d", "d2m"):
        for part in ("metrics", "pair_metrics", "beat_similarity", "querybank"):
            assert chunked[direction][part] == pytest.approx(full[direction][part], abs=1e-6), (direction, part)
    json.dumps(full)  # plain JSON data


def test_matches_direct_computation():
    rng = np.random.default_rng(1)
    music, dance = _pair(rng, 30, noise=1.0)
    bank_m, bank_d = _pair(rng, 50, noise=1.0)
    report = evaluate_retrieval(
        music=music, dance=dance, bank_music=bank_m, bank_dance=bank_d, hubness="dis", chunk_size=8
    )
    sims = music.fuse @ dance.fuse.T
    m2d = dynamic_inverted_softmax(scores=sims, bank_scores=bank_m.fuse @ dance.fuse.T, k=1, beta=20.0)
    d2m = dynamic_inverted_softmax(scores=sims.T, bank_scores=bank_d.fuse @ music.fuse.T, k=1, beta=20.0)
    for name, s in (("m2d", m2d), ("d2m", d2m)):
        expected = recall_metrics(positive_ranks(s, positives=np.arange(30)))
        assert report[name]["metrics"] == pytest.approx(expected)
    assert report["m2d"]["querybank"]["size"] == 50


def test_perfect_embeddings_and_groups():
    rng = np.random.default_rng(2)
    music, _ = _pair(rng, 20, noise=0.0)
    dance = ModalityEmbeddings(fuse=music.fuse.copy(), beat_head=None, beat_grid=music.beat_grid, ids=music.ids)
    report = evaluate_retrieval(music=music, dance=dance)
    for direction in ("m2d", "d2m"):
        assert report[direction]["metrics"]["R@1"] == 100.0
        assert report[direction]["metrics"]["MedR"] == 1.0
        assert report[direction]["beat_similarity"]["BS@1"] == pytest.approx(
            report[direction]["beat_similarity"]["BS@GT"]
        )
    # two clips per song whose embeddings coincide: clip-level R@1 is 0 (pessimistic ties), pair-level is 100
    groups = [f"song{i // 2}" for i in range(20)]
    fuse = np.repeat(music.fuse[::2], 2, axis=0)
    m = ModalityEmbeddings(fuse=fuse, beat_head=None, beat_grid=music.beat_grid, ids=music.ids, groups=groups)
    d = ModalityEmbeddings(fuse=fuse, beat_head=None, beat_grid=music.beat_grid, ids=music.ids, groups=groups)
    report = evaluate_retrieval(music=m, dance=d, bs_ks=())
    assert report["m2d"]["metrics"]["R@1"] == 0.0
    assert report["m2d"]["pair_metrics"]["R@1"] == 100.0
    assert set(report["m2d"]["beat_similarity"]) == {"BS@GT"}


def test_errors():
    rng = np.random.default_rng(3)
    music, dance = _pair(rng, 10, noise=1.0)
    with pytest.raises(ParameterError, match="bank_music"):
        evaluate_retrieval(music=music, dance=dance, hubness="dis")
    short = ModalityEmbeddings(fuse=dance.fuse[:5], beat_head=None, beat_grid=dance.beat_grid[:5], ids=dance.ids[:5])
    with pytest.raises(ParameterError, match="same non-zero"):
        evaluate_retrieval(music=music, dance=short)
    shuffled = ModalityEmbeddings(fuse=dance.fuse, beat_head=None, beat_grid=dance.beat_grid, ids=dance.ids[::-1])
    with pytest.raises(ParameterError, match="same clip order"):
        evaluate_retrieval(music=music, dance=shuffled)
    longer = ModalityEmbeddings(fuse=dance.fuse, beat_head=None, beat_grid=np.zeros((10, 120)), ids=dance.ids)
    with pytest.raises(ParameterError, match="dance grids 120"):
        evaluate_retrieval(music=music, dance=longer)


def test_format_table():
    rng = np.random.default_rng(4)
    music, dance = _pair(rng, 12, noise=1.0)
    report = evaluate_retrieval(music=music, dance=dance)
    table = format_table(report, title="demo")
    lines = table.splitlines()
    assert lines[0] == "demo" and "BS@10" in lines[1] and lines[2].startswith("m2d") and lines[3].startswith("d2m")
    assert f"{report['m2d']['metrics']['R@1']:.2f}" in lines[2]
    several = format_table({"none": report, "dis": report})
    assert [line.split()[:2] for line in several.splitlines()[1:]] == [
        ["none", "m2d"],
        ["none", "d2m"],
        ["dis", "m2d"],
        ["dis", "d2m"],
    ]
    assert len({len(line) for line in several.splitlines()}) == 1


def test_bank_without_query_group_uses_a_bank_per_group():
    """Each query is normalised by the gallery's own clips minus its group: brute force per group."""
    rng = np.random.default_rng(3)
    groups = [f"g{i // 4}" for i in range(24)]
    music, dance = _pair(rng, 24, noise=1.0, groups=groups)
    report = evaluate_retrieval(
        music=music,
        dance=dance,
        bank_music=music,
        bank_dance=dance,
        hubness="dis",
        bank_without_query_group=True,
        bs_ks=(),
    )
    scores = music.fuse @ dance.fuse.T
    code = np.array([int(g[1:]) for g in groups])
    expected = np.empty_like(scores, dtype=np.float64)
    for g in np.unique(code):
        rows = code == g
        expected[rows] = dynamic_inverted_softmax(scores=scores[rows], bank_scores=scores[~rows], k=1, beta=20.0)
    assert report["m2d"]["metrics"] == pytest.approx(recall_metrics(positive_ranks(expected, positives=np.arange(24))))
    assert report["m2d"]["querybank"] == {
        "size": 20,
        "activation_size": report["m2d"]["querybank"]["activation_size"],
        "without_query_group": True,
    }
    whole = evaluate_retrieval(music=music, dance=dance, bank_music=music, bank_dance=dance, hubness="dis", bs_ks=())
    assert whole["m2d"]["querybank"]["size"] == 24
