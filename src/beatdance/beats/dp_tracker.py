"""Global tempo from the autocorrelation tempogram, and Ellis' (2007) dynamic-programming beat tracker.

Written in numpy to give librosa 0.11's ``feature.tempo`` and ``beat.beat_track`` results (checked
against them in the tests), because importing ``librosa.beat`` compiles numba kernels every time (about
1.5 s of a fresh search). The tracker scores every frame by the onset envelope smoothed with a Gaussian
one beat wide, then finds the best chain of beats where each gap costs ``tightness`` times its squared log
distance from the tempo's period; weak beats at both ends are trimmed.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..media.spectral import tempo_frequencies_bpm, tempogram


def estimate_tempo_bpm(
    *,
    envelope: np.ndarray,
    sr: int,
    hop_length: int,
    start_bpm: float,
    std_octaves: float | None,
    ac_size_s: float,
    max_tempo_bpm: float,
) -> float:
    """The tempo whose lag maximises the mean tempogram times a prior, below ``max_tempo_bpm``.

    The prior is log-normal around ``start_bpm`` with ``std_octaves`` octaves of spread, or flat up to
    ``max_tempo_bpm`` when ``std_octaves`` is None.
    """
    win_length = int(ac_size_s * sr) // hop_length
    strength = tempogram(envelope=envelope, win_length=win_length).mean(axis=1)
    bpm = tempo_frequencies_bpm(n_lags=win_length, hop_length=hop_length, sr=sr)
    with np.errstate(divide="ignore"):
        if std_octaves is None:
            log_prior = np.where((bpm >= 0) & (bpm <= max_tempo_bpm), -np.log(max_tempo_bpm), -np.inf)
        else:
            log_prior = -0.5 * ((np.log2(bpm) - np.log2(start_bpm)) / std_octaves) ** 2
    log_prior[: int(np.argmax(bpm < max_tempo_bpm))] = -np.inf
    return float(bpm[int(np.argmax(np.log1p(1e6 * strength) + log_prior))])


def track_beats(*, envelope: np.ndarray, fps: float, bpm: float, tightness: float, trim: bool) -> np.ndarray:
    """Beat frames (int64, ascending) in the onset ``envelope`` (``fps`` values per second) at about ``bpm``."""
    if bpm <= 0 or tightness <= 0:
        raise ParameterError(f"bpm={bpm} and tightness={tightness} must be strictly positive.")
    envelope = np.asarray(envelope, dtype=np.float32)
    if not envelope.any():
        return np.zeros(0, dtype=np.int64)
    period = float(np.round(fps * 60.0 / bpm))
    normalised = (envelope / (envelope.std(ddof=1) + np.finfo(np.float32).tiny)).astype(np.float64)
    local = _local_score(normalised, period=int(period))
    backlink, cumulative = _dynamic_program(local, period=period, tightness=float(np.float32(tightness)))
    beats = np.zeros(envelope.shape, dtype=bool)
    frame = _last_beat(cumulative)
    while frame >= 0:
        beats[frame] = True
        frame = backlink[frame]
    return np.flatnonzero(_trimmed(local, beats, trim=trim))


def _local_score(envelope: np.ndarray, *, period: int) -> np.ndarray:
    """The envelope convolved ('same' size) with a Gaussian of width period / 32 spanning +- one period."""
    window = np.exp(-0.5 * (np.arange(-period, period + 1) * 32.0 / period) ** 2)
    return np.convolve(envelope, window, mode="same")


def _dynamic_program(local: np.ndarray, *, period: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """Best predecessor of each frame (-1: none) and the cumulative score of the best chain ending there.

    A predecessor lies between 2 periods and half a period back (the nearest wins ties). Until the first
    frame whose local score reaches 1 % of the maximum, no chain starts.
    """
    n = local.shape[0]
    backlink = np.full(n, -1, dtype=np.int64)
    cumulative = np.zeros(n, dtype=np.float64)
    nearest, farthest = int(np.round(period / 2)), int(2 * period)
    gaps = np.arange(nearest, farthest + 1)
    penalty = tightness * (np.log(gaps) - np.log(period)) ** 2
    threshold = 0.01 * float(local.max())
    started = False
    for i in range(n):
        first = i - nearest
        best, where = -np.inf, -1
        if first >= 0:
            last = max(i - farthest, 0)
            candidates = cumulative[last : first + 1][::-1] - penalty[: first - last + 1]
            k = int(np.argmax(candidates))
            best, where = candidates[k], first - k
        cumulative[i] = local[i] + best if where >= 0 else local[i]
        if started or local[i] >= threshold:
            backlink[i] = where
            started = True
    return backlink, cumulative


def _last_beat(cumulative: np.ndarray) -> int:
    """The last local maximum of the cumulative score that reaches half the median of all its local maxima."""
    peaks = np.zeros(cumulative.shape, dtype=bool)
    peaks[1:-1] = (cumulative[1:-1] > cumulative[:-2]) & (cumulative[1:-1] >= cumulative[2:])
    peaks[-1] = cumulative[-1] > cumulative[-2] if cumulative.size > 1 else False
    if not peaks.any():
        return cumulative.shape[0] - 1
    threshold = 0.5 * float(np.median(cumulative[peaks]))
    good = np.flatnonzero(peaks & (cumulative >= threshold))
    return int(good[-1]) if good.size else cumulative.shape[0] - 1


def _trimmed(local: np.ndarray, beats: np.ndarray, *, trim: bool) -> np.ndarray:
    """``beats`` without the frames at either end whose local score is at most half the beats' smoothed RMS.

    Without ``trim`` the threshold is 0, so only beats on silence at the ends go.
    """
    out = beats.copy()
    threshold = 0.0
    if trim:
        smooth = np.convolve(local[beats], np.hanning(5))[2 : local.shape[0] + 2]
        threshold = 0.5 * float(np.sqrt(np.mean(smooth**2)))
    low = local <= threshold
    start = int(np.argmin(low)) if not low.all() else local.shape[0]
    out[:start] = False
    end = local.shape[0] - int(np.argmin(low[::-1])) if not low.all() else 0
    out[end:] = False
    return out
