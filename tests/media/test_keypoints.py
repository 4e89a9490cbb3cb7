"""Keypoint loaders (DwM, AIST++ pickle, NPZ, CSV), the restricted unpickler and the common body layout."""

from __future__ import annotations

import csv
import gzip
import json
import os
import pickle

import numpy as np
import pytest

from beatdance.errors import MediaError, ParameterError
from beatdance.media.keypoints import (
    body_scale,
    interpolate_missing,
    load_dwm_pair,
    load_keypoints,
    to_common_body,
)
from beatdance.media.numpy_pickle import load_numpy_pickle
from beatdance.media.skeletons import BODY13, COMMON_BODY_SOURCES, DWM23, get_skeleton
from beatdance.media.types import Motion


def _joints(frames: int, num: int, coords: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 500, (frames, num, coords)).astype(np.float32)


def test_npz_roundtrip_guesses_the_layout(tmp_path):
    joints = _joints(40, 17)
    conf = np.full((40, 17), 0.8, np.float32)
    np.savez(tmp_path / "a.npz", joints=joints, fps=30.0, confidence=conf)
    m = load_keypoints(tmp_path / "a.npz")
    assert m.skeleton == "coco17" and m.fps == 30.0 and m.joints.shape == (40, 17, 2)
    np.testing.assert_allclose(m.joints, joints)
    np.testing.assert_allclose(m.confidence, conf)
    np.savez(tmp_path / "b.npz", joints=_joints(5, 7, 3), fps=np.array(25.0))
    assert load_keypoints(tmp_path / "b.npz").skeleton == "generic"


def test_npz_nan_points_get_zero_confidence(tmp_path):
    joints = _joints(10, 33)
    joints[3, 4] = np.nan
    np.savez(tmp_path / "a.npz", joints=joints, fps=30, skeleton="mediapipe33")
    m = load_keypoints(tmp_path / "a.npz")
    assert m.skeleton == "mediapipe33"
    assert m.confidence[3, 4] == 0 and m.confidence.sum() == 10 * 33 - 1


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"pose": np.zeros((4, 17, 2)), "fps": 30}, "expected 'joints'"),
        ({"joints": np.zeros((4, 17, 4)), "fps": 30}, r"expected \(frames, joints, 2 or 3\)"),
        ({"joints": np.full((4, 17, 2), np.nan), "fps": 30}, "every keypoint is NaN"),
        ({"joints": np.zeros((4, 17, 2))}, "no 'fps' key"),
        ({"joints": np.zeros((4, 17, 2)), "fps": 30, "confidence": np.ones((4, 16))}, "confidence has shape"),
        ({"joints": np.zeros((4, 17, 2)), "fps": 30, "skeleton": "mediapipe33"}, "has 33 joints but the data has 17"),
        ({"joints": np.zeros((4, 17, 2)), "fps": -1}, "fps=-1"),
    ],
)
def test_npz_errors_name_the_file(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(MediaError, match=match) as info:
        load_keypoints(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("payload", [b"PK\x03\x04 truncated zip", b"not a zip at all"])
def test_corrupt_npz_is_a_media_error(tmp_path, payload):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(payload)
    with pytest.raises(MediaError, match=r"corrupt\.npz: not a readable \.npz"):
        load_keypoints(path)


def test_fps_argument_must_agree_with_the_file(tmp_path):
    np.savez(tmp_path / "a.npz", joints=_joints(4, 17), fps=30)
    assert load_keypoints(tmp_path / "a.npz", fps=30).fps == 30
    with pytest.raises(ParameterError, match="disagrees with the 30 fps"):
        load_keypoints(tmp_path / "a.npz", fps=25)
    np.savez(tmp_path / "b.npz", joints=_joints(4, 17))
    assert load_keypoints(tmp_path / "b.npz", fps=50).fps == 50


def _write_csv(path, rows, header, meta=()):
    with open(path, "w", newline="") as fh:
        for line in meta:
            fh.write(f"# {line}\n")
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def test_csv_with_missing_points_and_confidence(tmp_path):
    rows = [(f, j, 10 * f + j, 100 + j, 5.0, 0.9) for f in range(3) for j in range(13) if (f, j) != (1, 4)]
    _write_csv(
        tmp_path / "k.csv", rows[::-1], ["frame", "joint", "x", "y", "z", "confidence"], ["fps=50", "skeleton=body13"]
    )
    m = load_keypoints(tmp_path / "k.csv")
    assert m.joints.shape == (3, 13, 3) and m.fps == 50 and m.skeleton == "body13"
    assert m.joints[2, 5].tolist() == [25.0, 105.0, 5.0]
    assert np.isnan(m.joints[1, 4]).all() and m.confidence[1, 4] == 0 and m.confidence[0, 0] == pytest.approx(0.9)


def test_csv_fps_from_argument_and_errors(tmp_path):
    rows = [(f, j, f, j) for f in range(4) for j in range(17)]
    _write_csv(tmp_path / "k.csv", rows, ["frame", "joint", "x", "y"])
    with pytest.raises(MediaError, match="no '# fps=...' line"):
        load_keypoints(tmp_path / "k.csv")
    m = load_keypoints(tmp_path / "k.csv", fps=24)
    assert m.fps == 24 and m.skeleton == "coco17" and m.confidence is None
    _write_csv(tmp_path / "h.csv", rows, ["t", "joint", "x", "y"], ["fps=24"])
    with pytest.raises(MediaError, match="h.csv: header"):
        load_keypoints(tmp_path / "h.csv")
    _write_csv(tmp_path / "v.csv", [(0, 0, "a", 1)], ["frame", "joint", "x", "y"], ["fps=24"])
    with pytest.raises(MediaError, match="v.csv: rows are not 4 numbers"):
        load_keypoints(tmp_path / "v.csv")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(MediaError, match="unknown keypoint format '.txt'"):
        load_keypoints(tmp_path / "a.txt")
    with pytest.raises(MediaError, match="no such keypoint file"):
        load_keypoints(tmp_path / "nope.npz")


def _aist_dict(frames: int = 30) -> dict:
    kp = np.random.default_rng(1).uniform(0, 1000, (9, frames, 17, 3)).astype(np.float32)
    kp[..., 2] = np.linspace(0, 1, 17)
    return {
        "keypoints2d": kp,
        "det_scores": np.ones((9, frames), np.float32),
        "timestamps": (np.arange(frames) * 1e6 / 60).round().astype(np.int64),
    }


def test_aist_pickle_written_here(tmp_path):
    data = _aist_dict()
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    m = load_keypoints(path, camera=2)
    assert m.skeleton == "coco17" and m.joints.shape == (30, 17, 2) and m.fps == pytest.approx(60, rel=1e-4)
    np.testing.assert_allclose(m.joints, data["keypoints2d"][2, ..., :2])
    np.testing.assert_allclose(m.confidence[0], np.linspace(0, 1, 17), atol=1e-6)
    with pytest.raises(ParameterError, match="camera=9 is out of range"):
        load_keypoints(path, camera=9)
    path.write_bytes(pickle.dumps({"keypoints2d": np.zeros((9, 5, 17, 3))}))
    with pytest.raises(MediaError, match="x.pkl: found .*expected an AIST"):
        load_keypoints(path)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"keypoints2d": _Exploit(str(marker))}))
    for load in (load_keypoints, load_numpy_pickle):
        with pytest.raises(MediaError, match="evil.pkl: refused") as info:
            load(path)
        assert "system is not allowed" in str(info.value)
    assert not marker.exists()


def _write_dwm(folder, skeletons, center, start_position=50):
    folder.mkdir()
    payload = {"length": len(skeletons), "center": center.tolist(), "skeletons": skeletons.tolist()}
    with gzip.open(folder / "skeletons.json.gz", "wt") as fh:
        json.dump(payload, fh)
    (folder / "config.json").write_text(json.dumps({"start_position": start_position, "end_position": 999}))


def test_dwm_folder_written_here(tmp_path):
    skel = _joints(12, 23, 3) - 250
    center = _joints(12, 1, 3)[:, 0]
    _write_dwm(tmp_path / "D", skel, center)
    pair = load_dwm_pair(tmp_path / "D")
    assert pair.music_start_s == 2.0 and pair.audio_path == tmp_path / "D" / "audio.mp3"
    m = pair.motion
    assert m.skeleton == "dwm23" and m.fps == 25 and m.confidence is None
    expected = (skel + center[:, None]) * np.array([1, -1, -1])
    np.testing.assert_allclose(m.joints, expected, rtol=1e-5)
    assert load_keypoints(tmp_path / "D").joints.shape == (12, 23, 3)
    _write_dwm(tmp_path / "E", skel[:, :20], center)
    with pytest.raises(MediaError, match=r"skeletons.json.gz: 'skeletons' has shape \(12, 20, 3\)"):
        load_dwm_pair(tmp_path / "E")
    (tmp_path / "F").mkdir()
    with pytest.raises(MediaError, match="missing skeletons.json.gz"):
        load_dwm_pair(tmp_path / "F")


def test_common_body_layout_maps_every_known_skeleton():
    assert set(COMMON_BODY_SOURCES) == {"body13", "coco17", "mediapipe33", "dwm23"}
    for name, sources in COMMON_BODY_SOURCES.items():
        layout = get_skeleton(name)
        assert len(sources) == BODY13.num_joints
        for body_joint, src in zip(BODY13.joints[1:], sources[1:]):
            assert [layout.joints[i] for i in src] == [body_joint], (name, body_joint)
    joints = _joints(6, 23, 3)
    conf = np.random.default_rng(2).uniform(0, 1, (6, 23)).astype(np.float32)
    body = to_common_body(Motion(joints=joints, fps=25, confidence=conf, skeleton="dwm23"))
    assert body.skeleton == "body13" and body.joints.shape == (6, 13, 3)
    np.testing.assert_allclose(body.joints[:, 0], joints[:, :2].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(body.confidence[:, 0], conf[:, :2].min(axis=1))
    with pytest.raises(ParameterError, match="'generic' has no mapping"):
        to_common_body(Motion(joints=joints, fps=25))


def test_interpolate_missing_fills_gaps_and_flags_unseen_joints():
    joints = np.zeros((5, 3, 2), np.float32)
    joints[:, 0, 0] = [0, 1, 2, 3, 4]
    joints[2, 0] = np.nan
    joints[:, 1, 1] = [10, 10, 99, 10, 10]
    joints[:, 2] = np.nan
    conf = np.ones((5, 3), np.float32)
    conf[2, 1] = 0.1
    filled, observed = interpolate_missing(Motion(joints=joints, fps=10, confidence=conf), confidence_threshold=0.3)
    assert observed.any(axis=0).tolist() == [True, True, False]
    assert observed.sum() == 8 and not observed[2, 0] and not observed[2, 1]
    assert filled[2, 0, 0] == pytest.approx(2.0) and filled[2, 1, 1] == pytest.approx(10.0)
    assert np.isnan(filled[:, 2]).all()


def test_body_scale_is_the_torso_length_or_the_spread():
    joints = np.zeros((4, 13, 2))
    joints[:, [1, 2], 1] = 0.0
    joints[:, [7, 8], 1] = 50.0
    joints[:, 2, 0] = joints[:, 8, 0] = 20.0
    assert body_scale(joints, skeleton="body13") == pytest.approx(50.0)
    assert body_scale(3 * joints + 7, skeleton="body13") == pytest.approx(150.0)
    spread = body_scale(joints, skeleton="generic")
    assert body_scale(2 * joints, skeleton="generic") == pytest.approx(2 * spread) and spread > 0
    assert body_scale(np.zeros((3, 2, 2)), skeleton="generic") == 1.0


@pytest.mark.data
def test_real_dance_with_melody_alignment(shared_data):
    root = shared_data / "dance_with_melody"
    with open(root / "manifest.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["dance"] == "DANCE_C_4")
    pair = load_dwm_pair(root / "DANCE_C_4")
    assert pair.music_start_s == pytest.approx(float(row["audio_start_s"]))
    assert pair.motion.num_frames == int(row["motion_frames"]) and pair.motion.fps == 25
    assert pair.audio_path.is_file()
    j = pair.motion.joints
    # image axes: y grows downwards, so the ankles lie below (larger y than) the shoulders
    assert np.median(j[:, list(DWM23.hips), 1]) > np.median(j[:, list(DWM23.shoulders), 1])
    assert np.median(j[:, [9, 18], 1]) > np.median(j[:, list(DWM23.hips), 1])
    # the centre was added back: the dancer travels metres across the floor
    assert np.ptp(j[:, 2, 0]) > 100


@pytest.mark.data
def test_real_aist_keypoints(shared_data):
    path = shared_data / "aist_keypoints2d" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    m = load_keypoints(path, camera=8)
    assert m.joints.shape == (720, 17, 2) and m.skeleton == "coco17"
    assert m.fps == pytest.approx(60.0, rel=1e-3)
    assert 0.3 < float(m.confidence.mean()) <= 1.0 and np.isfinite(m.joints).all()
