"""What the bench reports: mean ± std over runs per row and direction, per-run paired comparisons, where the
partner's rank comes from, results.md and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import plot_rank_histogram, plot_recall_curves
from ..retrieval.metrics import RECALL_KS, positive_ranks, rank_breakdown
from ..retrieval.scoring import ModalityEmbeddings, Scorer
from .baselines import style_labels

DIRECTIONS = ("m2d", "d2m")


def plain_scores(music: ModalityEmbeddings, dance: ModalityEmbeddings) -> dict[str, np.ndarray]:
    """(queries, gallery) plain scores of both directions; query i's partner is gallery item i."""
    return {
        direction: Scorer(gallery, direction=direction).scores(query, slice(None))  # type: ignore[arg-type]
        for direction, query, gallery in (("m2d", music, dance), ("d2m", dance, music))
    }


def plain_ranks(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """0-based ranks of the true partner in both directions of :func:`plain_scores`, for the rank histograms."""
    return {direction: positive_ranks(s, positives=np.arange(len(s))) for direction, s in scores.items()}


def add_breakdown(report: dict[str, Any], scores: dict[str, np.ndarray], *, groups: Sequence[str]) -> None:
    """Put each direction's :func:`rank_breakdown` of :func:`plain_scores` (``groups``: the clips' pairs, classes:
    the pairs' styles) into ``report[direction]["breakdown"]``; nothing where the pairs carry no style labels."""
    styles = style_labels(list(groups))
    if styles is None:
        return
    for direction, s in scores.items():
        report[direction]["breakdown"] = rank_breakdown(
            s,
            positives=np.arange(len(s)),
            query_groups=groups,
            gallery_groups=groups,
            query_classes=styles,
            gallery_classes=styles,
        )


def _mean_std(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """row -> direction -> metric -> {mean, std} over runs; pair-level metrics are prefixed "pair ".

    Each run is {"seed", "fold", "reports": {row: evaluate_retrieval report}}.
    """
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for row in runs[0]["reports"]:
        out[row] = {}
        for direction in DIRECTIONS:
            values: dict[str, list[float]] = {}
            for run in runs:
                res = run["reports"][row][direction]
                flat = {
                    **res["metrics"],
                    **{f"pair {k}": v for k, v in res["pair_metrics"].items()},
                    **res["beat_similarity"],
                }
                for key, value in flat.items():
                    values.setdefault(key, []).append(value)
            out[row][direction] = {k: _mean_std(v) for k, v in values.items()}
    return out


TABLE_COLUMNS = tuple(f"R@{k}" for k in RECALL_KS) + ("MedR", "MedR/N", "MeanR", "pair R@1", "pair R@5", "BS@10")


def format_markdown(summary: dict[str, Any], *, columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """One Markdown table per direction: a row per arm, mean ± std per metric."""
    parts = []
    for direction in DIRECTIONS:
        label = "music -> dance (m2d)" if direction == "m2d" else "dance -> music (d2m)"
        parts.append(f"**{label}**\n")
        parts.append("| arm | " + " | ".join(columns) + " |")
        parts.append("|---|" + "---:|" * len(columns))
        for row, by_direction in summary.items():
            cells = []
            for col in columns:
                stat = by_direction[direction].get(col)
                digits = 3 if col == "MedR/N" else 1
                cells.append("-" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}")
            parts.append(f"| {row} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


PAIRED_METRICS = ("R@10", "MedR", "MedR/N", "pair R@1")


def paired_comparison(runs: Sequence[dict[str, Any]], *, row: str, baseline: str) -> str:
    """Markdown table of per-run differences ``row`` - ``baseline`` (same test clips), mean ± std, and in
    how many runs ``row`` is better (higher recall, lower MedR)."""
    lines = [
        f"**{row} - {baseline}, paired over the {len(runs)} runs**\n",
        "| direction | " + " | ".join(PAIRED_METRICS) + " |",
        "|---|" + "---:|" * len(PAIRED_METRICS),
    ]
    for direction in DIRECTIONS:
        cells = []
        for metric in PAIRED_METRICS:
            kind, _, name = metric.rpartition(" ")
            key = "pair_metrics" if kind else "metrics"
            diff = np.array(
                [
                    run["reports"][row][direction][key][name] - run["reports"][baseline][direction][key][name]
                    for run in runs
                ]
            )
            better = int(((diff < 0) if name.startswith("MedR") else (diff > 0)).sum())
            stat = _mean_std(diff)
            digits = 3 if name == "MedR/N" else 1
            cells.append(f"{stat['mean']:+.{digits}f} ± {stat['std']:.{digits}f} ({better}/{len(runs)} better)")
        lines.append(f"| {direction} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


BREAKDOWN_KINDS = (
    ("own", "other windows of its pair"),
    ("same_class", "other pairs of its style"),
    ("other_class", "other styles"),
)


def format_breakdown(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown table of where the partner's rank comes from (``retrieval.metrics.rank_breakdown``), for every
    row whose runs all carry one: the mean over runs of the clips scored at or above the partner per query,
    by kind, with what random scores give in brackets. Empty when no row has one (no style labels)."""
    present = runs[0]["reports"] if runs else {}
    rows = [row for row in present if all("breakdown" in run["reports"][row]["m2d"] for run in runs)]
    if not rows:
        return ""
    lines = [
        "**Where the partner's rank comes from: clips scored at or above it per query, mean over runs "
        "(random scores in brackets)**\n",
        "| arm | direction | " + " | ".join(label for _, label in BREAKDOWN_KINDS) + " |",
        "|---|---|" + "---:|" * len(BREAKDOWN_KINDS),
    ]
    for row in rows:
        for direction in DIRECTIONS:
            parts = [run["reports"][row][direction]["breakdown"] for run in runs]
            cells = [
                f"{np.mean([p[key] for p in parts]):.1f} ({np.mean([p['chance_' + key] for p in parts]):.1f})"
                for key, _ in BREAKDOWN_KINDS
            ]
            lines.append(f"| {row} | {direction} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def results_markdown(results: dict[str, Any], table: str) -> str:
    cfg = results["config"]
    sizes = sorted({run["num_test"] for run in results["runs"]})
    return (
        f"# Benchmark on {results['store']}\n\n"
        f"{results['num_clips']} clips of {results['num_groups']} pairs; {cfg['folds']}-fold cross-validation over "
        f"pairs x {cfg['seeds']} seeds = {len(results['runs'])} runs (test folds of {sizes[0]}-{sizes[-1]} clips); "
        f"mean ± std over runs; {results['elapsed_s']:.0f} s.\n\n{table}"
    )


def write_plots(
    out: Path,
    *,
    summary: dict[str, Any],
    pooled: dict[str, dict[str, list[np.ndarray]]],
    curve_rows: Sequence[str | None],
) -> None:
    """recall_<direction>.png (mean R@K of ``curve_rows``) and ranks_<direction>.png (the partner's rank over all
    test clips of all runs, ``pooled``: direction -> row -> ranks per run) into ``out``."""
    runs = max((len(r) for by_row in pooled.values() for r in by_row.values()), default=0)
    for direction in DIRECTIONS:
        curves = {
            row: {k: v["mean"] for k, v in summary[row][direction].items()}
            for row in curve_rows
            if row is not None and row in summary
        }
        plot_recall_curves(
            path=out / f"recall_{direction}.png", curves=curves, title=f"{direction}: mean R@K over {runs} runs"
        )
        plot_rank_histogram(
            path=out / f"ranks_{direction}.png",
            ranks={row: np.concatenate(r) for row, r in pooled[direction].items()},
            title=f"{direction}: rank of the true partner, all test clips of all runs",
        )
