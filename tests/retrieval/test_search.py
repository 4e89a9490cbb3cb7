"""Index-backed search: with every item as a candidate it equals full-matrix scoring + QB-Norm."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.errors import ParameterError
from beatdance.retrieval.hubness import apply_hubness
from beatdance.retrieval.index import VectorIndex
from beatdance.retrieval.index_config import IndexConfig
from beatdance.retrieval.scoring import ModalityEmbeddings, Scorer
from beatdance.retrieval.search import GallerySearch, SearchSettings, fit_gallery_querybank


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _emb(rng: np.random.Generator, n: int, *, dim: int = 16) -> ModalityEmbeddings:
    return ModalityEmbeddings(
        fuse=_unit(rng.normal(size=(n, dim))),
        beat_head=_unit(rng.normal(size=(n, dim))),
        beat_grid=(rng.random((n, 100)) < 0.1).astype(np.float32),
        ids=[f"c{i}" for i in range(n)],
    )


def _searcher(
    gallery: ModalityEmbeddings, bank: ModalityEmbeddings, settings: SearchSettings, direction: str
) -> GallerySearch:
    index = VectorIndex(IndexConfig(dim=gallery.fuse.shape[1]))
    index.add(gallery.fuse)
    qb = fit_gallery_querybank(bank=bank, gallery=gallery, direction=direction, settings=settings)  # type: ignore[arg-type]
    return GallerySearch(
        index=index,
        beat_head=gallery.beat_head,
        beat_grid=gallery.beat_grid,
        direction=direction,  # type: ignore[arg-type]
        querybank=qb,
    )


@pytest.mark.parametrize("direction", ["m2d", "d2m"])
@pytest.mark.parametrize("hubness", ["none", "is", "dis"])
def test_all_candidates_equals_full_scoring(direction, hubness):
    rng = np.random.default_rng(3)
    gallery, bank, queries = _emb(rng, 40), _emb(rng, 25), _emb(rng, 7)
    settings = SearchSettings(hubness=hubness, beat_weight_head=0.7, beat_weight_align=0.5, candidates=40)
    hits = _searcher(gallery, bank, settings, direction).search(queries, top=10, settings=settings)
    scorer = Scorer(gallery, direction=direction, beat_weight_head=0.7, beat_weight_align=0.5)
    full = scorer.scores(queries, slice(0, 7)).astype(np.float64)
    if hubness != "none":
        stats = fit_gallery_querybank(bank=bank, gallery=gallery, direction=direction, settings=settings)  # type: ignore[arg-type]
        full = apply_hubness(full, stats=stats, method=hubness)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(hits.rows, expected)
    np.testing.assert_allclose(hits.score, np.take_along_axis(full, expected, axis=1), rtol=1e-4, atol=1e-6)
    assert (np.diff(hits.score, axis=1) <= 1e-12).all()


def test_shortlist_and_settings_checks():
    rng = np.random.default_rng(4)
    gallery, bank, queries = _emb(rng, 50), _emb(rng, 10), _emb(rng, 3)
    settings = SearchSettings(hubness="dis", beat_weight_align=0.3, candidates=5)
    searcher = _searcher(gallery, bank, settings, "m2d")
    hits = searcher.search(queries, top=3, settings=settings)
    shortlist = np.argsort(-(queries.fuse @ gallery.fuse.T), axis=1)[:, :5]
    assert all(set(hits.rows[i]) <= set(shortlist[i]) for i in range(3))
    with pytest.raises(ParameterError, match="querybank was fitted"):
        searcher.search(queries, top=3, settings=SearchSettings(hubness="dis", beat_weight_align=0.9))
    plain = searcher.search(
        queries, top=60, settings=SearchSettings(hubness="none", beat_weight_align=0.9, candidates=5)
    )
    assert plain.rows.shape == (3, 50) and not plain.normalised.any()
    with pytest.raises(ParameterError, match="candidates"):
        SearchSettings(candidates=0)
