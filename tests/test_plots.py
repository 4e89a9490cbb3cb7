"""Every figure writes a real PNG, for normal and edge inputs, and bad inputs raise ParameterError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from beatdance import plots
from beatdance.errors import ParameterError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG after checking its signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _assert_png(result: Path, expected: Path, *, min_width: int = 500) -> None:
    assert result == expected and expected.is_file()
    width, height = _png_size(expected)
    assert width >= min_width and height >= 150
    assert expected.stat().st_size > 2000


def test_plot_beats_with_and_without_waveform(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    env = np.abs(rng.normal(size=500))
    out = plots.plot_beats(path=tmp_path / "beats.png", envelope=env, envelope_fps=50.0,
                           beat_times_s=np.arange(0.5, 10, 0.5), tempo_bpm=120.0, title="song",
                           waveform=rng.normal(size=220500).astype(np.float32), sr=22050)
    _assert_png(out, tmp_path / "beats.png")
    short = plots.plot_beats(path=tmp_path / "sub" / "plain.png", envelope=env[:3], envelope_fps=10.0,
                             beat_times_s=np.array([]), tempo_bpm=None, title="")
    _assert_png(short, tmp_path / "sub" / "plain.png")
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


@pytest.mark.parametrize(("music", "dance", "offset_s", "score"), [
    (np.arange(0.5, 10, 0.5), np.arange(0.55, 10, 0.5), 0.0, 0.93),
    (np.arange(0.5, 10, 0.5), np.array([2.0, 7.3]), -0.25, None),
    (np.array([]), np.array([1.0]), 0.0, 0.0),
    (np.array([]), np.array([]), 0.0, None),
])
def test_plot_beat_alignment(tmp_path: Path, music: np.ndarray, dance: np.ndarray, offset_s: float,
                             score: float | None) -> None:
    out = plots.plot_beat_alignment(path=tmp_path / "ba.png", music_beats_s=music, dance_beats_s=dance,
                                    duration_s=10.0, offset_s=offset_s, score=score, title="pair 7")
    _assert_png(out, tmp_path / "ba.png")


def test_plot_beat_alignment_rejects_bad_duration(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="duration_s=0"):
        plots.plot_beat_alignment(path=tmp_path / "ba.png", music_beats_s=[1.0], dance_beats_s=[1.0], duration_s=0)


def test_plot_recall_curves(tmp_path: Path) -> None:
    curves = {
        "m2d": {"R@1": 2.5, "R@5": 9.0, "R@10": 15.2, "R@50": 43.0, "R@100": 60.1, "MedR": 71.0},
        "d2m": {"R@1": 2.1, "R@10": 14.0, "R@100": 58.0},
    }
    _assert_png(plots.plot_recall_curves(path=tmp_path / "r.png", curves=curves, title="test"), tmp_path / "r.png")


def test_plot_recall_curves_rejects_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="curves is empty"):
        plots.plot_recall_curves(path=tmp_path / "r.png", curves={})
    with pytest.raises(ParameterError, match="Curve 'm2d' has no R@K values .*'MedR'"):
        plots.plot_recall_curves(path=tmp_path / "r.png", curves={"m2d": {"MedR": 3.0}})


def test_plot_rank_histogram(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ranks = {"plain": rng.integers(0, 1212, size=1212), "qb-norm": rng.integers(0, 600, size=1212)}
    _assert_png(plots.plot_rank_histogram(path=tmp_path / "h.png", ranks=ranks), tmp_path / "h.png")
    all_top = plots.plot_rank_histogram(path=tmp_path / "top.png", ranks={"perfect": np.zeros(10, int)}, title="ideal")
    _assert_png(all_top, tmp_path / "top.png")


def test_plot_rank_histogram_rejects_bad_ranks(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="ranks is empty"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={})
    with pytest.raises(ParameterError, match="ranks\\['a'\\] is empty"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={"a": np.array([], int)})
    with pytest.raises(ParameterError, match="negative or fractional"):
        plots.plot_rank_histogram(path=tmp_path / "h.png", ranks={"a": np.array([0, -1])})


def _history(n: int) -> list[dict]:
    return [{"epoch": i + 1, "step": 0, "global_step": 10 * (i + 1), "train_loss": 4.0 - 0.2 * i,
             "val_loss": 4.1 - 0.1 * i, "m2d/AVG": -50 + 3.0 * i, "d2m/AVG": -52 + 2.5 * i, "saved_best": i % 2 == 0}
            for i in range(n)]


def test_plot_training_history(tmp_path: Path) -> None:
    out = plots.plot_training_history(path=tmp_path / "hist.png", history=_history(6))
    _assert_png(out, tmp_path / "hist.png")
    one = plots.plot_training_history(path=tmp_path / "one.png", history=[{"epoch": 1, "loss": 3.0}], metrics=("loss",))
    _assert_png(one, tmp_path / "one.png")
    both = plots.plot_training_history(path=tmp_path / "both.png", history=_history(3), metrics=("AVG",))
    _assert_png(both, tmp_path / "both.png")
    assert plots._metric_keys(_history(1), "AVG") == ["d2m/AVG", "m2d/AVG"]
    assert plots._metric_keys(_history(1), "loss") == ["train_loss", "val_loss"]


def test_plot_training_history_rejects_empty_or_unknown(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="history is empty"):
        plots.plot_training_history(path=tmp_path / "h.png", history=[])
    with pytest.raises(ParameterError, match="\\['R@1'\\] are not in the history; expected some of .*'train_loss'"):
        plots.plot_training_history(path=tmp_path / "h.png", history=_history(2), metrics=("loss", "R@1"))
    with pytest.raises(ParameterError, match="metrics is empty"):
        plots.plot_training_history(path=tmp_path / "h.png", history=_history(2), metrics=())
