"""Retrieval metrics: ranks, R@K, MedR, MeanR, AVG (SPEC §5) and the beat similarity BS@K.

Ranks are 0-based positions of the positive among the ranked gallery. Ties default to "pessimistic":
every other item scoring the same as the positive ranks above it, so a degenerate model that outputs a
constant score cannot look good.

BS@K (our definition, SPEC §8 item 15): for each query and each of its top-K retrieved items, the beat
alignment BA(music beats -> dance beats) of the (music, dance) pair formed by the query and the item:
m2d pairs the query music with the retrieved dance, d2m pairs the retrieved music with the query
dance. The music is always the reference, as in Bailando and the official d2m code. Beats are 0/1
grids at 10 fps and sigma is 3 frames (0.3 s). BS@K = 100 * mean over queries of the mean over all K
items, zeros included. K is clipped to the gallery size. BS@GT is the same for the paired ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..beats.alignment import beat_side
from ..errors import ParameterError

Ties = Literal["pessimistic", "optimistic", "stable"]
Direction = Literal["m2d", "d2m"]
RECALL_KS = (1, 5, 10, 50, 100)
BS_KS = (1, 3, 5, 10, 20, 50)


def _check_scores(scores: np.ndarray) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ParameterError(f"scores has shape {arr.shape}; expected a (queries, gallery) matrix.")
    if np.isnan(arr).any():
        raise ParameterError("scores contain NaN; ranks are undefined. Check the embeddings for NaN values.")
    return arr


def _ranks_of(
    arr: np.ndarray, *, best: np.ndarray, first_best: np.ndarray, positives_at_best: np.ndarray, ties: Ties
) -> np.ndarray:
    """Negatives ranking above each row's best positive score ``best`` (first reached at ``first_best``,
    shared by ``positives_at_best`` positives); no positive scores above ``best``."""
    above = (arr > best[:, None]).sum(axis=1)
    if ties == "optimistic":
        return above
    if ties == "pessimistic":
        return above + (arr == best[:, None]).sum(axis=1) - positives_at_best
    if ties == "stable":
        before = np.arange(arr.shape[1])[None, :] < first_best[:, None]
        return above + ((arr == best[:, None]) & before).sum(axis=1)
    raise ParameterError(f"ties={ties!r}; expected 'pessimistic', 'optimistic' or 'stable'.")


def group_ranks(scores: np.ndarray, *, positive_mask: np.ndarray, ties: Ties = "pessimistic") -> np.ndarray:
    """0-based rank of each row's best-scoring positive: how many negatives rank above it.

    Other positives never count against a query, so several correct items (e.g. clips of the same
    song) give the rank of the first one.
    """
    arr = _check_scores(scores)
    mask = np.asarray(positive_mask, dtype=bool)
    if mask.shape != arr.shape:
        raise ParameterError(f"positive_mask has shape {mask.shape}; expected the scores' shape {arr.shape}.")
    if not mask.any(axis=1).all():
        row = int(np.flatnonzero(~mask.any(axis=1))[0])
        raise ParameterError(f"query row {row} has no positive item; every query needs at least one.")
    best = np.where(mask, arr, -np.inf).max(axis=1)
    at_best = mask & (arr == best[:, None])
    return _ranks_of(
        arr, best=best, first_best=np.argmax(at_best, axis=1), positives_at_best=at_best.sum(axis=1), ties=ties
    )


def positive_ranks(scores: np.ndarray, *, positives: np.ndarray, ties: Ties = "pessimistic") -> np.ndarray:
    """0-based rank of column ``positives[i]`` in row i of ``scores`` (higher score ranks first).

    ties: "pessimistic" (equal scores rank above the positive), "optimistic" (below), or "stable"
    (the order of ``np.argsort(-row, kind="stable")``: lower column index first).
    """
    arr = _check_scores(scores)
    pos = np.asarray(positives)
    if pos.shape != (arr.shape[0],) or not np.issubdtype(pos.dtype, np.integer):
        raise ParameterError(
            f"positives has shape {pos.shape} and dtype {pos.dtype}; expected {arr.shape[0]} integers."
        )
    if pos.size and (pos.min() < 0 or pos.max() >= arr.shape[1]):
        raise ParameterError(
            f"positives must be column indices in [0, {arr.shape[1]}); got range [{pos.min()}, {pos.max()}]."
        )
    best = arr[np.arange(arr.shape[0]), pos]
    return _ranks_of(arr, best=best, first_best=pos, positives_at_best=np.ones_like(pos), ties=ties)


def rank_breakdown(
    scores: np.ndarray,
    *,
    positives: np.ndarray,
    query_groups: Sequence[str],
    gallery_groups: Sequence[str],
    query_classes: Sequence[str],
    gallery_classes: Sequence[str],
) -> dict[str, float]:
    """Where the positive's rank comes from: the mean number of gallery items scoring at or above each query's
    positive (pessimistic ties, as in :func:`positive_ranks`), split into ``own`` (other items of the query's
    group: the other windows of its pair), ``same_class`` (other groups of its class: other pairs of its
    style) and ``other_class``; ``chance_*`` is what random scores give on average (half of each kind)."""
    arr = _check_scores(scores)
    pos = np.asarray(positives)
    labels = [np.asarray(x) for x in (query_groups, gallery_groups, query_classes, gallery_classes)]
    shapes = [x.shape for x in labels]
    if pos.shape != (arr.shape[0],) or shapes != [arr.shape[:1], arr.shape[1:], arr.shape[:1], arr.shape[1:]]:
        raise ParameterError(
            f"scores {arr.shape} with positives {pos.shape} and labels {shapes}; expected one positive, group and "
            "class per query (row) and one group and class per gallery item (column)."
        )
    qg, gg, qc, gc = labels
    rows = np.arange(arr.shape[0])
    above = arr >= arr[rows, pos][:, None]
    above[rows, pos] = False
    in_group = qg[:, None] == gg[None, :]
    own = in_group.copy()
    own[rows, pos] = False
    same_class = (qc[:, None] == gc[None, :]) & ~in_group
    other_class = qc[:, None] != gc[None, :]
    out: dict[str, float] = {}
    for name, kind in (("own", own), ("same_class", same_class), ("other_class", other_class)):
        out[name] = float((above & kind).sum(axis=1).mean())
        out[f"chance_{name}"] = float(kind.sum(axis=1).mean() / 2.0)
    return out


def recall_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10/50/100 (percent), MedR and MeanR (1-based) and AVG = sum R@K - MedR/10 - MeanR/10."""
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0:
        raise ParameterError(f"ranks has shape {r.shape}; expected a non-empty 1-D array of 0-based ranks.")
    out = {f"R@{k}": float(100.0 * np.mean(r < k)) for k in RECALL_KS}
    out["MedR"] = float(np.median(r) + 1)
    out["MeanR"] = float(np.mean(r) + 1)
    out["AVG"] = sum(out[f"R@{k}"] for k in RECALL_KS) - out["MedR"] / 10 - out["MeanR"] / 10
    return out


def top_k_mask(scores: np.ndarray, *, k: int) -> np.ndarray:
    """(Q, G) bool with exactly min(k, G) True per row: the row's best scores, equal scores by lower index."""
    arr = _check_scores(scores)
    if k < 1:
        raise ParameterError(f"k={k} must be >= 1.")
    g = arr.shape[1]
    k = min(k, g)
    mask = np.zeros(arr.shape, dtype=bool)
    if k == 1:
        mask[np.arange(arr.shape[0]), np.argmax(arr, axis=1)] = True
        return mask
    cand = np.argpartition(arr, g - k, axis=1)[:, g - k :]
    np.put_along_axis(mask, cand, True, axis=1)
    kth = np.take_along_axis(arr, cand, axis=1).min(axis=1, keepdims=True)
    # argpartition picks arbitrary items among those tied with the k-th score: redo those rows by index
    tied = np.flatnonzero((arr >= kth).sum(axis=1) > k)
    if tied.size:
        sub, sub_kth = arr[tied], kth[tied]
        equal = sub == sub_kth
        missing = k - (sub > sub_kth).sum(axis=1, keepdims=True)
        mask[tied] = (sub > sub_kth) | (equal & (np.cumsum(equal, axis=1) <= missing))
    return mask


def top_k_indices(scores: np.ndarray, *, k: int) -> np.ndarray:
    """(Q, min(k, G)) gallery indices of each row's best scores, best first (equal scores: lower index first)."""
    mask = top_k_mask(scores, k=k)
    arr = np.asarray(scores)
    cand = np.nonzero(mask)[1].reshape(arr.shape[0], -1)
    order = np.lexsort((cand, -np.take_along_axis(arr, cand, axis=1)), axis=1)
    return np.take_along_axis(cand, order, axis=1)


def pair_alignment(
    *,
    query_grids: np.ndarray,
    gallery_grids: np.ndarray,
    items: np.ndarray,
    direction: Direction,
    sigma_frames: float = 3.0,
) -> np.ndarray:
    """(Q, K) BA of query q with gallery item ``items[q, r]``, the music always the reference.

    m2d: BA(query music -> item dance); d2m: BA(item music -> query dance).
    """
    query_is_music = _query_is_music(direction)
    return pair_alignment_from_sides(
        query_side=beat_side(query_grids, music=query_is_music, sigma_frames=sigma_frames),
        gallery_side=beat_side(gallery_grids, music=not query_is_music, sigma_frames=sigma_frames),
        items=items,
    )


def pair_alignment_from_sides(*, query_side: np.ndarray, gallery_side: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``pair_alignment`` from precomputed ``beat_side`` matrices, for a gallery that is reused many times."""
    idx = np.asarray(items)
    return np.einsum("qf,qkf->qk", query_side, gallery_side[idx])


def _query_is_music(direction: Direction) -> bool:
    if direction not in ("m2d", "d2m"):
        raise ParameterError(f"direction={direction!r}; expected 'm2d' (music queries) or 'd2m' (dance queries).")
    return direction == "m2d"


def beat_similarity_at_k(alignment: np.ndarray, *, ks: Sequence[int] = BS_KS) -> dict[str, float]:
    """BS@K = 100 * mean over queries of the mean BA of the top-K items, from a (Q, Kmax) BA matrix in rank order.

    K larger than the number of columns is clipped to it (the gallery size).
    """
    a = np.asarray(alignment, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ParameterError(f"alignment has shape {a.shape}; expected (queries, retrieved items), both non-empty.")
    if any(k < 1 for k in ks):
        raise ParameterError(f"ks={tuple(ks)}; every K must be >= 1.")
    return {f"BS@{k}": float(100.0 * a[:, : min(k, a.shape[1])].mean(axis=1).mean()) for k in ks}
