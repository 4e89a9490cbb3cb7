"""Music beat tracking: a synthetic click track, silence, settings, and mir_eval scores on human annotations."""

from __future__ import annotations

import json

import mir_eval
import numpy as np
import pytest

from beatdance.beats.music import MusicBeatConfig, MusicBeats, _checked, metrical_ratio, track_music_beats
from beatdance.errors import ParameterError
from beatdance.media.audio import load_audio


def clicks_at_bpm(*, bpm: float, duration_s: float, sr: int, offset_s: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A click track (decaying 1.5 kHz bursts over faint noise) and its click times."""
    times = np.arange(offset_s, duration_s - 0.1, 60.0 / bpm)
    y = 0.001 * np.random.default_rng(0).standard_normal(int(duration_s * sr))
    n = int(0.03 * sr)
    burst = np.sin(2 * np.pi * 1500 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.005 * sr))
    for t in times:
        a = int(round(t * sr))
        y[a : a + n] += 0.7 * burst[: len(y) - a]
    return y.astype(np.float32), times


@pytest.mark.parametrize("bpm,sr", [(120.0, 22050), (96.0, 44100), (128.0, 16000)])
def test_click_track_tempo_and_beat_times(bpm, sr):
    y, truth = clicks_at_bpm(bpm=bpm, duration_s=12.0, sr=sr)
    mb = track_music_beats(y=y, sr=sr)
    assert isinstance(mb, MusicBeats) and mb.times_s.dtype == np.float64
    assert abs(mb.tempo_bpm - bpm) / bpm < 0.02
    assert mb.envelope_fps == pytest.approx(22050 / 256)
    assert len(mb.times_s) >= len(truth) - 2
    nearest_ms = 1000 * np.abs(mb.times_s[:, None] - truth[None, :]).min(axis=1)
    assert nearest_ms.max() < 30.0


def test_silence_gives_no_beats_and_zero_tempo():
    for y in (np.zeros(22050 * 5, np.float32), np.zeros(0, np.float32)):
        mb = track_music_beats(y=y, sr=22050)
        assert mb.times_s.size == 0 and mb.tempo_bpm == 0.0


def test_config_is_serialisable_and_used():
    flat = MusicBeatConfig(prior_bpm_std_octaves=None)
    assert flat.to_dict()["prior_bpm_std_octaves"] is None and MusicBeatConfig(**flat.to_dict()) == flat
    y, _ = clicks_at_bpm(bpm=120.0, duration_s=8.0, sr=22050)
    cfg = MusicBeatConfig(hop_length=512, onset_aggregate="median", hpss=True)
    assert cfg.to_dict()["hop_length"] == 512 and cfg.to_dict()["hpss"] is True
    mb = track_music_beats(y=y, sr=22050, config=cfg)
    assert mb.envelope_fps == pytest.approx(22050 / 512) and len(mb.onset_envelope) == 1 + len(y) // 512
    assert abs(mb.tempo_bpm - 120.0) < 2.4


def test_bad_settings_and_input_raise():
    with pytest.raises(ParameterError, match="hop_length"):
        MusicBeatConfig(hop_length=0)
    with pytest.raises(ParameterError, match="onset_aggregate"):
        MusicBeatConfig(onset_aggregate="max")
    with pytest.raises(ParameterError, match="mono"):
        track_music_beats(y=np.zeros((2, 100), np.float32), sr=22050)
    with pytest.raises(ParameterError, match="NaN"):
        track_music_beats(y=np.array([0.0, np.nan], np.float32), sr=22050)


# F-measure measured per tracker (see the README table); the test allows 0.05 less. librosa's own defaults
# (librosa.beat.beat_track, hop 512, prior at 120 BPM), measured by benchmarks/beat_trackers.py, are the bar the
# default tracker must clear together with madmom's.
MEASURED_F = {"librosa": {"gtzan": 0.873, "madmom": 0.444}, "madmom-metre": {"gtzan": 0.958, "madmom": 0.667}}
LIBROSA_DEFAULTS_F = {"gtzan": 0.901, "madmom": 0.286}
ANNOTATED = {
    "gtzan": ("gtzan/country.00000.wav", "gtzan/gtzan_country_00000.beats", 5.0),
    # the 2.8-s excerpt ends before mir_eval's default 5-s trim, so nothing is trimmed there
    "madmom": ("madmom_testdata/sample.wav", "madmom_testdata/sample.beats", 0.0),
}


def _annotated_f(root, name: str, config: MusicBeatConfig) -> float:
    wav, beats, min_beat_time = ANNOTATED[name]
    y, sr = load_audio(root / wav, sr=22050)
    reference = np.loadtxt(root / beats, usecols=0, ndmin=1)
    mb = track_music_beats(y=y, sr=sr, config=config)
    return mir_eval.beat.evaluate(reference, mb.times_s, min_beat_time=min_beat_time)["F-measure"]


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(ANNOTATED))
def test_f_measure_on_human_annotations(shared_data, name):
    root = shared_data / "beat_annotated"
    found = {
        tracker: _annotated_f(root, name, MusicBeatConfig(tracker=tracker))
        for tracker in ("librosa", "madmom", "madmom-metre", "checked")
    }
    assert MusicBeatConfig().tracker == "checked"  # the default (README, "Music beats")
    for tracker, measured in MEASURED_F.items():
        assert found[tracker] >= measured[name] - 0.05, tracker
    # the default is at least as good as librosa's own defaults and as madmom alone, on each annotated excerpt
    assert found["checked"] >= max(LIBROSA_DEFAULTS_F[name], found["madmom"]) - 1e-9
    assert found["madmom-metre"] >= max(found["librosa"], found["madmom"]) - 1e-9


@pytest.mark.parametrize(
    "a,b,expected",
    [(85.3, 84.4, "1"), (87.0, 174.5, "2"), (176.0, 117.7, "3/2"), (29.0, 87.0, "3"), (30.0, 120.5, "4")],
)
def test_metrical_ratio_names_the_levels_of_one_metre(a, b, expected):
    assert metrical_ratio(a, b) == expected == metrical_ratio(b, a)


@pytest.mark.parametrize("a,b", [(126.69, 90.85), (123.1, 88.72), (100.0, 125.0), (0.0, 90.0)])
def test_metrical_ratio_is_none_between_unrelated_tempi(a, b):
    assert metrical_ratio(a, b) is None


def _beats_at(bpm: float, level: str = "") -> MusicBeats:
    return MusicBeats(
        times_s=np.arange(0.5, 30.0, 60.0 / bpm),
        tempo_bpm=bpm,
        onset_envelope=np.ones(10),
        envelope_fps=86.1,
        level=level,
    )


def test_checked_keeps_madmom_at_a_metrical_ratio_and_takes_dp_at_none():
    kept = _checked(madmom=_beats_at(174.0, "halved"), dp=_beats_at(87.0))
    assert kept.tempo_bpm == 174.0 and kept.level.startswith("halved; DP tracker 87.0 BPM (ratio 2)")
    fallen = _checked(madmom=_beats_at(126.69, "kept"), dp=_beats_at(90.85))
    assert fallen.tempo_bpm == 90.85 and "no metrical ratio" in fallen.level


@pytest.mark.slow
@pytest.mark.data
def test_checked_tracker_keeps_the_dp_tempo_where_madmom_follows_no_metrical_level(shared_data):
    """DANCE_R_9, a rumba: madmom-metre follows a 126.7-BPM pulse, 1.39 times the song's 90.8 BPM (README)."""
    y, sr = load_audio(shared_data / "dance_with_melody" / "DANCE_R_9" / "audio.mp3", sr=22050)
    beats = track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker="checked"))
    assert abs(beats.tempo_bpm - 90.85) < 0.5 and beats.level.startswith("DP tracker"), beats.level
    assert beats.beats_per_bar in (2, 4), beats.bar_contrasts  # metre read at the DP tracker's beats: no waltz


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name,bars", [("DANCE_W_5", 3), ("DANCE_R_3", 4)])
def test_downbeats_tell_a_waltz_from_a_rumba(shared_data, name, bars):
    """Beats per bar from madmom's downbeat network; the librosa tracker has none and says so (0)."""
    folder = shared_data / "dance_with_melody" / name
    danced_s = json.loads((folder / "config.json").read_text())["start_position"] / 25.0  # as `prepare` cuts it
    y, sr = load_audio(folder / "audio.mp3", sr=22050, start_s=danced_s, duration_s=60.0)
    beats = track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker="checked"))
    assert beats.beats_per_bar == bars, beats.bar_contrasts
    assert beats.bar_tempo_bpm == pytest.approx(beats.tempo_bpm / bars)
    plain = track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker="librosa"))
    assert plain.bar_contrasts == {} and plain.beats_per_bar == 0 and plain.bar_tempo_bpm == 0.0
