"""Kinematic dance beats and dance tempo: synthetic dances with known stops, and real AIST++ / mocap data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beatdance.beats.dance import DanceBeatConfig, beat_level_tempo, dance_tempo, kinematic_beats, speed_envelope
from beatdance.errors import ParameterError
from beatdance.media.keypoints import load_dwm_pair, load_keypoints
from beatdance.media.types import Motion
from beatdance.synth import synthesize_pair

LIMBS = (7, 8, 9, 10, 13, 14, 15, 16)  # coco17 elbows, wrists, knees, ankles


def _dance(
    *,
    bpm: float = 120.0,
    fps: float = 30.0,
    duration_s: float = 10.0,
    first_stop_s: float = 0.1,
    noise_px: float = 0.5,
    seed: int = 0,
) -> tuple[Motion, np.ndarray]:
    """A coco17 dancer whose limbs swing back and forth and stop on every beat; also the beat times."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * fps))) / fps
    base = rng.uniform(160, 240, (17, 2))
    base[[5, 6, 11, 12]] = [(180, 100), (220, 100), (185, 180), (215, 180)]
    joints = np.repeat(base[None], t.size, axis=0)
    phase = np.pi * (t - first_stop_s) * bpm / 60.0
    for k in LIMBS:
        joints[:, k, 0] += 30 * np.cos(phase + (k % 2) * np.pi)
        joints[:, k, 1] += 15 * np.cos(phase)
    joints += rng.normal(0, noise_px, joints.shape)
    beats = first_stop_s + np.arange(int(duration_s * bpm / 60) + 1) * 60.0 / bpm
    return Motion(joints=joints.astype(np.float32), fps=fps, skeleton="coco17"), beats[beats < duration_s]


def _errors(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(found[:, None] - truth[None]).min(axis=1)


def _octave_error(bpm: float, reference: float) -> float:
    """Relative distance of ``bpm`` to the closest of reference / 2, reference and 2 * reference."""
    return float(min(abs(bpm / (reference * r) - 1) for r in (0.5, 1.0, 2.0)))


def test_synthetic_120_bpm_beats_and_tempo():
    motion, truth = _dance()
    beats = kinematic_beats(motion=motion)
    assert beats.times_s.size == truth.size
    assert _errors(beats.times_s, truth).max() <= 0.06
    assert _octave_error(beats.tempo_bpm, 120.0) < 0.04
    assert beats.beat_tempo_bpm == pytest.approx(120.0, rel=0.04) and beats.bar_tempo_bpm == beats.tempo_bpm
    assert (
        beats.envelope_fps == 30 and beats.speed_envelope.shape == (300,) and beats.speed_envelope.dtype == np.float32
    )


def test_missing_and_unconfident_points_are_interpolated():
    motion, truth = _dance(fps=60, seed=3)
    rng = np.random.default_rng(4)
    conf = np.where(rng.random(motion.joints.shape[:2]) < 0.15, 0.05, 0.9).astype(np.float32)
    joints = motion.joints.copy()
    joints[100:112, 9] = np.nan
    joints[:, 3] = np.nan  # an ear never seen
    motion = Motion(joints=joints, fps=60, confidence=conf, skeleton="coco17")
    for cfg in (DanceBeatConfig(), DanceBeatConfig(joints="all", velocity="savgol")):
        beats = kinematic_beats(motion=motion, config=cfg)
        assert np.isfinite(beats.speed_envelope).all()
        assert beats.times_s.size == truth.size and _errors(beats.times_s, truth).max() <= 0.06


def test_same_dance_bigger_or_elsewhere_gives_the_same_result():
    motion, _ = _dance(seed=5)
    moved = Motion(joints=motion.joints * 3.0 + np.float32(400.0), fps=motion.fps, skeleton="coco17")
    a, b = kinematic_beats(motion=motion), kinematic_beats(motion=moved)
    np.testing.assert_allclose(a.speed_envelope, b.speed_envelope, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a.times_s, b.times_s)
    assert a.tempo_bpm == pytest.approx(b.tempo_bpm)


def test_envelope_is_per_second_so_fps_does_not_matter():
    slow, _ = _dance(fps=25, noise_px=0.0)
    fast, _ = _dance(fps=100, noise_px=0.0)
    e25, e100 = speed_envelope(motion=slow), speed_envelope(motion=fast)
    assert e25.mean() == pytest.approx(e100.mean(), rel=0.03)
    assert kinematic_beats(motion=slow).tempo_bpm == pytest.approx(kinematic_beats(motion=fast).tempo_bpm, rel=0.02)


def test_jitter_during_a_pause_makes_no_beats():
    motion, truth = _dance(duration_s=6.0, noise_px=0.0)
    joints = motion.joints.copy()
    pause = slice(int(3.0 * motion.fps), None)
    joints[pause] = joints[int(3.0 * motion.fps)] + np.random.default_rng(6).normal(0, 1.0, joints[pause].shape)
    beats = kinematic_beats(motion=Motion(joints=joints, fps=motion.fps, skeleton="coco17"))
    assert np.all(beats.times_s < 3.3)
    assert _errors(beats.times_s, truth).max() <= 0.06 and beats.times_s.size >= 5


def test_motionless_or_tiny_motion_gives_no_beats():
    still = Motion(joints=np.full((90, 17, 2), 5.0, np.float32), fps=30, skeleton="coco17")
    for motion in (still, Motion(joints=still.joints[:1], fps=30, skeleton="coco17")):
        beats = kinematic_beats(motion=motion)
        assert beats.times_s.size == 0 and beats.tempo_bpm == 0.0 and np.all(beats.speed_envelope == 0)


def test_config_validation_and_dict():
    cfg = DanceBeatConfig(smoothing_sigma_s=0.1)
    assert json.loads(json.dumps(cfg.to_dict()))["smoothing_sigma_s"] == 0.1
    with pytest.raises(ParameterError, match="velocity='forward'"):
        DanceBeatConfig(velocity="forward")
    with pytest.raises(ParameterError, match="min_interval_s=-1"):
        DanceBeatConfig(min_interval_s=-1)
    with pytest.raises(ParameterError, match="min_bpm=200, max_bpm=40"):
        DanceBeatConfig(min_bpm=200, max_bpm=40)


@pytest.mark.parametrize(("bpm", "fps"), [(100.0, 25.0), (63.0, 60.0), (172.0, 10.0)])
def test_dance_tempo_of_a_periodic_envelope(bpm, fps):
    t = np.arange(int(20 * fps)) / fps
    envelope = np.abs(np.sin(np.pi * t * bpm / 60.0))
    assert dance_tempo(envelope=envelope, envelope_fps=fps) == pytest.approx(bpm, rel=0.02)


def test_dance_tempo_edge_cases():
    assert dance_tempo(envelope=np.ones(500), envelope_fps=50) == 0.0
    assert dance_tempo(envelope=np.sin(np.arange(20.0)), envelope_fps=50) == 0.0  # shorter than two periods
    with pytest.raises(ParameterError, match="not all finite"):
        dance_tempo(envelope=np.array([1.0, np.nan, 2.0]), envelope_fps=50)
    with pytest.raises(ParameterError, match="envelope_fps=0"):
        dance_tempo(envelope=np.ones(10), envelope_fps=0)


# Seeds of `beatdance synth --num 60 --seed 0`, one dance per style, with the dominant period of the motion
# (the bar-level tempo) as a fraction of the song's tempo: the beat level must be found from each.
SYNTH_DANCES = {
    5: ("electronic", 1 / 4),
    2: ("funk", 1.0),
    16: ("hiphop", 1.0),
    0: ("latin", 1.0),
    47: ("rock", 1 / 6),
    26: ("rock", 1 / 5),
    10: ("waltz", 1 / 6),
    13: ("waltz", 1 / 3),
}


@pytest.mark.parametrize("seed", sorted(SYNTH_DANCES))
def test_beat_level_tempo_of_synthetic_dances_is_the_songs(seed):
    pair = synthesize_pair(seed=seed, duration_s=20.0)
    style, bar_fraction = SYNTH_DANCES[seed]
    beats = kinematic_beats(motion=pair.motion)
    assert pair.style == style
    assert beats.bar_tempo_bpm == beats.tempo_bpm == pytest.approx(pair.bpm * bar_fraction, rel=0.04)
    assert beats.beat_tempo_bpm == pytest.approx(pair.bpm, rel=0.04)


def test_beat_level_tempo_needs_stops_that_recur():
    fps, bar_bpm = 25.0, 30.0
    t = np.arange(int(20 * fps)) / fps
    steps = np.abs(np.sin(np.pi * t * 3 * bar_bpm / 60))  # stops 3 times a bar, the first step of a bar biggest
    speed = steps * np.where((t * bar_bpm / 60) % 1 < 1 / 3, 2.0, 1.0)
    assert beat_level_tempo(speed=speed, fps=fps, dominant_bpm=bar_bpm) == pytest.approx(90.0)
    swing = 1.2 + np.sin(2 * np.pi * t * bar_bpm / 60)  # one smooth swing a bar, no stops: no step rate
    assert beat_level_tempo(speed=swing, fps=fps, dominant_bpm=bar_bpm) == 0.0
    assert beat_level_tempo(speed=speed, fps=fps, dominant_bpm=0.0) == 0.0
    assert beat_level_tempo(speed=speed, fps=fps, dominant_bpm=90.0) == pytest.approx(90.0)  # in range itself


@pytest.mark.data
@pytest.mark.parametrize("choreo", ["ch01", "ch02", "ch03"])
def test_aist_break_dance_tempo_relates_to_80_bpm(shared_data, choreo):
    motion = load_keypoints(shared_data / "aist_keypoints2d" / f"gBR_sBM_cAll_d04_mBR0_{choreo}.pkl")
    beats = kinematic_beats(motion=motion)
    assert _octave_error(beats.tempo_bpm, 80.0) < 0.04, beats.tempo_bpm
    if choreo != "ch02":
        assert beats.beat_tempo_bpm == pytest.approx(80.0, rel=0.04)
    else:  # its stops recur too weakly to name a step rate (0: none found), but never at a wrong level
        assert beats.beat_tempo_bpm in (0.0, pytest.approx(80.0, rel=0.04))
    intervals = np.diff(beats.times_s)
    assert 0.25 <= np.median(intervals) <= 1.5 and beats.times_s.size >= 8


@pytest.mark.data
def test_waltz_motion_period_is_one_bar(shared_data):
    """Sanity: waltz music runs at about 84-90 BPM in 3/4, and the dancers' dominant period is one bar."""
    motion = load_dwm_pair(shared_data / "dance_with_melody" / "DANCE_W_1").motion
    beats = kinematic_beats(motion=motion)
    assert 26.0 <= beats.tempo_bpm <= 32.0
    assert beats.times_s.size > 10 and np.all(np.diff(beats.times_s) >= 0.25)
