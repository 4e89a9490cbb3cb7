"""Rhythm features on the log-tempo axis: tempogram peaks where the tempo is, stretches are shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdance.beats.dance import DanceBeatConfig, speed_envelope
from beatdance.beats.music import MusicBeatConfig, onset_envelope
from beatdance.beats.rhythm import (
    RHYTHM_CHANNELS,
    RhythmConfig,
    log_tempogram,
    peak_tempo_bpm,
    tempo_axis_bpm,
    tempo_bump,
    track_rhythm,
    window_rhythm,
)
from beatdance.errors import ParameterError
from beatdance.media.types import Motion
from beatdance.model.rhythm import shift_bins

SR = 22050


def _clicks(bpm: float, *, seconds: float = 30.0) -> np.ndarray:
    """Decaying 1-kHz clicks at ``bpm``, an accent every fourth."""
    y = np.zeros(int(seconds * SR), np.float32)
    t = np.arange(int(0.03 * SR)) / SR
    click = np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.005)
    for k, start in enumerate(np.arange(0.1, seconds - 0.1, 60.0 / bpm)):
        a = int(start * SR)
        y[a : a + click.size] += (1.0 if k % 4 == 0 else 0.6) * click
    return y


def _swinging_arm(bpm: float, *, seconds: float = 30.0, fps: float = 25.0) -> Motion:
    """A 13-joint body whose right wrist swings back and forth once per beat (two stops per period)."""
    n = int(seconds * fps)
    joints = np.zeros((n, 13, 2), np.float32)
    joints[:, :, 1] = np.linspace(0.0, 1.0, 13)[None, :]  # a vertical body of unit height
    joints[:, 5, 0] += 0.4 * np.sin(np.pi * (bpm / 60.0) * np.arange(n) / fps)  # one stop per beat
    return Motion(joints=joints, fps=fps, skeleton="body13")


@pytest.mark.parametrize("bpm", [72.0, 97.0, 131.0])
def test_music_tempogram_peaks_at_the_click_tempo(bpm):
    cfg = MusicBeatConfig()
    env = onset_envelope(y=_clicks(bpm), config=cfg)
    tg = log_tempogram(envelope=env, envelope_fps=cfg.sr / cfg.hop_length)
    found = peak_tempo_bpm(tg)
    octave = round(np.log2(found / bpm))  # the onset tempogram may peak at an octave (bar or half beat)
    assert octave in (-2, -1, 0, 1)
    assert found / 2.0**octave == pytest.approx(bpm, rel=0.02)
    assert tg[np.argmin(np.abs(tempo_axis_bpm() - bpm))] > 0.5  # and the beat tempo itself is strong


@pytest.mark.parametrize("bpm", [28.0, 45.0, 90.0])
def test_dance_tempogram_peaks_at_the_motion_tempo(bpm):
    motion = _swinging_arm(bpm)
    env = speed_envelope(motion=motion, config=DanceBeatConfig())
    found = peak_tempo_bpm(log_tempogram(envelope=env, envelope_fps=motion.fps))
    assert found == pytest.approx(bpm, rel=0.02)


def test_a_stretch_of_ten_percent_shifts_the_tempogram_by_log2_of_it():
    cfg = MusicBeatConfig()
    fps = cfg.sr / cfg.hop_length
    slow, fast = (
        log_tempogram(envelope=onset_envelope(y=_clicks(b), config=cfg), envelope_fps=fps) for b in (100.0, 110.0)
    )
    bins = RhythmConfig().bins_per_octave
    lags = np.arange(-20, 21)
    corr = [float(np.dot(np.roll(slow, k), fast)) for k in lags]
    assert lags[int(np.argmax(corr))] == round(np.log2(1.1) * bins)  # 6.6 bins -> 7
    moved = shift_bins(torch.from_numpy(slow)[None, None], torch.tensor([np.log2(1.1)]), bins_per_octave=bins)[0, 0]
    assert peak_tempo_bpm(moved.numpy()) == pytest.approx(peak_tempo_bpm(fast), rel=0.01)


def test_tempo_bump_is_precise_between_bins_and_empty_without_a_tempo():
    for bpm in (29.0, 87.3, 123.45):
        assert peak_tempo_bpm(tempo_bump(tempo_bpm=bpm)) == pytest.approx(bpm, rel=0.003)
    assert not tempo_bump(tempo_bpm=0.0).any()
    with pytest.raises(ParameterError, match="tempo_bpm"):
        tempo_bump(tempo_bpm=float("nan"))


def test_window_rhythm_stacks_the_track_rows_and_its_own_tempogram():
    cfg = MusicBeatConfig()
    fps = cfg.sr / cfg.hop_length
    env = onset_envelope(y=np.concatenate([_clicks(90.0, seconds=20.0), _clicks(120.0, seconds=20.0)]), config=cfg)
    track = track_rhythm(envelope=env, envelope_fps=fps, tempo_bpm=100.0)
    first, second = (
        window_rhythm(track, envelope=env, envelope_fps=fps, start_s=s, window_s=10.0) for s in (5.0, 25.0)
    )
    assert first.shape == (len(RHYTHM_CHANNELS), RhythmConfig().num_bins) and first.dtype == np.float32
    np.testing.assert_array_equal(first[:2], second[:2])  # track rows: the same for every window
    assert peak_tempo_bpm(first[0]) == pytest.approx(100.0, rel=0.003)
    axis = tempo_axis_bpm()
    at = {b: int(np.argmin(np.abs(axis - b))) for b in (90.0, 120.0)}
    assert first[2, at[90.0]] > first[2, at[120.0]] and second[2, at[120.0]] > second[2, at[90.0]]


def test_config_and_input_errors_name_the_fix():
    with pytest.raises(ParameterError, match="bins_per_octave"):
        RhythmConfig(bins_per_octave=3)
    with pytest.raises(ParameterError, match="min_bpm"):
        RhythmConfig(min_bpm=500.0)
    with pytest.raises(ParameterError, match="non-finite"):
        log_tempogram(envelope=np.array([1.0, np.nan, 2.0, 3.0]), envelope_fps=10.0)
    assert not log_tempogram(envelope=np.ones(500), envelope_fps=25.0).any()  # flat: no tempo
