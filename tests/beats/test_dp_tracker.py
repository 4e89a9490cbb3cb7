"""The numpy tempo estimate and beat tracker give librosa 0.11's results; music beats import neither librosa nor numba."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest
import scipy.stats

from beatdance.beats import dp_tracker
from beatdance.errors import ParameterError
from beatdance.media.audio import load_audio

SR, HOP = 22050, 256


@pytest.fixture(scope="module")
def envelopes(shared_data) -> list[np.ndarray]:
    """Onset envelopes (float32, as beats.music makes them) of real songs and dance-pair music."""
    paths = sorted((shared_data / "cc_music").glob("*.ogg"))
    paths += sorted((shared_data / "dance_with_melody").rglob("*.mp3"))[:4]
    out = []
    for path in paths:
        y, _ = load_audio(path, sr=SR, duration_s=20.0)
        out.append(librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP, n_mels=128).astype(np.float32))
    return out


@pytest.mark.parametrize("std_octaves,start_bpm", [(1.0, 100.0), (None, 120.0), (0.5, 140.0)])
def test_tempo_equals_librosa(envelopes, std_octaves, start_bpm):
    for env in envelopes:
        prior = scipy.stats.uniform(0, 320.0) if std_octaves is None else None
        theirs = librosa.feature.tempo(
            onset_envelope=env,
            sr=SR,
            hop_length=HOP,
            start_bpm=start_bpm,
            std_bpm=std_octaves or 1.0,
            ac_size=8.0,
            max_tempo=320.0,
            prior=prior,
        )[0]
        ours = dp_tracker.estimate_tempo_bpm(
            envelope=env,
            sr=SR,
            hop_length=HOP,
            start_bpm=start_bpm,
            std_octaves=std_octaves,
            ac_size_s=8.0,
            max_tempo_bpm=320.0,
        )
        assert ours == theirs


@pytest.mark.parametrize("tightness,trim", [(100.0, True), (50.0, False), (400.0, True)])
def test_beats_equal_librosa(envelopes, tightness, trim):
    for env in envelopes:
        bpm = float(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=HOP)[0])
        _, theirs = librosa.beat.beat_track(
            onset_envelope=env, sr=SR, hop_length=HOP, bpm=bpm, tightness=tightness, trim=trim
        )
        ours = dp_tracker.track_beats(envelope=env, fps=SR / HOP, bpm=bpm, tightness=tightness, trim=trim)
        np.testing.assert_array_equal(ours, theirs)


def test_silence_and_bad_settings():
    assert (
        dp_tracker.track_beats(envelope=np.zeros(500, np.float32), fps=86.0, bpm=120.0, tightness=100.0, trim=True).size
        == 0
    )
    with pytest.raises(ParameterError, match="bpm"):
        dp_tracker.track_beats(envelope=np.ones(500, np.float32), fps=86.0, bpm=0.0, tightness=100.0, trim=True)


def test_music_beats_and_features_import_neither_librosa_nor_numba():
    code = (
        "import sys, numpy as np\n"
        "from beatdance.beats.music import MusicBeatConfig, track_music_beats\n"
        "from beatdance.encoders.registry import create_encoder\n"
        "from beatdance.media.types import MediaClip\n"
        "y = np.zeros(22050 * 6, np.float32); y[::11025] = 1.0\n"
        "assert track_music_beats(y=y, sr=22050, config=MusicBeatConfig(tracker='librosa')).times_s.size > 5\n"
        "create_encoder('audio-mel').encode(MediaClip(duration_s=6.0, audio=y, sr=22050, source='x'))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert not {"librosa", "numba", "scipy.signal", "scipy.ndimage", "scipy.stats"} & loaded
