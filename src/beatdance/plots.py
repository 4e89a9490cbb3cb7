"""Report figures: beat tracks, music/dance beat alignment, recall curves, rank histograms, training history.

Each function draws on its own matplotlib ``Figure`` with the Agg canvas (no pyplot global state, so it is
safe in servers and threads), writes a PNG atomically to ``path`` and returns the path.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .errors import ParameterError
from .util import atomic_write_bytes

_DPI = 100
_WIDTH_IN = 10.0
_MAX_WAVEFORM_POINTS = 4000
_MATCH_MAX_S = 0.2  # colour scale of music-to-dance beat distances
_RECALL_KEY = re.compile(r"^R@(\d+)$")

PathLike = str | os.PathLike[str]


def _new_figure(*, rows: int, row_height_in: float) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(_WIDTH_IN, row_height_in * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _save(fig: Figure, path: PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _as_1d(values: Any, *, name: str, allow_empty: bool = True) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ParameterError(f"{name} has shape {arr.shape}; expected a 1-D array.")
    if not allow_empty and arr.size == 0:
        raise ParameterError(f"{name} is empty; expected at least one value to plot.")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} contains NaN or infinite values; pass finite values.")
    return arr


def _positive(value: float, *, name: str, meaning: str) -> float:
    if not value > 0:
        raise ParameterError(f"{name}={value} must be strictly positive ({meaning}).")
    return float(value)


def _waveform_bounds(waveform: np.ndarray, *, sr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times and per-bucket min/max of a waveform, at most _MAX_WAVEFORM_POINTS buckets (peaks are kept)."""
    hop = max(1, int(np.ceil(len(waveform) / _MAX_WAVEFORM_POINTS)))
    n = int(np.ceil(len(waveform) / hop))
    padded = np.pad(waveform, (0, n * hop - len(waveform)), mode="edge").reshape(n, hop)
    return np.arange(n) * hop / sr, padded.min(axis=1), padded.max(axis=1)


def plot_beats(
    *,
    path: PathLike,
    envelope: np.ndarray,
    envelope_fps: float,
    beat_times_s: np.ndarray,
    tempo_bpm: float | None,
    title: str,
    waveform: np.ndarray | None = None,
    sr: int | None = None,
) -> Path:
    """An onset (music) or speed (dance) envelope with its beats as vertical lines, optionally over the waveform."""
    env = _as_1d(envelope, name="envelope", allow_empty=False)
    fps = _positive(envelope_fps, name="envelope_fps", meaning="envelope frames per second")
    beats = _as_1d(beat_times_s, name="beat_times_s")
    if waveform is not None and sr is None:
        raise ParameterError("waveform was given without sr; pass its sample rate, e.g. sr=22050.")
    fig, axes = _new_figure(rows=1 if waveform is None else 2, row_height_in=2.4)
    if waveform is not None:
        assert sr is not None  # checked above
        wave = _as_1d(waveform, name="waveform", allow_empty=False)
        times, low, high = _waveform_bounds(wave, sr=_positive(sr, name="sr", meaning="audio sample rate in Hz"))
        axes[0].fill_between(times, low, high, color="0.55", linewidth=0)
        axes[0].set_ylabel("waveform")
    axes[-1].plot(np.arange(len(env)) / fps, env, color="tab:blue", linewidth=1.0)
    axes[-1].set_ylabel("envelope")
    axes[-1].set_xlabel("time (s)")
    for ax in axes:
        ax.vlines(beats, 0, 1, transform=ax.get_xaxis_transform(), color="tab:red", alpha=0.7, linewidth=1.0)
    tempo = "tempo unknown" if tempo_bpm is None else f"{tempo_bpm:.1f} BPM"
    beat_note = f"{len(beats)} beats" if len(beats) else "no beats found"
    axes[0].set_title(f"{title} ({tempo}, {beat_note})" if title else f"{tempo}, {beat_note}")
    return _save(fig, path)


def describe_shift(offset_s: float) -> str:
    """Words for a shift of the music against the dance (``offset_s`` > 0 delays the music's beats)."""
    return f"music {'delayed' if offset_s > 0 else 'advanced'} by {abs(offset_s):.3f} s"


def _alignment_row(
    fig: Figure, ax: Axes, *, music: np.ndarray, dance: np.ndarray, offset_s: float, score: float | None, title: str
) -> np.ndarray:
    """One row of :func:`plot_beat_alignment`; returns the music beat times as drawn (shifted)."""
    music = music + offset_s
    if len(music) and len(dance):
        nearest = dance[np.abs(music[:, None] - dance[None, :]).argmin(axis=1)]
        starts = np.stack([music, np.full_like(music, 0.8)], axis=1)
        ends = np.stack([nearest, np.full_like(music, 0.2)], axis=1)
        links = LineCollection(
            list(np.stack([starts, ends], axis=1)), cmap="viridis_r", norm=Normalize(0.0, _MATCH_MAX_S), linewidths=1.2
        )
        links.set_array(np.abs(nearest - music))
        ax.add_collection(links)
        fig.colorbar(links, ax=ax, label="to nearest dance beat (s)")
    ax.vlines(music, 0.8, 1.2, color="tab:red", linewidth=2)
    ax.vlines(dance, -0.2, 0.2, color="tab:blue", linewidth=2)
    ax.set_yticks([0, 1], ["dance", "music"])
    ax.set_ylim(-0.5, 1.5)
    facts = [f"{len(music)} music / {len(dance)} dance beats"]
    if offset_s:
        facts.append(describe_shift(offset_s))
    if score is not None:
        facts.append(f"BA = {score:.3f}")
    ax.set_title(" - ".join([title, ", ".join(facts)] if title else [", ".join(facts)]))
    return music


def plot_beat_alignment(
    *,
    path: PathLike,
    music_beats_s: np.ndarray,
    dance_beats_s: np.ndarray,
    duration_s: float,
    offset_s: float = 0.0,
    score: float | None = None,
    title: str = "",
    score_before: float | None = None,
) -> Path:
    """Music beats (top row) and dance beats (bottom row) as ticks, each music beat linked to its nearest dance beat.

    ``offset_s`` follows beats.alignment.best_offset: a positive offset delays the music, so music beats are
    drawn at t + offset_s. Links are coloured by the music-to-dance distance (the BA direction, SPEC §5).
    With ``score_before`` (the BA without the shift) a first panel shows the beats before the shift, so
    one figure compares before and after.
    """
    music = _as_1d(music_beats_s, name="music_beats_s")
    dance = _as_1d(dance_beats_s, name="dance_beats_s")
    duration = _positive(duration_s, name="duration_s", meaning="the time span to show, in seconds")
    rows = (
        [(float(offset_s), score, title)]
        if score_before is None
        else [(0.0, score_before, "before the shift"), (float(offset_s), score, "after the shift")]
    )
    fig, axes = _new_figure(rows=len(rows), row_height_in=2.6)
    shown = [np.array([0.0, duration]), dance]
    for ax, (row_offset_s, row_score, row_title) in zip(axes, rows):
        shown.append(
            _alignment_row(fig, ax, music=music, dance=dance, offset_s=row_offset_s, score=row_score, title=row_title)
        )
    everything = np.concatenate(shown)
    axes[-1].set_xlim(everything.min() - 0.05, everything.max() + 0.05)
    axes[-1].set_xlabel("time (s)")
    if score_before is not None and title:
        fig.suptitle(title)
    return _save(fig, path)


def _recall_points(name: str, metrics: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    points = sorted((int(m.group(1)), float(v)) for k, v in metrics.items() if (m := _RECALL_KEY.match(k)))
    if not points:
        raise ParameterError(f"Curve {name!r} has no R@K values (keys {sorted(metrics)}); expected keys like 'R@1'.")
    ks, values = zip(*points)
    return np.array(ks), np.array(values)


def plot_recall_curves(*, path: PathLike, curves: Mapping[str, Mapping[str, float]], title: str = "") -> Path:
    """R@K (percent) against K on a log axis, one line per arm or direction; keys other than 'R@K' are ignored."""
    if not curves:
        raise ParameterError("curves is empty; expected {name: {'R@1': ..., 'R@5': ...}} for at least one curve.")
    fig, (ax,) = _new_figure(rows=1, row_height_in=4.0)
    all_ks: set[int] = set()
    for name, metrics in curves.items():
        ks, values = _recall_points(name, metrics)
        ax.plot(ks, values, marker="o", label=name)
        all_ks.update(ks.tolist())
    ax.set_xscale("log")
    ax.set_xticks(sorted(all_ks), [str(k) for k in sorted(all_ks)])
    ax.set_ylim(0, 100)
    ax.set_xlabel("K")
    ax.set_ylabel("R@K (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "Recall at K")
    return _save(fig, path)


def plot_rank_histogram(*, path: PathLike, ranks: Mapping[str, np.ndarray], title: str = "") -> Path:
    """Histograms of the positives' 0-based ranks (drawn 1-based on log-spaced bins), one outline per arm."""
    if not ranks:
        raise ParameterError("ranks is empty; expected {name: 1-D array of 0-based ranks} for at least one arm.")
    arms = {name: _as_1d(values, name=f"ranks[{name!r}]", allow_empty=False) + 1 for name, values in ranks.items()}
    for name, values in arms.items():
        if values.min() < 1 or np.any(values != np.round(values)):
            raise ParameterError(
                f"ranks[{name!r}] holds negative or fractional values; expected 0-based integer ranks."
            )
    top = max(float(v.max()) for v in arms.values())
    bins = np.unique(np.round(np.geomspace(1, top + 1, num=min(40, int(top) + 1)))) if top > 1 else np.array([1, 2])
    fig, (ax,) = _new_figure(rows=1, row_height_in=4.0)
    for name, values in arms.items():
        ax.hist(
            values, bins=bins.tolist(), histtype="step", linewidth=1.5, label=f"{name} (MedR {np.median(values):g})"
        )
    ax.set_xscale("log")
    ax.set_xlabel("rank of the true match (1 = top)")
    ax.set_ylabel("queries")
    ax.legend()
    ax.set_title(title or "Rank of the true match")
    return _save(fig, path)


def _history_x(history: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, str]:
    for key in ("global_step", "epoch"):
        if all(key in row for row in history):
            return np.array([float(row[key]) for row in history]), key.replace("_", " ")
    return np.arange(1, len(history) + 1, dtype=np.float64), "validation"


def _metric_keys(history: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """The history keys that show ``metric``: the key itself, or prefixed ones ('train_loss' for 'loss', 'm2d/AVG' for 'AVG')."""
    keys = {k for row in history for k in row}
    return sorted(k for k in keys if k == metric or k.endswith(("_" + metric, "/" + metric)))


def plot_training_history(
    *, path: PathLike, history: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ("loss", "m2d/AVG")
) -> Path:
    """One panel per metric over training (x = global step, else epoch); 'loss' shows train_loss and val_loss.

    The last validation that saved a best checkpoint (``saved_best``) is marked by a dotted line.
    """
    if not history:
        raise ParameterError("history is empty; expected a list of per-validation dicts (the run's history.jsonl).")
    if not metrics:
        raise ParameterError("metrics is empty; name at least one history key to plot, e.g. metrics=('loss',).")
    panels = {metric: _metric_keys(history, metric) for metric in metrics}
    absent = [m for m, keys in panels.items() if not keys]
    if absent:
        known = sorted({k for row in history for k, v in row.items() if isinstance(v, (int, float))})
        raise ParameterError(f"metrics {absent} are not in the history; expected some of {known}.")
    x, x_label = _history_x(history)
    fig, axes = _new_figure(rows=len(panels), row_height_in=2.6)
    best = [xi for xi, row in zip(x, history) if row.get("saved_best")]
    for ax, (metric, keys) in zip(axes, panels.items()):
        for key in keys:
            y = np.array([float(row.get(key, np.nan)) for row in history])
            ax.plot(x, y, marker="o", markersize=3, label=key)
        if best:
            ax.axvline(best[-1], color="0.4", linestyle=":", linewidth=1)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    axes[-1].set_xlabel(x_label)
    axes[0].set_title("Training history")
    return _save(fig, path)
