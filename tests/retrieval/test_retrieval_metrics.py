"""Ranks with each tie rule, R@K/MedR/MeanR/AVG, top-k selection and BS@K."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.beats.alignment import beat_alignment_score
from beatdance.errors import ParameterError
from beatdance.retrieval.metrics import (
    beat_similarity_at_k,
    group_ranks,
    pair_alignment,
    positive_ranks,
    rank_breakdown,
    recall_metrics,
    top_k_indices,
)


def _argsort_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.array([int(np.flatnonzero(order[i] == p)[0]) for i, p in enumerate(positives)])


def test_stable_ranks_match_argsort_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(30, 12)).astype(np.float32)
    positives = rng.integers(0, 12, size=30)
    np.testing.assert_array_equal(
        positive_ranks(scores, positives=positives, ties="stable"), _argsort_ranks(scores, positives)
    )


def test_tie_rules_bound_the_stable_rank():
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.9, 0.2, 0.2, 0.2]])
    positives = np.array([1, 2])
    assert positive_ranks(scores, positives=positives).tolist() == [2, 3]
    assert positive_ranks(scores, positives=positives, ties="optimistic").tolist() == [0, 1]
    assert positive_ranks(scores, positives=positives, ties="stable").tolist() == [1, 2]


def test_constant_scores_cannot_score():
    ranks = positive_ranks(np.zeros((5, 5)), positives=np.arange(5))
    assert recall_metrics(ranks)["R@1"] == 0.0
    assert ranks.tolist() == [4] * 5


def test_random_ranks_match_brute_force():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(40, 25))
    positives = rng.integers(0, 25, size=40)
    ranks = positive_ranks(scores, positives=positives)
    np.testing.assert_array_equal(ranks, _argsort_ranks(scores, positives))
    metrics = recall_metrics(ranks)
    assert metrics["R@5"] == pytest.approx(100 * np.mean(ranks < 5))
    assert metrics["R@100"] == 100.0


def test_nan_and_bad_positives_raise():
    with pytest.raises(ParameterError, match="NaN"):
        positive_ranks(np.array([[np.nan, 1.0]]), positives=np.array([0]))
    with pytest.raises(ParameterError, match="column indices"):
        positive_ranks(np.zeros((1, 2)), positives=np.array([2]))
    with pytest.raises(ParameterError, match="ties"):
        positive_ranks(np.zeros((1, 2)), positives=np.array([0]), ties="random")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="no positive"):
        group_ranks(np.zeros((1, 2)), positive_mask=np.zeros((1, 2), bool))


def test_recall_metrics_hand_worked():
    m = recall_metrics(np.array([0, 1, 3, 9]))
    assert m["MedR"] == 3.0
    assert m["MeanR"] == 4.25
    assert m["R@1"] == 25.0 and m["R@5"] == 75.0 and m["R@10"] == 100.0
    assert m["AVG"] == pytest.approx(25 + 75 + 100 + 100 + 100 - 0.3 - 0.425)
    with pytest.raises(ParameterError):
        recall_metrics(np.array([]))


def test_group_ranks_ignore_other_positives():
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    mask = np.array([[False, True, True, False]])
    assert group_ranks(scores, positive_mask=mask).tolist() == [1]
    assert positive_ranks(scores, positives=np.array([2])).tolist() == [2]


def test_top_k_indices_order_and_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.5], [1.0, 0.0, 0.0, 0.0, 0.0]])
    assert top_k_indices(scores, k=3).tolist() == [[3, 1, 2], [0, 1, 2]]
    assert top_k_indices(scores, k=10).shape == (2, 5)
    rng = np.random.default_rng(3)
    s = rng.normal(size=(6, 40))
    np.testing.assert_array_equal(top_k_indices(s, k=7), np.argsort(-s, axis=1, kind="stable")[:, :7])
    tied = rng.integers(0, 5, size=(20, 30)).astype(np.float32)
    for k in (1, 6):
        np.testing.assert_array_equal(top_k_indices(tied, k=k), np.argsort(-tied, axis=1, kind="stable")[:, :k])


def test_bs_at_k_definition():
    rng = np.random.default_rng(4)
    music = (rng.random((5, 100)) < 0.1).astype(np.float32)
    dance = (rng.random((5, 100)) < 0.1).astype(np.float32)
    items = np.array([[1, 2, 0], [0, 4, 3], [2, 2, 2], [3, 1, 0], [4, 0, 1]])
    m2d = pair_alignment(query_grids=music, gallery_grids=dance, items=items, direction="m2d")
    d2m = pair_alignment(query_grids=dance, gallery_grids=music, items=items, direction="d2m")
    for q in range(5):
        for r in range(3):
            j = items[q, r]
            assert m2d[q, r] == pytest.approx(
                beat_alignment_score(music_beats=np.flatnonzero(music[q]), dance_beats=np.flatnonzero(dance[j])),
                abs=1e-6,
            )
            assert d2m[q, r] == pytest.approx(
                beat_alignment_score(music_beats=np.flatnonzero(music[j]), dance_beats=np.flatnonzero(dance[q])),
                abs=1e-6,
            )
    bs = beat_similarity_at_k(m2d, ks=(1, 3, 50))
    assert bs["BS@1"] == pytest.approx(100 * m2d[:, 0].mean())
    assert bs["BS@3"] == pytest.approx(100 * m2d.mean())
    assert bs["BS@50"] == bs["BS@3"]  # clipped to the 3 retrieved items
    zeros = np.array([[1.0, 0.0]])
    assert beat_similarity_at_k(zeros, ks=(2,))["BS@2"] == 50.0  # zeros are never skipped


def test_group_ranks_match_brute_force_with_ties():
    rng = np.random.default_rng(6)
    scores = rng.integers(0, 4, size=(25, 10)).astype(np.float64)
    mask = rng.random((25, 10)) < 0.3
    mask[np.arange(25), rng.integers(0, 10, size=25)] = True
    for ties in ("pessimistic", "optimistic", "stable"):
        got = group_ranks(scores, positive_mask=mask, ties=ties)
        for i in range(25):
            best = scores[i][mask[i]].max()
            neg = scores[i][~mask[i]]
            if ties == "pessimistic":
                expected = int((neg >= best).sum())
            elif ties == "optimistic":
                expected = int((neg > best).sum())
            else:
                order = np.argsort(-scores[i], kind="stable")
                expected = int(np.argmax(mask[i][order]))
            assert got[i] == expected, (ties, i)


def test_rank_breakdown_splits_the_items_above_the_partner_by_kind():
    # Five clips: pair a (2 windows, style W), pair b (2 windows, W), pair c (1 window, R).
    groups, styles = ["a", "a", "b", "b", "c"], ["W", "W", "W", "W", "R"]
    scores = np.array(
        [
            [0.5, 0.6, 0.7, 0.1, 0.9],  # above the partner (0.5): own 0.6, same style 0.7, other style 0.9
            [0.0, 0.5, 0.1, 0.2, 0.3],  # nothing above
            [0.9, 0.9, 0.5, 0.5, 0.1],  # a tie with its own window counts (pessimistic), both a windows
            [0.0, 0.0, 0.0, 0.9, 0.0],
            [0.8, 0.0, 0.0, 0.0, 0.8],  # a tie with a W clip: other style
        ]
    )
    out = rank_breakdown(
        scores,
        positives=np.arange(5),
        query_groups=groups,
        gallery_groups=groups,
        query_classes=styles,
        gallery_classes=styles,
    )
    assert out["own"] == pytest.approx((1 + 0 + 1 + 0 + 0) / 5)
    assert out["same_class"] == pytest.approx((1 + 0 + 2 + 0 + 0) / 5)
    assert out["other_class"] == pytest.approx((1 + 0 + 0 + 0 + 1) / 5)
    # Random scores put half of each kind above: own 1 (pairs a, b) or 0 (c); same style 2 (a, b) or 0 (c).
    assert out["chance_own"] == pytest.approx(4 / 5 / 2)
    assert out["chance_same_class"] == pytest.approx(8 / 5 / 2)
    assert out["chance_other_class"] == pytest.approx((1 + 1 + 1 + 1 + 4) / 5 / 2)
    # The counts add up to the pessimistic rank.
    ranks = positive_ranks(scores, positives=np.arange(5))
    assert sum(out[k] for k in ("own", "same_class", "other_class")) == pytest.approx(ranks.mean())
    with pytest.raises(ParameterError, match="one positive, group and class per query"):
        rank_breakdown(
            scores,
            positives=np.arange(5),
            query_groups=groups[:4],
            gallery_groups=groups,
            query_classes=styles,
            gallery_classes=styles,
        )
