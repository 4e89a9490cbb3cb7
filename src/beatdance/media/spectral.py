"""Spectral analysis of decoded audio in numpy: STFT power, mel and chroma filter banks, dB scaling, spectral
flux, autocorrelation tempogram, spectral contrast and RMS.

These are the librosa 0.11 functions beatdance's music features are made of, written again with numpy
alone and checked against librosa in the tests (same values up to float rounding). librosa compiles or
loads a few dozen numba kernels when it is imported, which costs a fresh process about 3 s (more than
the whole search it serves); these take milliseconds to import. Conventions follow librosa's: centred
frames (frame ``t`` describes sample ``t * hop_length``), periodic Hann windows, Slaney mel scale and
area normalisation, power in dB relative to 1.0 with an 80-dB floor below the maximum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import soxr

from ..errors import ParameterError

_TINY32 = float(np.finfo(np.float32).tiny)


def hann_window(*, length: int) -> np.ndarray:
    """The periodic Hann window (float64) used by STFTs: ``0.5 - 0.5 cos(2 pi n / length)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def frames(x: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Read-only view ``(frame_length, n_frames)`` of the 1-D signal ``x`` cut into frames every ``hop_length``."""
    if x.shape[-1] < frame_length:
        raise ParameterError(
            f"A signal of {x.shape[-1]} samples is shorter than one frame of {frame_length}. Use a longer signal."
        )
    return np.lib.stride_tricks.sliding_window_view(x, frame_length)[::hop_length].T


def stft_power(*, y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Power spectrogram ``|STFT|^2`` (float32, ``(1 + n_fft // 2, 1 + len(y) // hop_length)``) of centred frames.

    The signal is zero-padded by ``n_fft // 2`` on both sides (librosa's ``pad_mode="constant"``).
    """
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    cut = frames(padded, frame_length=n_fft, hop_length=hop_length)
    spectrum = np.fft.rfft(hann_window(length=n_fft)[:, None] * cut, axis=0).astype(np.complex64)
    return np.abs(spectrum) ** 2


def fft_frequencies_hz(*, sr: int, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each STFT bin."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    mel[log] = 15.0 + np.log(hz[log] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = mel * (200.0 / 3)
    log = mel >= 15.0
    hz[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log] - 15.0))
    return hz


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    *, sr: int, n_fft: int, n_mels: int, fmin_hz: float = 0.0, fmax_hz: float | None = None
) -> np.ndarray:
    """Triangular Slaney mel filters (float32, ``(n_mels, 1 + n_fft // 2)``), each scaled to unit area in Hz."""
    fmax_hz = sr / 2 if fmax_hz is None else fmax_hz
    edges_hz = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([fmin_hz]))[0], _hz_to_mel(np.array([fmax_hz]))[0], n_mels + 2)
    )
    ramps = np.subtract.outer(edges_hz, fft_frequencies_hz(sr=sr, n_fft=n_fft))
    widths = np.diff(edges_hz)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=16)
def chroma_filterbank(*, sr: int, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """Chroma filters (float32, ``(n_chroma, 1 + n_fft // 2)``, row 0 = C, A4 = 440 Hz, no tuning offset).

    Each STFT bin spreads over the pitch classes with a Gaussian as wide as the bin (in pitch-class
    units), the columns are scaled to unit L2 norm, and a Gaussian over octaves (centre octave 5, width 2)
    fades very low and very high bins, as in Ellis' chromagram and librosa's ``filters.chroma``.
    """
    freqs = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = n_chroma * np.log2(freqs / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1.0]))
    half = np.round(n_chroma / 2)
    distance = np.subtract.outer(bins, np.arange(n_chroma, dtype=np.float64)).T
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / widths[None, :]) ** 2)
    weights = normalize(weights, norm=2.0, axis=0)
    weights *= np.exp(-0.5 * ((bins / n_chroma - 5.0) / 2.0) ** 2)[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    out = np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)
    out.setflags(write=False)
    return out


def normalize(x: np.ndarray, *, norm: float, axis: int) -> np.ndarray:
    """``x`` divided by its ``norm`` (``np.inf`` = max-abs, or a p-norm) along ``axis``; all-zero slices stay zero."""
    magnitude = np.abs(x).astype(np.float64)
    if norm == np.inf:
        length = magnitude.max(axis=axis, keepdims=True)
    else:
        length = np.sum(magnitude**norm, axis=axis, keepdims=True) ** (1.0 / norm)
    tiny = np.finfo(x.dtype).tiny if np.issubdtype(x.dtype, np.floating) else _TINY32
    length[length < tiny] = 1.0
    out = np.empty_like(x)
    out[:] = x / length
    return out


def power_to_db(power: np.ndarray, *, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(amin, power))`` (power relative to 1.0), floored ``top_db`` below the array's maximum."""
    db = 10.0 * np.log10(np.maximum(amin, power))
    db -= 10.0 * np.log10(max(amin, 1.0))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def spectral_flux(
    *,
    db: np.ndarray,
    n_fft: int,
    hop_length: int,
    lag: int = 1,
    max_size: int = 1,
    aggregate: Callable[..., np.ndarray] = np.mean,
) -> np.ndarray:
    """Onset strength: the positive rise of each band of ``db`` over ``lag`` frames, aggregated over bands.

    With ``max_size`` > 1 the rise is measured against a maximum over that many neighbouring bands
    (vibrato suppression). The envelope is shifted to line up with centred STFT frames and has one value
    per column of ``db``.
    """
    reference = db if max_size == 1 else _band_maximum(db, size=max_size)
    rise = np.maximum(0.0, db[:, lag:] - reference[:, :-lag])
    envelope = aggregate(rise, axis=0)
    envelope = np.pad(envelope, (lag + n_fft // (2 * hop_length), 0))
    return envelope[: db.shape[1]]


def _band_maximum(x: np.ndarray, *, size: int) -> np.ndarray:
    """Maximum over ``size`` neighbouring rows, mirroring the edges (scipy's ``maximum_filter1d`` on axis 0)."""
    padded = np.pad(x, ((size // 2, (size - 1) // 2), (0, 0)), mode="symmetric")
    return np.lib.stride_tricks.sliding_window_view(padded, size, axis=0).max(axis=-1)


def tempogram(*, envelope: np.ndarray, win_length: int) -> np.ndarray:
    """Local autocorrelation of an onset envelope (float64, ``(win_length, len(envelope))``), 1 at lag 0.

    Each column is the Hann-windowed autocorrelation of the ``win_length`` frames centred on it; the
    envelope is padded with linear ramps down to 0 at both ends.
    """
    n = envelope.shape[-1]
    half = win_length // 2
    padded = np.pad(envelope, (half, half), mode="linear_ramp", end_values=(0, 0))
    cut = frames(padded, frame_length=win_length, hop_length=1)[:, :n]
    windowed = cut * hann_window(length=win_length)[:, None]
    n_pad = _next_fast_length(2 * win_length - 1)
    power = np.abs(np.fft.rfft(windowed, n=n_pad, axis=0)) ** 2
    autocorrelation = np.fft.irfft(power, n=n_pad, axis=0)[:win_length]
    return normalize(autocorrelation, norm=np.inf, axis=0)


def _next_fast_length(n: int) -> int:
    """The smallest 2-3-5-smooth integer >= n (an FFT length without large prime factors)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def tempo_frequencies_bpm(*, n_lags: int, hop_length: int, sr: int) -> np.ndarray:
    """Tempo (BPM) of each autocorrelation lag; lag 0 is infinite."""
    bpm = np.full(n_lags, np.inf)
    bpm[1:] = 60.0 * sr / (hop_length * np.arange(1.0, n_lags))
    return bpm


def spectral_contrast(
    *, magnitude: np.ndarray, sr: int, n_fft: int, fmin_hz: float, n_bands: int, quantile: float = 0.02
) -> np.ndarray:
    """Peak minus valley (dB) in each of ``n_bands`` octave bands above ``fmin_hz`` plus the rest (``n_bands + 1`` rows).

    Peak and valley are the means of the top and bottom ``quantile`` of each band's magnitudes, per frame.
    """
    freqs = fft_frequencies_hz(sr=sr, n_fft=n_fft)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin_hz * 2.0 ** np.arange(n_bands + 1)
    valley = np.zeros((n_bands + 1, magnitude.shape[1]))
    peak = np.zeros_like(valley)
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        band = (freqs >= low) & (freqs <= high)
        inside = np.flatnonzero(band)
        if k > 0:
            band[inside[0] - 1] = True
        if k == n_bands:
            band[inside[-1] + 1 :] = True
        rows = magnitude[band]
        if k < n_bands:
            rows = rows[:-1]
        count = max(int(np.rint(quantile * np.sum(band))), 1)
        ordered = np.sort(rows, axis=0)
        valley[k] = ordered[:count].mean(axis=0)
        peak[k] = ordered[-count:].mean(axis=0)
    return power_to_db(peak) - power_to_db(valley)


def rms_from_magnitude(*, magnitude: np.ndarray, frame_length: int) -> np.ndarray:
    """RMS of each frame (``(1, n_frames)``) from its STFT magnitudes (Parseval, DC and Nyquist counted once)."""
    power = magnitude**2
    power[0] *= 0.5
    if frame_length % 2 == 0:
        power[-1] *= 0.5
    return np.sqrt(2 * np.sum(power, axis=0, keepdims=True) / frame_length**2)


def resample(*, y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``y`` resampled with soxr (high quality) to exactly ``ceil(len(y) * target_sr / orig_sr)`` samples."""
    if orig_sr == target_sr:
        return y
    n_out = int(np.ceil(y.shape[-1] * float(target_sr) / orig_sr))
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] >= n_out:
        return np.asarray(out[:n_out], dtype=y.dtype)
    return np.pad(out, (0, n_out - out.shape[-1])).astype(y.dtype)


def smooth_gaussian(x: np.ndarray, *, sigma: float) -> np.ndarray:
    """``x`` (1-D) convolved with a unit-sum Gaussian of ``sigma`` samples cut at 4 sigma, edges repeated.

    scipy's ``ndimage.gaussian_filter1d(x, sigma, mode="nearest")``, without scipy.ndimage's import cost.
    """
    radius = int(4.0 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    return np.convolve(np.pad(np.asarray(x, dtype=np.float64), radius, mode="edge"), kernel, mode="valid")
