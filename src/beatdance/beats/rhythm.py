"""Rhythm features on a shared log-tempo axis, for music and dance alike.

Both modalities are described on one axis of log2 tempo (``RhythmConfig``: 20-480 BPM, 48 bins per
octave, so a waltz danced once a bar at 28 BPM is on it). On that axis a metre ratio is a fixed shift: a
dancer stepping once a bar in 3/4 sits ``log2 3`` octaves below the music's beat, a dancer on every other
beat one octave below. The model's
rhythm branch (``model.rhythm``) learns which shifts each style uses.

A clip's rhythm array has ``RHYTHM_CHANNELS`` rows over the axis:

0. ``tempo``: the track's tempo (music: the tracked beat period over the whole track; dance: the
   dominant period of the whole take) as a Gaussian bump of ``peak_sigma_octaves``. Precision is the
   point: songs of one style differ in tempo by 1-4 %, which a tempogram of a 10-s window cannot
   resolve but the period of a whole track can.
1. ``track tempogram``: the Fourier tempogram of the whole track's envelope (music: onset strength;
   dance: joint speed), sampled on the axis. It also carries the metre: a waltz's bar period shows as a
   peak one third of the beat's tempo.
2. ``window tempogram``: the same for the clip's own window only.

Tempograms are magnitudes of the Hann-windowed Fourier transform evaluated at each bin's frequency
(not an FFT grid, so the bins are exactly log-spaced), scaled to a maximum of 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..media.spectral import smooth_gaussian

RHYTHM_CHANNELS = ("tempo", "track tempogram", "window tempogram")
_CHUNK_BINS = 16  # tempogram bins evaluated at once: bounds memory to 16 x samples complex values


@dataclass(frozen=True)
class RhythmConfig:
    """The log-tempo axis and how peaks are drawn on it; ``to_dict()`` is stored with the features.

    ``detrend_s``: envelopes minus a Gaussian-smoothed copy of this sigma before the transform, so a
    slow swell of loudness or energy is no tempo.
    """

    min_bpm: float = 20.0
    max_bpm: float = 480.0
    bins_per_octave: int = 48
    peak_sigma_octaves: float = 0.02
    detrend_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_bpm < self.max_bpm:
            raise ParameterError(
                f"RhythmConfig min_bpm={self.min_bpm}, max_bpm={self.max_bpm}: need 0 < min < max, e.g. 20 and 480."
            )
        if int(self.bins_per_octave) != self.bins_per_octave or self.bins_per_octave < 6:
            raise ParameterError(
                f"RhythmConfig.bins_per_octave={self.bins_per_octave} must be a whole number >= 6 "
                "(24 or more resolves tempo to a few percent)."
            )
        for name in ("peak_sigma_octaves", "detrend_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"RhythmConfig.{name}={getattr(self, name)} must be > 0.")

    @property
    def num_bins(self) -> int:
        return int(np.floor(np.log2(self.max_bpm / self.min_bpm) * self.bins_per_octave)) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tempo_axis_bpm(config: RhythmConfig = RhythmConfig()) -> np.ndarray:
    """BPM at the centre of each bin (float64, ascending, ``config.num_bins`` values)."""
    return config.min_bpm * 2.0 ** (np.arange(config.num_bins) / config.bins_per_octave)


def log_tempogram(*, envelope: np.ndarray, envelope_fps: float, config: RhythmConfig = RhythmConfig()) -> np.ndarray:
    """Fourier tempogram of ``envelope`` (one value per frame at ``envelope_fps``) on the log-tempo axis.

    float32 (num_bins,), scaled to a maximum of 1; all zeros for a flat or too-short envelope.
    """
    if not envelope_fps > 0:
        raise ParameterError(f"envelope_fps={envelope_fps} must be a positive frame rate.")
    x = np.asarray(envelope, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"envelope has {int((~np.isfinite(x)).sum())} non-finite values; expected finite values.")
    out = np.zeros(config.num_bins, dtype=np.float32)
    if x.size < 4:
        return out
    x = x - smooth_gaussian(x, sigma=config.detrend_s * envelope_fps)
    x = (x - x.mean()) * np.hanning(x.size)
    if not np.any(np.abs(x) > 0):
        return out
    t = np.arange(x.size) / envelope_fps
    hz = tempo_axis_bpm(config) / 60.0
    for a in range(0, hz.size, _CHUNK_BINS):
        phase = np.exp(-2j * np.pi * np.outer(hz[a : a + _CHUNK_BINS], t))
        out[a : a + _CHUNK_BINS] = np.abs(phase @ x)
    peak = float(out.max())
    return out / peak if peak > 0 else out


def tempo_bump(*, tempo_bpm: float, config: RhythmConfig = RhythmConfig()) -> np.ndarray:
    """A Gaussian of ``config.peak_sigma_octaves`` at log2 ``tempo_bpm`` on the axis (float32, peak 1 at the
    exact tempo, between bins too); zeros for tempo 0 (no tempo found)."""
    if not np.isfinite(tempo_bpm) or tempo_bpm < 0:
        raise ParameterError(f"tempo_bpm={tempo_bpm}; expected a finite tempo >= 0 (0: none found).")
    if tempo_bpm == 0:
        return np.zeros(config.num_bins, dtype=np.float32)
    octaves = np.log2(tempo_axis_bpm(config) / tempo_bpm)
    return np.exp(-0.5 * (octaves / config.peak_sigma_octaves) ** 2).astype(np.float32)


def peak_tempo_bpm(values: np.ndarray, *, config: RhythmConfig = RhythmConfig()) -> float:
    """The tempo of the highest bin of a tempogram, refined by a parabola through its neighbours; 0 if flat."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (config.num_bins,):
        raise ParameterError(f"values has shape {v.shape}; expected ({config.num_bins},) on this config's axis.")
    k = int(np.argmax(v))
    return bin_tempo_bpm(v, k, config=config) if v[k] > 0 else 0.0


def bin_tempo_bpm(values: np.ndarray, k: int, *, config: RhythmConfig = RhythmConfig()) -> float:
    """The tempo of bin ``k`` of a tempogram, refined by a parabola through it and its neighbours (when bin ``k``
    is above them: a local peak)."""
    offset = 0.0
    if 0 < k < values.size - 1:
        a, b, c = (float(x) for x in values[k - 1 : k + 2])
        curvature = a - 2 * b + c
        offset = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
    return float(config.min_bpm * 2.0 ** ((k + offset) / config.bins_per_octave))


@dataclass
class TrackRhythm:
    """The whole-track part of a rhythm array: the tempo bump and the track tempogram (float32 rows)."""

    tempo_bpm: float
    tempo: np.ndarray
    tempogram: np.ndarray


def track_rhythm(
    *, envelope: np.ndarray, envelope_fps: float, tempo_bpm: float, config: RhythmConfig = RhythmConfig()
) -> TrackRhythm:
    """Rows 0 and 1 of every window's rhythm array, computed once per track."""
    return TrackRhythm(
        tempo_bpm=float(tempo_bpm),
        tempo=tempo_bump(tempo_bpm=tempo_bpm, config=config),
        tempogram=log_tempogram(envelope=envelope, envelope_fps=envelope_fps, config=config),
    )


def window_rhythm(
    track: TrackRhythm,
    *,
    envelope: np.ndarray,
    envelope_fps: float,
    start_s: float,
    window_s: float,
    config: RhythmConfig = RhythmConfig(),
) -> np.ndarray:
    """The (RHYTHM_CHANNELS, num_bins) rhythm array of the window [start_s, start_s + window_s) of a track."""
    a = max(0, int(round(start_s * envelope_fps)))
    part = np.asarray(envelope)[a : a + int(round(window_s * envelope_fps))]
    own = log_tempogram(envelope=part, envelope_fps=envelope_fps, config=config)
    return np.stack([track.tempo, track.tempogram, own]).astype(np.float32)
