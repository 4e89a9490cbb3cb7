"""Synthetic music, dance, video and corpora: determinism, ground truth, beats, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from beatdance.beats.music import track_music_beats
from beatdance.errors import ParameterError
from beatdance.media.keypoints import load_keypoints
from beatdance.synth import STYLES, render_video, synthesize_motion, synthesize_music, synthesize_pair, write_corpus
from beatdance.synth.styles import MAX_BPM, METERS, MIN_BPM, beat_grid


def _speed_minima_s(joints: np.ndarray, *, fps: float) -> np.ndarray:
    speed = np.linalg.norm(np.gradient(joints, axis=0), axis=2).mean(axis=1)
    return scipy.signal.find_peaks(-speed)[0] / fps


def _hit_rate(times: np.ndarray, targets: np.ndarray, *, tol_s: float) -> float:
    """Fraction of ``times`` within ``tol_s`` of some target."""
    return float((np.abs(times[:, None] - targets[None]).min(axis=1) <= tol_s).mean())


def test_music_is_deterministic_by_seed() -> None:
    a = synthesize_music(bpm=120, meter="4/4", style="rock", duration_s=4, seed=5)
    b = synthesize_music(bpm=120, meter="4/4", style="rock", duration_s=4, seed=5)
    c = synthesize_music(bpm=120, meter="4/4", style="rock", duration_s=4, seed=6)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.allclose(a.audio, c.audio)
    assert a.audio.dtype == np.float32 and a.audio.shape == (4 * 22050,)
    assert 0.5 < np.abs(a.audio).max() <= 1.0


def test_pair_is_deterministic_and_draws_parameters_in_range() -> None:
    pairs = [synthesize_pair(seed=s, duration_s=3) for s in range(24)]
    again = synthesize_pair(seed=3, duration_s=3)
    np.testing.assert_array_equal(again.motion.joints, pairs[3].motion.joints)
    np.testing.assert_array_equal(again.music.audio, pairs[3].music.audio)
    assert {p.style for p in pairs} == set(STYLES)
    for p in pairs:
        assert MIN_BPM <= p.bpm <= MAX_BPM and p.meter in STYLES[p.style].meters
        lo, hi = STYLES[p.style].bpm_range
        assert lo <= p.bpm <= hi
    fixed = synthesize_pair(seed=1, bpm=150, meter="2/4", style="latin", duration_s=3)
    assert (fixed.bpm, fixed.meter, fixed.style) == (150.0, "2/4", "latin")


@pytest.mark.parametrize("meter", sorted(METERS))
def test_beat_grid_is_steady_with_downbeats_every_bar(meter: str) -> None:
    beats, downbeats = beat_grid(bpm=96, meter=meter, duration_s=10, first_beat_s=0.25)
    np.testing.assert_allclose(np.diff(beats), 60 / 96)
    assert beats[0] == 0.25 and beats[-1] < 10
    np.testing.assert_array_equal(downbeats, beats[:: METERS[meter][0]])


@pytest.mark.parametrize(
    ("style", "meter", "bpm"),
    [
        ("waltz", "3/4", 90),
        ("rock", "4/4", 150),
        ("funk", "4/4", 100),
        ("electronic", "4/4", 128),
        ("latin", "6/8", 110),
        ("latin", "2/4", 120),
        ("hiphop", "4/4", 75),
        ("rock", "2/4", 100),
    ],
)
def test_our_tracker_finds_the_tempo_or_an_octave_of_it(style: str, meter: str, bpm: float) -> None:
    music = synthesize_music(bpm=bpm, meter=meter, style=style, duration_s=12, seed=11)
    tracked = track_music_beats(y=music.audio, sr=music.sr)
    beats = tracked.times_s
    ratio = tracked.tempo_bpm / bpm
    assert min(abs(ratio / octave - 1) for octave in (0.5, 1.0, 2.0)) < 0.06, ratio
    # The tracked beats sit on the true grid (or halfway between its beats at double tempo).
    grid = np.sort(np.concatenate([music.beat_times_s, music.beat_times_s[:-1] + np.diff(music.beat_times_s) / 2]))
    assert _hit_rate(beats[1:-1], grid, tol_s=0.07) > 0.8


@pytest.mark.parametrize("style", sorted(STYLES))
def test_motion_speed_minima_land_on_the_beats(style: str) -> None:
    pair = synthesize_pair(seed=21, style=style, duration_s=12)
    minima = _speed_minima_s(pair.motion.joints, fps=pair.motion.fps)
    beats = pair.music.beat_times_s[(pair.music.beat_times_s > 0.1) & (pair.music.beat_times_s < 11.9)]
    assert _hit_rate(beats, minima, tol_s=0.08) == 1.0
    assert _hit_rate(minima, pair.music.beat_times_s, tol_s=0.08) >= 0.9


def test_motion_layout_depth_and_style_dependence() -> None:
    beats, downbeats = beat_grid(bpm=120, meter="4/4", duration_s=6, first_beat_s=0.2)
    flat = synthesize_motion(beat_times_s=beats, downbeat_times_s=downbeats, style="waltz", duration_s=6, seed=1)
    deep = synthesize_motion(
        beat_times_s=beats, downbeat_times_s=downbeats, style="waltz", duration_s=6, seed=1, with_depth=True
    )
    rock = synthesize_motion(beat_times_s=beats, downbeat_times_s=downbeats, style="rock", duration_s=6, seed=1)
    assert flat.skeleton == "coco17" and flat.joints.shape == (150, 17, 2) and deep.joints.shape == (150, 17, 3)
    np.testing.assert_allclose(deep.joints[..., :2], flat.joints)
    assert (flat.confidence == 1).all()
    assert np.abs(flat.joints - rock.joints).max() > 0.05
    # The figure stands inside the frame with its feet on the floor.
    assert 0.05 < flat.joints[..., 0].min() and flat.joints[..., 0].max() < 0.95
    assert 0.1 < flat.joints[..., 1].min() and abs(flat.joints[:, 15:, 1].max() - 0.88) < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"style": "polka"}, "style='polka' is not a synthetic style"),
        ({"meter": "5/4"}, "meter='5/4' is not supported"),
        ({"bpm": 200}, r"bpm=200 is outside the synthetic range \[70, 180\]"),
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        synthesize_pair(seed=0, duration_s=2, **kwargs)


def test_motion_needs_beats() -> None:
    with pytest.raises(ParameterError, match="at least 2 strictly increasing"):
        synthesize_motion(
            beat_times_s=np.array([1.0]), downbeat_times_s=np.array([1.0]), style="rock", duration_s=2, seed=0
        )


def test_audio_corpus_files_manifest_and_ground_truth(tmp_path: Path) -> None:
    records = write_corpus(out_dir=tmp_path, num_pairs=2, seed=4, duration_s=3, video=False)
    assert [r["id"] for r in records] == ["pair_000", "pair_001"]
    corpus = json.loads((tmp_path / "corpus.json").read_text())
    assert corpus["pairs"] == records and corpus["num_pairs"] == 2
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [
        {"music": "pair_000.wav", "dance": "pair_000.npz", "offset_s": "0.0"},
        {"music": "pair_001.wav", "dance": "pair_001.npz", "offset_s": "0.0"},
    ]
    pair = synthesize_pair(seed=4 * 100003 + 1, duration_s=3)
    truth = json.loads((tmp_path / "pair_001.beats.json").read_text())
    assert (truth["bpm"], truth["meter"], truth["style"]) == (pair.bpm, pair.meter, pair.style)
    np.testing.assert_allclose(truth["beat_times_s"], pair.music.beat_times_s)
    np.testing.assert_allclose(truth["downbeat_times_s"], pair.music.downbeat_times_s)
    audio, sr = sf.read(tmp_path / "pair_001.wav", dtype="float32")
    assert sr == 22050 and audio.shape == (3 * 22050,)
    np.testing.assert_allclose(audio, pair.music.audio, atol=1e-4)
    motion = load_keypoints(tmp_path / "pair_001.npz")
    assert motion.skeleton == "coco17" and motion.fps == 25.0
    np.testing.assert_allclose(motion.joints, pair.motion.joints)


def test_corpus_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="audio_format='mp3'"):
        write_corpus(out_dir=tmp_path, num_pairs=1, seed=0, video=False, audio_format="mp3")
    with pytest.raises(ParameterError, match="num_pairs=0"):
        write_corpus(out_dir=tmp_path, num_pairs=0, seed=0)


def test_rendered_mp4_has_video_and_audio_streams(tmp_path: Path) -> None:
    pair = synthesize_pair(seed=2, duration_s=2)
    path = tmp_path / "pair.mp4"
    render_video(pair=pair, path=path, width=160, height=128)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (160, 128)
        assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 22050
        assert video.average_rate == 25
        assert sum(1 for _ in container.decode(video=0)) == 50


@pytest.mark.slow
def test_mediapipe_detects_the_rendered_person(tmp_path: Path) -> None:
    from beatdance.media.pose import estimate_pose, person_ratio
    from beatdance.media.video import read_video_frames

    records = write_corpus(out_dir=tmp_path, num_pairs=2, seed=7, duration_s=6, video=True, show_progress=False)
    with open(tmp_path / "manifest.csv", newline="") as fh:
        assert [row["music"] for row in csv.DictReader(fh)] == ["pair_000.mp4", "pair_001.mp4"]
    for record in records:
        frames, fps = read_video_frames(tmp_path / record["video"], fps=25)
        detected = estimate_pose(frames=frames, fps=fps)
        truth = load_keypoints(tmp_path / record["keypoints"]).joints
        assert person_ratio(detected) >= 0.8
        seen = np.isfinite(detected.joints[:, 0, 0])
        # Wrists and ankles: MediaPipe 15, 16, 27, 28 = COCO 9, 10, 15, 16 (square frame: same coordinates).
        found = detected.joints[seen][:, [15, 16, 27, 28], :2]
        drawn = truth[: len(frames)][seen][:, [9, 10, 15, 16]]
        assert np.median(np.abs(found - drawn)) < 0.02
        for joint in range(4):
            for axis in range(2):
                if drawn[:, joint, axis].std() > 0.01:
                    assert np.corrcoef(found[:, joint, axis], drawn[:, joint, axis])[0, 1] > 0.8
