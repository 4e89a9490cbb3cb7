"""The built-in "audio-mel" music encoder: shape, registry, determinism, content and errors."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.encoders import available_encoders, create_encoder
from beatdance.encoders.audio_mel import AudioMelEncoder
from beatdance.errors import MediaError, ParameterError
from beatdance.media.types import MediaClip

SR = 22050
CHROMA = slice(65, 77)


def clicks(*, bpm: float = 120.0, duration_s: float = 10.0, sr: int = SR) -> np.ndarray:
    y = 0.001 * np.random.default_rng(0).standard_normal(int(duration_s * sr))
    n = int(0.03 * sr)
    burst = np.sin(2 * np.pi * 1500 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.005 * sr))
    for t in np.arange(0.1, duration_s - 0.1, 60.0 / bpm):
        a = int(t * sr)
        y[a : a + n] += 0.7 * burst
    return y.astype(np.float32)


def chord(
    *, freqs_hz: tuple[float, ...] = (220.0, 277.18, 329.63), duration_s: float = 10.0, sr: int = SR
) -> np.ndarray:
    """A sustained A-major triad (A3, C#4, E4) with a slow tremolo."""
    t = np.arange(int(duration_s * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in freqs_hz) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    return (0.2 * y).astype(np.float32)


def clip_of(y: np.ndarray, *, sr: int = SR) -> MediaClip:
    return MediaClip(duration_s=len(y) / sr, audio=y, sr=sr, source="song-01")


def test_registry_shape_dtype_fps_and_config():
    assert "audio-mel" in available_encoders("music")
    enc = create_encoder("audio-mel")
    assert isinstance(enc, AudioMelEncoder) and enc.modality == "music" and enc.needs == {"audio"}
    assert enc.fps == 25.0 and enc.dim == 93
    feats = enc.encode(clip_of(clicks()))
    assert feats.shape == (250, 93) and feats.dtype == np.float32 and np.all(np.isfinite(feats))
    cfg = enc.config()
    assert cfg["name"] == "audio-mel" and cfg["dim"] == 93 and cfg["n_mels"] == 64 and cfg["sr"] == SR
    small = create_encoder("audio-mel", fps=10.0, n_mels=32, tempo_bands=4)
    assert small.dim == 32 + 1 + 12 + 7 + 4 + 1 and small.encode(clip_of(clicks())).shape == (100, small.dim)


def test_deterministic_and_resamples_other_rates():
    enc = AudioMelEncoder()
    y = chord()
    np.testing.assert_array_equal(enc.encode(clip_of(y)), enc.encode(clip_of(y)))
    at_44k = enc.encode(clip_of(chord(sr=44100), sr=44100))
    assert at_44k.shape == (250, 93)
    assert np.abs(at_44k - enc.encode(clip_of(y))).mean() < 0.05


def test_different_music_gives_different_features_and_chroma_finds_the_chord():
    enc = AudioMelEncoder()
    a, b = enc.encode(clip_of(clicks())), enc.encode(clip_of(chord()))
    assert np.abs(a - b).mean() > 0.3
    top3 = set(np.argsort(b[:, CHROMA].mean(axis=0))[-3:])
    assert top3 == {9, 1, 4}  # A, C#, E


def test_gain_invariant_and_silence_is_finite():
    enc = AudioMelEncoder()
    y = clicks() + chord()
    np.testing.assert_allclose(enc.encode(clip_of(0.25 * y)), enc.encode(clip_of(y)), atol=1e-3)
    silent = enc.encode(clip_of(np.zeros(SR * 10, np.float32)))
    assert silent.shape == (250, 93) and np.all(np.isfinite(silent))


def test_clip_without_audio_and_bad_settings_raise():
    enc = AudioMelEncoder()
    with pytest.raises(MediaError, match="song-07.*no audio"):
        enc.encode(
            MediaClip(duration_s=10.0, frames=np.zeros((10, 8, 8, 3), np.uint8), frames_fps=1.0, source="song-07")
        )
    with pytest.raises(MediaError, match="shorter than one"):
        enc.encode(clip_of(np.zeros(100, np.float32)))
    with pytest.raises(ParameterError, match="integer hop"):
        AudioMelEncoder(fps=60.0)
    with pytest.raises(ParameterError, match="tempo bands"):
        AudioMelEncoder(tempo_bands=40)
