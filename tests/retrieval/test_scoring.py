"""The beat-enhanced score: each term, both orientations, and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.beats.alignment import alignment_matrix
from beatdance.errors import ParameterError
from beatdance.retrieval.scoring import ModalityEmbeddings, Scorer


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _emb(rng: np.random.Generator, n: int, *, dim: int = 16, frames: int = 100) -> ModalityEmbeddings:
    return ModalityEmbeddings(
        fuse=_unit(rng.normal(size=(n, dim))),
        beat_head=_unit(rng.normal(size=(n, dim))),
        beat_grid=(rng.random((n, frames)) < 0.1).astype(np.float32),
        ids=[f"c{i}" for i in range(n)],
    )


def test_combined_score_both_directions():
    rng = np.random.default_rng(0)
    music, dance = _emb(rng, 6), _emb(rng, 9)
    ba = alignment_matrix(music_grids=music.beat_grid, dance_grids=dance.beat_grid)
    m2d = Scorer(dance, direction="m2d", beat_weight_head=0.5, beat_weight_align=2.0).scores(music, slice(1, 4))
    expected = (music.fuse @ dance.fuse.T + 0.5 * music.beat_head @ dance.beat_head.T + 2.0 * ba)[1:4]
    np.testing.assert_allclose(m2d, expected, atol=1e-5)
    d2m = Scorer(music, direction="d2m", beat_weight_head=0.5, beat_weight_align=2.0).scores(dance, slice(0, 9))
    np.testing.assert_allclose(
        d2m, (music.fuse @ dance.fuse.T + 0.5 * music.beat_head @ dance.beat_head.T + 2.0 * ba).T, atol=1e-5
    )
    plain = Scorer(dance, direction="m2d").scores(music, slice(0, 6))
    np.testing.assert_allclose(plain, music.fuse @ dance.fuse.T, atol=1e-6)


def test_validation():
    rng = np.random.default_rng(1)
    good = _emb(rng, 3)
    with pytest.raises(ParameterError, match="L2 norm"):
        ModalityEmbeddings(fuse=good.fuse * 2, beat_head=None, beat_grid=good.beat_grid, ids=good.ids)
    with pytest.raises(ParameterError, match="beat_grid"):
        ModalityEmbeddings(fuse=good.fuse, beat_head=None, beat_grid=good.beat_grid[:2], ids=good.ids)
    with pytest.raises(ParameterError, match="groups"):
        ModalityEmbeddings(fuse=good.fuse, beat_head=None, beat_grid=good.beat_grid, ids=good.ids, groups=["a"])
    no_head = ModalityEmbeddings(fuse=good.fuse, beat_head=None, beat_grid=good.beat_grid, ids=good.ids)
    with pytest.raises(ParameterError, match="beat_weight_head"):
        Scorer(no_head, direction="m2d", beat_weight_head=1.0)
    with pytest.raises(ParameterError, match="direction"):
        Scorer(good, direction="x2y")  # type: ignore[arg-type]
    other = _emb(rng, 3, dim=8)
    with pytest.raises(ParameterError, match="same model"):
        Scorer(good, direction="m2d").scores(other, slice(0, 3))
