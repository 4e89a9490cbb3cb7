"""Beat alignment: the SPEC worked example, the grid kernel, the matrix form and the offset search."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.beats.alignment import alignment_kernel, alignment_matrix, beat_alignment_score, best_offset
from beatdance.errors import ParameterError


def _brute_ba(music: np.ndarray, dance: np.ndarray, sigma: float) -> float:
    if len(music) == 0 or len(dance) == 0:
        return 0.0
    return float(np.mean([np.exp(-np.min((dance - b) ** 2) / (2 * sigma**2)) for b in music]))


def test_worked_example_from_spec():
    score = beat_alignment_score(music_beats=np.array([12, 31, 70]), dance_beats=np.array([10, 30, 52]))
    assert score == pytest.approx(0.5822, abs=1e-4)


def test_direction_matters_and_empty_sets_score_zero():
    m, d = np.array([12, 31, 32, 70]), np.array([10, 30, 52])
    assert beat_alignment_score(music_beats=d, dance_beats=m) != pytest.approx(
        beat_alignment_score(music_beats=m, dance_beats=d)
    )
    assert beat_alignment_score(music_beats=np.array([]), dance_beats=d) == 0.0
    assert beat_alignment_score(music_beats=m, dance_beats=np.array([])) == 0.0
    assert beat_alignment_score(music_beats=m, dance_beats=m) == pytest.approx(1.0)


def test_bad_sigma_and_shapes_raise():
    with pytest.raises(ParameterError, match="sigma_frames"):
        beat_alignment_score(music_beats=np.array([1]), dance_beats=np.array([1]), sigma_frames=0)
    with pytest.raises(ParameterError, match="1-D"):
        beat_alignment_score(music_beats=np.zeros((2, 2)), dance_beats=np.array([1]))
    with pytest.raises(ParameterError, match="same F"):
        alignment_matrix(music_grids=np.zeros((2, 10)), dance_grids=np.zeros((2, 12)))


def test_kernel_values():
    grid = np.zeros((2, 8))
    grid[0, [2, 6]] = 1
    k = alignment_kernel(grid, sigma_frames=1.0)
    dist = np.array([2, 1, 0, 1, 2, 1, 0, 1])
    np.testing.assert_allclose(k[0], np.exp(-(dist**2) / 2.0), rtol=1e-6)
    assert k.dtype == np.float32
    assert np.all(k[1] == 0)


def test_matrix_equals_brute_force():
    rng = np.random.default_rng(0)
    music = (rng.random((7, 100)) < 0.08).astype(np.float32)
    dance = (rng.random((9, 100)) < 0.08).astype(np.float32)
    music[3] = 0
    dance[4] = 0
    mat = alignment_matrix(music_grids=music, dance_grids=dance, sigma_frames=3.0)
    assert mat.shape == (7, 9)
    for i in range(7):
        for j in range(9):
            expected = _brute_ba(np.flatnonzero(music[i]), np.flatnonzero(dance[j]), 3.0)
            assert mat[i, j] == pytest.approx(expected, abs=1e-6)
            assert beat_alignment_score(
                music_beats=np.flatnonzero(music[i]), dance_beats=np.flatnonzero(dance[j])
            ) == pytest.approx(expected, abs=1e-12)


def test_best_offset_recovers_shift():
    dance = np.arange(0.5, 10, 0.5) + 0.13
    music = np.arange(0.5, 10, 0.5)
    offset, score = best_offset(music_beats_s=music, dance_beats_s=dance, max_offset_s=0.3, step_s=0.01, sigma_s=0.05)
    assert offset == pytest.approx(0.13, abs=1e-9)
    assert score == pytest.approx(1.0, abs=1e-9)
    offset0, score0 = best_offset(music_beats_s=music, dance_beats_s=music, max_offset_s=0.3, step_s=0.01, sigma_s=0.05)
    assert offset0 == 0.0 and score0 == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="step_s"):
        best_offset(music_beats_s=music, dance_beats_s=dance, max_offset_s=1, step_s=0, sigma_s=0.05)
