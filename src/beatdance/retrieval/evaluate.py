"""Paired retrieval evaluation in both directions, chunked so large galleries stay in memory bounds.

Query i's positive is gallery item i (pairs are 1:1). m2d: music queries rank the dance gallery; d2m:
dance queries rank the music gallery. Scores come from ``Scorer`` (fused cosine plus optional beat
terms), optionally normalised by QB-Norm with a querybank of the query modality scored against the
same gallery. Query rows are scored ``chunk_size`` at a time; only ranks and the top-50 indices are
kept, so a 100k gallery never needs a 100k x 100k matrix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from ..beats.alignment import beat_side
from ..errors import ParameterError
from .hubness import QuerybankStats, apply_hubness, fit_querybank
from .metrics import (
    BS_KS,
    RECALL_KS,
    Direction,
    beat_similarity_at_k,
    group_ranks,
    pair_alignment_from_sides,
    positive_ranks,
    recall_metrics,
    top_k_indices,
)
from .scoring import ModalityEmbeddings, Scorer

__all__ = ["ModalityEmbeddings", "evaluate_retrieval", "format_table"]

Hubness = Literal["none", "is", "dis"]
BS_FPS = 10.0


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _group_codes(emb: ModalityEmbeddings, table: dict[str, int]) -> np.ndarray:
    return np.array([table.setdefault(g, len(table)) for g in (emb.groups or emb.ids)], dtype=np.int64)


def _evaluate_direction(
    *,
    query: ModalityEmbeddings,
    gallery: ModalityEmbeddings,
    bank: ModalityEmbeddings | None,
    direction: Direction,
    hubness: Hubness,
    k: int,
    beta: float,
    beat_weight_head: float,
    beat_weight_align: float,
    chunk_size: int,
    bs_ks: Sequence[int],
    sigma_frames: float,
    bank_without_query_group: bool,
) -> dict[str, Any]:
    scorer = Scorer(
        gallery,
        direction=direction,
        beat_weight_head=beat_weight_head,
        beat_weight_align=beat_weight_align,
        sigma_frames=sigma_frames,
    )
    codes: dict[str, int] = {}
    query_groups, gallery_groups = _group_codes(query, codes), _group_codes(gallery, codes)
    stats: dict[int, QuerybankStats] = {}  # per query group, or one under key -1 for every query
    if hubness != "none":
        assert bank is not None
        chunks = list(_chunks(len(bank), chunk_size))
        if bank_without_query_group:  # one fit per query group over bank scores made once: evaluation-sized banks
            bank_groups = _group_codes(bank, codes)
            scored = [(scorer.scores(bank, sl), bank_groups[sl]) for sl in chunks]
            for code in np.unique(query_groups):
                stats[int(code)] = fit_querybank((s[g != code] for s, g in scored), k=k, beta=beta)
        else:
            stats[-1] = fit_querybank((scorer.scores(bank, sl) for sl in chunks), k=k, beta=beta)
    # with one clip per group (and paired groups) the pair-level ranks are the clip-level ones
    one_per_group = len(np.unique(gallery_groups)) == len(gallery) and np.array_equal(query_groups, gallery_groups)
    n = len(query)
    ranks = np.empty(n, dtype=np.int64)
    pair_ranks = np.empty(n, dtype=np.int64)
    top_k = max(bs_ks, default=0)
    query_is_music = direction == "m2d"
    query_side = beat_side(query.beat_grid, music=query_is_music, sigma_frames=sigma_frames)
    gallery_side = beat_side(gallery.beat_grid, music=not query_is_music, sigma_frames=sigma_frames)
    alignment = np.empty((n, min(top_k, n)), dtype=np.float32)
    for sl in _chunks(n, chunk_size):
        s = scorer.scores(query, sl)
        if stats:
            s = _normalised(s, stats=stats, groups=query_groups[sl], method=hubness)
        rows = np.arange(sl.start, sl.stop)
        ranks[sl] = positive_ranks(s, positives=rows)
        if one_per_group:
            pair_ranks[sl] = ranks[sl]
        else:
            same_group = query_groups[sl, None] == gallery_groups[None, :]
            same_group[np.arange(len(rows)), rows] = True
            pair_ranks[sl] = group_ranks(s, positive_mask=same_group)
        if top_k:
            alignment[sl] = pair_alignment_from_sides(
                query_side=query_side[sl], gallery_side=gallery_side, items=top_k_indices(s, k=top_k)
            )
    gt = pair_alignment_from_sides(query_side=query_side, gallery_side=gallery_side, items=np.arange(n)[:, None])
    beat_similarity = beat_similarity_at_k(alignment, ks=bs_ks) if top_k else {}
    beat_similarity["BS@GT"] = float(100.0 * gt.mean())
    out: dict[str, Any] = {
        "num_queries": n,
        "gallery_size": len(gallery),
        "metrics": recall_metrics(ranks),
        "pair_metrics": recall_metrics(pair_ranks),
        "beat_similarity": beat_similarity,
    }
    if stats:
        sizes = [st.bank_size for st in stats.values()]
        out["querybank"] = {
            "size": min(sizes),
            "activation_size": int(min(st.activation.sum() for st in stats.values())),
            "without_query_group": bank_without_query_group,
        }
    return out


def _normalised(
    scores: np.ndarray, *, stats: dict[int, QuerybankStats], groups: np.ndarray, method: Hubness
) -> np.ndarray:
    """QB-Norm of query rows, each with its group's querybank (or the one bank under key -1)."""
    if -1 in stats:
        return apply_hubness(scores, stats=stats[-1], method=method)  # type: ignore[arg-type]
    out = np.empty(scores.shape, dtype=np.float64)
    for code in np.unique(groups):
        rows = groups == code
        out[rows] = apply_hubness(scores[rows], stats=stats[int(code)], method=method)  # type: ignore[arg-type]
    return out


def evaluate_retrieval(
    *,
    music: ModalityEmbeddings,
    dance: ModalityEmbeddings,
    bank_music: ModalityEmbeddings | None = None,
    bank_dance: ModalityEmbeddings | None = None,
    hubness: Hubness = "none",
    k: int = 1,
    beta: float = 20.0,
    beat_weight_head: float = 0.0,
    beat_weight_align: float = 0.0,
    chunk_size: int = 1024,
    bs_ks: Sequence[int] = BS_KS,
    sigma_frames: float = 3.0,
    bank_without_query_group: bool = False,
) -> dict[str, Any]:
    """R@K, MedR, MeanR, AVG, pair-level R@K (same group counts) and BS@K for m2d and d2m, as plain JSON data.

    With ``hubness`` "is" or "dis" the m2d querybank is ``bank_music`` scored against the dance gallery
    and the d2m querybank is ``bank_dance`` scored against the music gallery. With
    ``bank_without_query_group`` each query is normalised by a querybank fitted without the bank clips of
    its own group: the gallery's own clips can then serve as the bank (as a library's do) without a query
    ever meeting its own pair in it, which is the situation of a new query against a library.
    """
    if len(music) != len(dance) or len(music) == 0:
        raise ParameterError(
            f"music has {len(music)} clips and dance {len(dance)}; expected the same non-zero "
            "number of paired clips (query i's positive is gallery item i)."
        )
    mismatch = next((i for i, (a, b) in enumerate(zip(music.ids, dance.ids)) if a != b), None)
    if mismatch is not None:
        raise ParameterError(
            f"clip {mismatch} is {music.ids[mismatch]!r} in music but {dance.ids[mismatch]!r} in "
            "dance; pass both modalities in the same clip order."
        )
    if music.beat_grid.shape[1] != dance.beat_grid.shape[1]:
        raise ParameterError(
            f"music beat grids have {music.beat_grid.shape[1]} frames but dance grids "
            f"{dance.beat_grid.shape[1]}; both must cover the same clip length at {BS_FPS:g} fps."
        )
    if hubness not in ("none", "is", "dis"):
        raise ParameterError(f"hubness={hubness!r}; expected 'none', 'is' (inverted softmax) or 'dis' (dynamic).")
    if hubness != "none" and (bank_music is None or bank_dance is None):
        raise ParameterError(
            f"hubness={hubness!r} needs a querybank: pass bank_music and bank_dance (e.g. the "
            "embedded train split), or use hubness='none'."
        )
    if chunk_size < 1:
        raise ParameterError(f"chunk_size={chunk_size} must be >= 1 (query rows scored at a time).")
    common: dict[str, Any] = {
        "hubness": hubness,
        "k": k,
        "beta": beta,
        "beat_weight_head": beat_weight_head,
        "beat_weight_align": beat_weight_align,
        "chunk_size": chunk_size,
        "bs_ks": tuple(bs_ks),
        "sigma_frames": sigma_frames,
        "bank_without_query_group": bank_without_query_group,
    }
    report: dict[str, Any] = {
        "m2d": _evaluate_direction(query=music, gallery=dance, bank=bank_music, direction="m2d", **common),
        "d2m": _evaluate_direction(query=dance, gallery=music, bank=bank_dance, direction="d2m", **common),
    }
    report["settings"] = {**common, "bs_ks": list(bs_ks), "bs_fps": BS_FPS, "ties": "pessimistic"}
    return report


_COLUMNS = [f"R@{k}" for k in RECALL_KS] + ["MedR", "MeanR", "AVG", "BS@1", "BS@10"]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(report: dict[str, Any], *, title: str = "") -> str:
    """A fixed-width text table of an ``evaluate_retrieval`` report, or of a dict of them keyed by hubness
    setting (one row per direction and setting)."""
    runs = {"": report} if "m2d" in report else report
    width = max([9] + [len(f"{name} {d}") for name in runs for d in ("m2d", "d2m")])
    lines = [title] if title else []
    lines.append(f"{'':<{width}}" + "".join(f"{c:>9}" for c in _COLUMNS))
    for name, run in runs.items():
        for direction in ("m2d", "d2m"):
            res = run[direction]
            values = {**res["metrics"], **res.get("beat_similarity", {})}
            label = f"{name} {direction}".strip()
            lines.append(f"{label:<{width}}" + "".join(f"{_cell(values.get(c)):>9}" for c in _COLUMNS))
    return "\n".join(lines)
