"""Every figure writes a real PNG of the figure's size with visible content, draws the data it is given (checked on
the figure's artists), for normal and edge inputs, and bad inputs raise ParameterError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from beatdance import plots
from beatdance.errors import ParameterError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RED, BLUE = (214, 39, 40), (31, 119, 180)  # tab:red (beats, music beats), tab:blue (envelopes, dance beats)


@pytest.fixture(autouse=True)
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure plots.py saves, in order, to look at what it drew."""
    saved: list[Figure] = []
    real_save = plots._save

    def save(fig: Figure, path):
        saved.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return saved


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG after checking its signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _has_colour(pixels: np.ndarray, rgb: tuple[int, int, int], *, tol: int = 40) -> bool:
    return bool((np.abs(pixels.astype(int) - np.array(rgb)).max(axis=2) <= tol).any())


def _assert_png(
    result: Path, expected: Path, fig: Figure, *, min_width: int = 500, colours: tuple[tuple[int, int, int], ...] = ()
) -> np.ndarray:
    """A PNG of ``fig``'s size in pixels that decodes to a picture with content (and ``colours``); its pixels."""
    assert result == expected and expected.is_file()
    width, height = _png_size(expected)
    assert (width, height) == tuple(np.round(fig.get_size_inches() * 100).astype(int))
    assert width >= min_width and height >= 150
    with Image.open(expected) as img:
        img.verify()
    with Image.open(expected) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape == (height, width, 3)
    assert (pixels.min(axis=2) < 200).mean() > 0.01 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    for rgb in colours:
        assert _has_colour(pixels, rgb), rgb
    return pixels


def _segments(ax) -> list[np.ndarray]:
    """Every segment of the line collections (vlines, links) of ``ax``, as [[x0, y0], [x1, y1]]."""
    return [np.asarray(seg) for c in ax.collections if hasattr(c, "get_segments") for seg in c.get_segments()]


def _vline_xs(ax, y0: float, y1: float) -> np.ndarray:
    return np.sort([seg[0, 0] for seg in _segments(ax) if np.allclose(seg[:, 1], [y0, y1])])


def test_plot_beats_with_and_without_waveform(tmp_path: Path, figures: list[Figure]) -> None:
    rng = np.random.default_rng(0)
    env = np.abs(rng.normal(size=500))
    beats = np.arange(0.5, 10, 0.5)
    out = plots.plot_beats(
        path=tmp_path / "beats.png",
        envelope=env,
        envelope_fps=50.0,
        beat_times_s=beats,
        tempo_bpm=120.0,
        title="song",
        waveform=rng.normal(size=220500).astype(np.float32),
        sr=22050,
    )
    _assert_png(out, tmp_path / "beats.png", figures[-1], colours=(RED, BLUE))
    wave_ax, env_ax = figures[-1].axes
    (line,) = env_ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), np.arange(500) / 50.0)
    np.testing.assert_allclose(line.get_ydata(), env)
    for ax in (wave_ax, env_ax):  # one vertical line per beat, at its time, in both panels
        np.testing.assert_allclose(_vline_xs(ax, 0, 1), beats)
    assert wave_ax.get_title() == "song (120.0 BPM, 19 beats)"
    short = plots.plot_beats(
        path=tmp_path / "sub" / "plain.png",
        envelope=env[:3],
        envelope_fps=10.0,
        beat_times_s=np.array([]),
        tempo_bpm=None,
        title="",
    )
    pixels = _assert_png(short, tmp_path / "sub" / "plain.png", figures[-1], colours=(BLUE,))
    assert not _has_colour(pixels, RED, tol=25)  # no beats, no beat lines
    assert figures[-1].axes[0].get_title() == "tempo unknown, no beats found"
    assert _png_size(short)[1] < _png_size(out)[1]  # one panel instead of two


def test_plot_beats_rejects_bad_inputs(tmp_path: Path) -> None:
    kw = dict(path=tmp_path / "x.png", envelope_fps=10.0, beat_times_s=[1.0], tempo_bpm=60.0, title="t")
    with pytest.raises(ParameterError, match="envelope is empty"):
        plots.plot_beats(envelope=np.array([]), **kw)
    with pytest.raises(ParameterError, match="waveform was given without sr"):
        plots.plot_beats(envelope=np.ones(5), waveform=np.zeros(10), **kw)
    with pytest.raises(ParameterError, match="NaN"):
        plots.plot_beats(envelope=np.array([1.0, np.nan]), **kw)
    with pytest.raises(ParameterError, match="envelope_fps=0"):
        plots.plot_beats(**{**kw, "envelope_fps": 0}, envelope=np.ones(5))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("music", "dance", "offset_s", "score"),
    [
        (np.arange(0.5, 10, 0.5), np.arange(0.55, 10, 0.5), 0.0, 0.93),
        (np.arange(0.5, 10, 0.5), np.array([2.0, 7.3]), -0.25, None),
        (np.array([]), np.array([1.0]), 0.0, 0.0),
        (np.array([]), np.array([]), 0.0, None),
    ],
)
def test_plot_beat_alignment(
    tmp_path: Path, figures: list[Figure], music: np.ndarray, dance: np.ndarray, offset_s: float, score: float | None
) -> None:
    out = plots.plot_beat_alignment(
        path=tmp_path / "ba.png",
        music_beats_s=music,
        dance_beats_s=dance,
        duration_s=10.0,
        offset_s=offset_s,
        score=score,
        title="pair 7",
    )
    colours = ((RED,) if music.size else ()) + ((BLUE,) if dance.size else ())
    _assert_png(out, tmp_path / "ba.png", figures[-1], colours=colours)
    (ax,) = [a for a in figures[-1].axes if "music /" in a.get_title()]
    shifted = music + offset_s
    np.testing.assert_allclose(_vline_xs(ax, 0.8, 1.2), shifted)  # music ticks, shifted by the offset
    np.testing.assert_allclose(_vline_xs(ax, -0.2, 0.2), dance)
    links = sorted((seg[0, 0], seg[1, 0]) for seg in _segments(ax) if np.allclose(seg[:, 1], [0.8, 0.2]))
    nearest = [(m, min(dance, key=lambda d: abs(d - m))) for m in shifted] if dance.size else []
    np.testing.assert_allclose(np.array(links).reshape(-1, 2), np.array(sorted(nearest)).reshape(-1, 2))
    assert f"{len(music)} music / {len(dance)} dance beats" in ax.get_title()
    assert ("BA = " in ax.get_title()) == (score is not None)
    if score is not None:
        assert f"BA = {score:.3f}" in ax.get_title()


def test_plot_beat_alignment_rejects_bad_duration(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="duration_s=0"):
        plots.plot_beat_alignment(path=tmp_path / "ba.png", music_beats_s=[1.0], dance_beats_s=[1.0], duration_s=0)


def test_plot_recall_curves(tmp_path: Path, figures: list[Figure]) -> None:
    curves = {
        "m2d": {"R@1": 2.5, "R@5": 9.0, "R@10": 15.2, "R@50": 43.0, "R@100": 60.1, "MedR": 71.0},
        "d2m": {"R@1": 2.1, "R@10": 14.0, "R@100": 58.0},
    }
    out = plots.plot_recall_curves(path=tmp_path / "r.png", curves=curves, title="test")
    _assert_png(out, tmp_path / "r.png", figures[-1], colours=(BLUE,))
    lines = {line.get_label(): line for line in figures[-1].axes[0].get_lines()}
    assert set(lines) == {"m2d", "d2m"}
    for name, metrics in curves.items():  # one point per R@K, in K order; MedR is not a point
        ks = sorted(int(k[2:]) for k in metrics if k.startswith("R@"))
        np.testing.assert_allclose(lines[name].get_xdata(), ks)
        np.testing.assert_allclose(lines[name].get_ydata(), [metrics[f"R@{k}"] for k in ks])


def test_plot_recall_curves_rejects_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="curves is empty"):
        plots.plot_recall_curves(path=tmp_path / "r.png", curves={})
    with pytest.raises(ParameterError, match="Curve 'm2d' has no R@K values .*'MedR'"):
        plots.plot_recall_curves(path=tmp_path / "r.png", curves={"m2d": {"MedR": 3.0}})


def _step_counts(patch) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, counts) of a step histogram outline: (e0, 0), (e0, c0), (e1, c0), (e1, c1), ..., (eN, 0)."""
    xy = np.asarray(patch.get_xy())
    return xy[0::2, 0], xy[1::2, 1][:-1]


def test_plot_rank_histogram(tmp_path: Path, figures: list[Figure]) -> None:
    rng = np.random.default_rng(1)
    ranks = {"plain": rng.integers(0, 1212, size=1212), "qb-norm": rng.integers(0, 600, size=1212)}
    out = plots.plot_rank_histogram(path=tmp_path / "h.png", ranks=ranks)
    _assert_png(out, tmp_path / "h.png", figures[-1])
    ax = figures[-1].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"{name} (MedR {np.median(r) + 1:g})" for name, r in ranks.items()
    ]
    for patch, r in zip(ax.patches, ranks.values(), strict=True):  # each outline counts that arm's 1-based ranks
        edges, counts = _step_counts(patch)
        assert counts.sum() == len(r)
        np.testing.assert_array_equal(counts, np.histogram(r + 1, bins=edges)[0])
    all_top = plots.plot_rank_histogram(path=tmp_path / "top.png", ranks={"perfect": np.zeros(10, int)}, title="ideal")
    _assert_png(all_top, tmp_path / "top.png", figures[-1])
    (patch,) = figures[-1].axes[0].patches
    edges, counts = _step_counts(patch)
    assert counts[0] == 10 and counts.sum() == 10 and edges[0] == 1  # every query at rank 1


def test_plot_rank_histogram_rejects_bad_ranks(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="ranks is empty"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={})
    with pytest.raises(ParameterError, match="ranks\\['a'\\] is empty"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={"a": np.array([], int)})
    with pytest.raises(ParameterError, match="negative or fractional"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={"a": np.array([0, -1])})


def _history(n: int) -> list[dict]:
    return [
        {
            "epoch": i + 1,
            "step": 0,
            "global_step": 10 * (i + 1),
            "train_loss": 4.0 - 0.2 * i,
            "val_loss": 4.1 - 0.1 * i,
            "m2d/AVG": -50 + 3.0 * i,
            "d2m/AVG": -52 + 2.5 * i,
            "saved_best": i % 2 == 0,
        }
        for i in range(n)
    ]


def test_plot_training_history(tmp_path: Path, figures: list[Figure]) -> None:
    history = _history(6)
    out = plots.plot_training_history(path=tmp_path / "hist.png", history=history)
    _assert_png(out, tmp_path / "hist.png", figures[-1], colours=(BLUE,))
    loss_ax, avg_ax = figures[-1].axes
    lines = {line.get_label(): line for ax in (loss_ax, avg_ax) for line in ax.get_lines()}
    for key in ("train_loss", "val_loss", "m2d/AVG"):  # x = global step, y = the metric
        np.testing.assert_allclose(lines[key].get_xdata(), [h["global_step"] for h in history])
        np.testing.assert_allclose(lines[key].get_ydata(), [h[key] for h in history])
    best = [line for line in loss_ax.get_lines() if line.get_label().startswith("_")]
    assert [line.get_xdata()[0] for line in best] == [50.0]  # the last validation that saved a best checkpoint
    one = plots.plot_training_history(path=tmp_path / "one.png", history=[{"epoch": 1, "loss": 3.0}], metrics=("loss",))
    _assert_png(one, tmp_path / "one.png", figures[-1])
    both = plots.plot_training_history(path=tmp_path / "both.png", history=_history(3), metrics=("AVG",))
    _assert_png(both, tmp_path / "both.png", figures[-1])
    labels = sorted(line.get_label() for line in figures[-1].axes[0].get_lines())
    assert labels[-2:] == ["d2m/AVG", "m2d/AVG"] and len(labels) == 3  # and the best-checkpoint marker
    assert plots._metric_keys(_history(1), "AVG") == ["d2m/AVG", "m2d/AVG"]
    assert plots._metric_keys(_history(1), "loss") == ["train_loss", "val_loss"]


def test_plot_training_history_rejects_empty_or_unknown(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="history is empty"):
        plots.plot_training_history(path=tmp_path / "h.png", history=[])
    with pytest.raises(ParameterError, match="\\['R@1'\\] are not in the history; expected some of .*'train_loss'"):
        plots.plot_training_history(path=tmp_path / "h.png", history=_history(2), metrics=("loss", "R@1"))
    with pytest.raises(ParameterError, match="metrics is empty"):
        plots.plot_training_history(path=tmp_path / "h.png", history=_history(2), metrics=())
