"""Tables of the bench: mean ± std over runs per row and direction, per-run paired comparisons, results.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..retrieval.metrics import RECALL_KS

DIRECTIONS = ("m2d", "d2m")


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


def results_markdown(results: dict[str, Any], table: str) -> str:
    cfg = results["config"]
    sizes = sorted({run["num_test"] for run in results["runs"]})
    return (
        f"# Benchmark on {results['store']}\n\n"
        f"{results['num_clips']} clips of {results['num_groups']} pairs; {cfg['folds']}-fold cross-validation over "
        f"pairs x {cfg['seeds']} seeds = {len(results['runs'])} runs (test folds of {sizes[0]}-{sizes[-1]} clips); "
        f"mean ± std over runs; {results['elapsed_s']:.0f} s.\n\n{table}"
    )
