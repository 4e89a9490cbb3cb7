"""Built-in music encoder "audio-mel": hand-made per-frame audio features, no weights needed.

Frame t describes the audio around ``t / fps`` seconds (centred STFT frames, hop ``sr / fps``), so a
10-s clip gives ``round(10 * fps)`` frames. Columns, for the defaults (dim 93):

=============  =====  ============================================================================
columns        count  content and scaling
=============  =====  ============================================================================
0 .. 63        64     log-mel power (dB), minus the clip's mean dB, divided by 20 dB. Subtracting
                      the clip mean makes it gain-invariant (a quieter master gives the same
                      features) while keeping the spectral shape and dynamics.
64             1      onset strength (spectral flux of the log-mel), z-scored over the clip: the
                      rhythm pattern matters, its absolute scale does not.
65 .. 76       12     chroma (C, C#, ..., B; A4 = 440 Hz), each frame scaled to max 1, mapped to [-1, 1]:
                      harmony and key.
77 .. 83       7      spectral contrast (6 octave bands + residual), z-scored per band over the clip:
                      peaky (tonal) versus flat (noisy) spectrum.
84 .. 91       8      tempogram summary: the onset autocorrelation (``tempo_window_s`` window,
                      1 at lag 0, so in [-1, 1]) averaged over 8 log-spaced tempo bands from 40 to
                      240 BPM: how strongly each tempo range pulses at this moment.
92             1      RMS energy (dB), minus the clip's mean, divided by 20 dB: loudness dynamics.
=============  =====  ============================================================================

Silence gives finite features (zeros after the z-scores). Everything is deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from ..errors import MediaError, ParameterError
from ..media import spectral
from ..media.types import MediaClip
from .registry import Encoder, register_encoder

_DB_SCALE = 20.0  # dB per feature unit of the level columns
_TOP_DB = 80.0  # floor of the log-mel and RMS, relative to the clip's loudest value
_EPS = 1e-8


@register_encoder("audio-mel")
class AudioMelEncoder(Encoder):
    """Log-mel, onset, chroma, spectral contrast, tempogram bands and RMS per frame; see the module table."""

    modality = "music"
    needs = frozenset({"audio"})

    def __init__(
        self,
        *,
        sr: int = 22050,
        fps: float = 25.0,
        n_mels: int = 64,
        n_fft: int = 2048,
        fmin_hz: float = 30.0,
        fmax_hz: float | None = None,
        contrast_bands: int = 6,
        contrast_fmin_hz: float = 200.0,
        tempo_window_s: float = 4.0,
        tempo_bands: int = 8,
        tempo_min_bpm: float = 40.0,
        tempo_max_bpm: float = 240.0,
    ) -> None:
        hop = sr / fps if fps > 0 else 0.0
        if sr <= 0 or fps <= 0 or hop != int(hop):
            raise ParameterError(
                f"sr={sr} and fps={fps} must be positive with an integer hop sr / fps (got {hop}). "
                "Pick fps dividing sr, e.g. sr=22050 with fps in {10, 25, 30, 50}."
            )
        nyquist = sr / 2
        if not 0 <= fmin_hz < (fmax_hz or nyquist) <= nyquist:
            raise ParameterError(
                f"Mel range fmin_hz={fmin_hz}, fmax_hz={fmax_hz} must satisfy 0 <= fmin < fmax <= sr/2 = {nyquist}."
            )
        if contrast_fmin_hz * 2 ** (contrast_bands - 1) >= nyquist:
            raise ParameterError(
                f"contrast_bands={contrast_bands} octaves above contrast_fmin_hz={contrast_fmin_hz} exceed sr/2={nyquist}. "
                "Use fewer bands or a lower contrast_fmin_hz."
            )
        self._settings: dict[str, Any] = {
            "sr": int(sr),
            "fps": float(fps),
            "n_mels": int(n_mels),
            "n_fft": int(n_fft),
            "fmin_hz": float(fmin_hz),
            "fmax_hz": None if fmax_hz is None else float(fmax_hz),
            "contrast_bands": int(contrast_bands),
            "contrast_fmin_hz": float(contrast_fmin_hz),
            "tempo_window_s": float(tempo_window_s),
            "tempo_bands": int(tempo_bands),
            "tempo_min_bpm": float(tempo_min_bpm),
            "tempo_max_bpm": float(tempo_max_bpm),
        }
        self._hop = int(hop)
        self._win = int(round(tempo_window_s * fps))
        self._tempo_lags = _tempo_band_lags(
            fps=fps, window=self._win, bands=tempo_bands, min_bpm=tempo_min_bpm, max_bpm=tempo_max_bpm
        )

    @property
    def dim(self) -> int:
        s = self._settings
        return s["n_mels"] + 1 + 12 + s["contrast_bands"] + 1 + s["tempo_bands"] + 1

    @property
    def fps(self) -> float:
        return self._settings["fps"]

    def config(self) -> dict[str, Any]:
        return {**super().config(), **self._settings}

    def encode(self, clip: MediaClip) -> np.ndarray:
        """Float32 (round(duration * fps), dim) features of the clip's audio; see the module table."""
        y = self._audio(clip)
        s = self._settings
        n_frames = int(round(len(y) / self._hop))
        power = spectral.stft_power(y=y, n_fft=s["n_fft"], hop_length=self._hop)
        magnitude = np.sqrt(power)
        mel = spectral.mel_filterbank(
            sr=s["sr"], n_fft=s["n_fft"], n_mels=s["n_mels"], fmin_hz=s["fmin_hz"], fmax_hz=s["fmax_hz"]
        )
        mel_db = spectral.power_to_db(mel @ power, top_db=_TOP_DB)
        onset = spectral.spectral_flux(db=mel_db, n_fft=s["n_fft"], hop_length=self._hop)
        chroma = spectral.normalize(
            spectral.chroma_filterbank(sr=s["sr"], n_fft=s["n_fft"]) @ power, norm=np.inf, axis=0
        )
        contrast = spectral.spectral_contrast(
            magnitude=magnitude,
            sr=s["sr"],
            n_fft=s["n_fft"],
            fmin_hz=s["contrast_fmin_hz"],
            n_bands=s["contrast_bands"],
        )
        tempogram = spectral.tempogram(envelope=onset, win_length=self._win)
        rms = spectral.rms_from_magnitude(magnitude=magnitude, frame_length=s["n_fft"])
        rms_db = spectral.power_to_db(rms**2, top_db=_TOP_DB)
        columns = [
            (mel_db - mel_db.mean()) / _DB_SCALE,
            _zscore(onset[None]),
            2.0 * chroma - 1.0,
            _zscore(contrast),
            np.stack([tempogram[lags].mean(axis=0) for lags in self._tempo_lags]),
            (rms_db - rms_db.mean()) / _DB_SCALE,
        ]
        feats = np.concatenate([c[:, :n_frames] for c in columns], axis=0).T
        assert feats.shape == (n_frames, self.dim), (feats.shape, n_frames, self.dim)
        return np.ascontiguousarray(feats, dtype=np.float32)

    def _audio(self, clip: MediaClip) -> np.ndarray:
        """The clip's mono audio at the encoder's rate, or MediaError when it is missing or too short."""
        name = clip.source or "<clip>"
        if clip.audio is None or not clip.sr:
            raise MediaError(
                f"{name}: the 'audio-mel' encoder needs the clip's audio and sample rate, but the clip has no audio. "
                "Load the music with beatdance.media.audio.load_audio, or use a source with a music track."
            )
        y = np.asarray(clip.audio, dtype=np.float32)
        if y.ndim != 1:
            raise MediaError(
                f"{name}: audio has shape {y.shape}; expected mono (n_samples,). Average the channels first."
            )
        if not np.all(np.isfinite(y)):
            raise MediaError(f"{name}: audio contains NaN or infinite samples. Check the decoder output.")
        if clip.sr != self._settings["sr"]:
            y = soxr.resample(y, clip.sr, self._settings["sr"], quality="HQ").astype(np.float32)
        if round(len(y) / self._hop) < 1:
            raise MediaError(
                f"{name}: {len(y)} samples at {self._settings['sr']} Hz are shorter than one {1000 / self.fps:.0f}-ms "
                "frame of the 'audio-mel' encoder. Use a longer clip."
            )
        return y


def _tempo_band_lags(*, fps: float, window: int, bands: int, min_bpm: float, max_bpm: float) -> list[np.ndarray]:
    """Autocorrelation lags (frames) in each of ``bands`` log-spaced tempo bands; each must hold at least one."""
    if not 0 < min_bpm < max_bpm or bands < 1:
        raise ParameterError(
            f"tempo_bands={bands}, tempo_min_bpm={min_bpm}, tempo_max_bpm={max_bpm}: need at least one band and "
            "0 < tempo_min_bpm < tempo_max_bpm."
        )
    lags = np.arange(1, window)
    bpm = 60.0 * fps / lags
    edges = np.geomspace(min_bpm, max_bpm, bands + 1)
    groups = [lags[(bpm >= lo) & (bpm < hi)] for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    if any(g.size == 0 for g in groups):
        raise ParameterError(
            f"Some of the {bands} tempo bands from {min_bpm} to {max_bpm} BPM hold no autocorrelation lag at fps={fps} "
            f"with a {window / fps:g}-s tempo window. Use fewer bands, a higher fps or a longer tempo_window_s."
        )
    return groups


def _zscore(x: np.ndarray) -> np.ndarray:
    """Each row standardised over time (mean 0, std 1); a constant row becomes zeros."""
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return np.where(std > _EPS, (x - mean) / np.maximum(std, _EPS), 0.0)
