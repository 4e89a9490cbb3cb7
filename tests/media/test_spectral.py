"""media.spectral gives librosa 0.11's values (the features stored before it existed) on real and synthetic audio."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage

from beatdance.encoders.audio_mel import AudioMelEncoder
from beatdance.media import spectral
from beatdance.media.audio import load_audio
from beatdance.media.types import MediaClip

SR = 22050


@pytest.fixture(scope="module")
def signals(shared_data) -> list[np.ndarray]:
    """Two real recordings (12 s) and a synthetic click track over noise."""
    songs = sorted((shared_data / "cc_music").glob("*.ogg"))[:2]
    real = [load_audio(path, sr=SR, duration_s=12.0)[0] for path in songs]
    rng = np.random.default_rng(0)
    clicks = 0.01 * rng.standard_normal(SR * 6)
    clicks[:: SR // 2] += 1.0
    return [*real, clicks.astype(np.float32)]


@pytest.mark.parametrize("n_fft,hop", [(2048, 256), (2048, 882), (1024, 512)])
def test_stft_power_equals_librosa(signals, n_fft, hop):
    for y in signals:
        ours = spectral.stft_power(y=y, n_fft=n_fft, hop_length=hop)
        theirs = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2
        assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9 * theirs.max())


@pytest.mark.parametrize("n_mels,fmin,fmax", [(128, 0.0, None), (64, 30.0, None), (40, 100.0, 8000.0)])
def test_mel_filters_and_db_equal_librosa(signals, n_mels, fmin, fmax):
    power = spectral.stft_power(y=signals[0], n_fft=2048, hop_length=256)
    bank = spectral.mel_filterbank(sr=SR, n_fft=2048, n_mels=n_mels, fmin_hz=fmin, fmax_hz=fmax)
    np.testing.assert_allclose(bank, librosa.filters.mel(sr=SR, n_fft=2048, n_mels=n_mels, fmin=fmin, fmax=fmax))
    theirs = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SR, n_mels=n_mels, fmin=fmin, fmax=fmax))
    np.testing.assert_allclose(spectral.power_to_db(bank @ power), theirs, atol=1e-4)


@pytest.mark.parametrize("lag,max_size,aggregate", [(1, 1, np.mean), (2, 3, np.median), (1, 4, np.mean)])
def test_spectral_flux_equals_onset_strength(signals, lag, max_size, aggregate):
    for y in signals:
        power = spectral.stft_power(y=y, n_fft=2048, hop_length=256)
        db = spectral.power_to_db(spectral.mel_filterbank(sr=SR, n_fft=2048, n_mels=128) @ power)
        ours = spectral.spectral_flux(
            db=db, n_fft=2048, hop_length=256, lag=lag, max_size=max_size, aggregate=aggregate
        )
        theirs = librosa.onset.onset_strength(
            y=y, sr=SR, n_fft=2048, hop_length=256, n_mels=128, lag=lag, max_size=max_size, aggregate=aggregate
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.max())


def test_tempogram_chroma_contrast_and_rms_equal_librosa(signals):
    for y in signals:
        power = spectral.stft_power(y=y, n_fft=2048, hop_length=882)
        magnitude = np.sqrt(power)
        envelope = librosa.onset.onset_strength(y=y, sr=SR, hop_length=882)
        np.testing.assert_allclose(
            spectral.tempogram(envelope=envelope, win_length=100),
            librosa.feature.tempogram(onset_envelope=envelope, sr=SR, hop_length=882, win_length=100),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            spectral.normalize(spectral.chroma_filterbank(sr=SR, n_fft=2048) @ power, norm=np.inf, axis=0),
            librosa.feature.chroma_stft(S=power, sr=SR, n_fft=2048, hop_length=882, tuning=0.0),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            spectral.spectral_contrast(magnitude=magnitude, sr=SR, n_fft=2048, fmin_hz=200.0, n_bands=6),
            librosa.feature.spectral_contrast(S=magnitude, sr=SR, n_fft=2048, fmin=200.0, n_bands=6),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            spectral.rms_from_magnitude(magnitude=magnitude, frame_length=2048),
            librosa.feature.rms(S=magnitude, frame_length=2048),
            rtol=1e-6,
        )


@pytest.mark.parametrize("orig,target", [(22050, 44100), (44100, 22050), (16000, 22050)])
def test_resample_equals_librosa_soxr_hq(signals, orig, target):
    y = signals[0][: orig * 3]
    ours = spectral.resample(y=y, orig_sr=orig, target_sr=target)
    theirs = librosa.resample(y, orig_sr=orig, target_sr=target, res_type="soxr_hq")
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("n,sigma", [(200, 3.3), (1000, 25.0), (3, 7.0), (2, 0.5)])
def test_smooth_gaussian_equals_scipy(n, sigma):
    x = np.random.default_rng(n).standard_normal(n).cumsum()
    np.testing.assert_allclose(
        spectral.smooth_gaussian(x, sigma=sigma), scipy.ndimage.gaussian_filter1d(x, sigma, mode="nearest"), atol=1e-12
    )


def test_audio_mel_features_equal_the_librosa_computation(signals):
    """The whole encoder, against the librosa calls it was first written with (what stored libraries hold)."""
    encoder, y = AudioMelEncoder(), signals[0]
    hop = SR // 25
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop, center=True)) ** 2
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=SR, n_mels=64, fmin=30.0), ref=1.0, amin=1e-10, top_db=80.0
    )
    onset = librosa.onset.onset_strength(S=mel_db, sr=SR, hop_length=hop)
    ours = encoder.encode(MediaClip(duration_s=len(y) / SR, audio=y, sr=SR, source="real"))
    np.testing.assert_allclose(ours[:, :64], ((mel_db - mel_db.mean()) / 20.0)[:, : len(ours)].T, atol=1e-5)
    z = (onset - onset.mean()) / onset.std()
    np.testing.assert_allclose(ours[:, 64], z[: len(ours)], atol=1e-4)
