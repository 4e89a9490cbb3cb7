"""The built-in "pose" dance encoder: common layout across skeletons, invariances, resampling, registry."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.encoders import available_encoders, create_encoder
from beatdance.encoders.pose import PoseEncoder
from beatdance.errors import MediaError, ParameterError
from beatdance.media.keypoints import load_dwm_pair, load_keypoints
from beatdance.media.skeletons import COMMON_BODY_SOURCES, get_skeleton
from beatdance.media.types import MediaClip, Motion


def _body13_walk(*, fps: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """(T, 13, 2) body13 keypoints of a figure swinging its limbs, in image pixels."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * fps))) / fps
    rest = np.array(
        [
            (200, 40),
            (180, 80),
            (220, 80),
            (170, 120),
            (230, 120),
            (165, 160),
            (235, 160),
            (185, 170),
            (215, 170),
            (183, 230),
            (217, 230),
            (182, 290),
            (218, 290),
        ],
        dtype=np.float64,
    )
    swing = rng.uniform(-25, 25, (13, 2))
    xy = rest[None] + np.sin(2 * np.pi * 1.5 * t)[:, None, None] * swing[None]
    return xy + np.stack([40 * t, np.zeros_like(t)], axis=1)[:, None, :]


def _as_layout(body: np.ndarray, skeleton: str, *, coords: int = 2) -> Motion:
    """Place body13 points at the matching joints of ``skeleton`` (other joints: nearby noise)."""
    layout = get_skeleton(skeleton)
    joints = body[:, [0] * layout.num_joints].copy() + np.random.default_rng(1).normal(
        0, 3, (body.shape[0], layout.num_joints, 2)
    )
    for k, src in enumerate(COMMON_BODY_SOURCES[skeleton]):
        for i in src:
            joints[:, i] = body[:, k]
    if coords == 3:
        joints = np.concatenate([joints, np.full(joints.shape[:2] + (1,), 7.0)], axis=2)
    return Motion(joints=joints.astype(np.float32), fps=30.0, skeleton=skeleton)


def _encode(motion: Motion, duration_s: float = 4.0, **kwargs) -> np.ndarray:
    return PoseEncoder(**kwargs).encode(MediaClip(duration_s=duration_s, motion=motion))


def test_registry_finds_the_pose_encoder():
    assert "pose" in available_encoders("dance") and "pose" not in available_encoders("music")
    enc = create_encoder("pose", fps=10)
    assert isinstance(enc, PoseEncoder) and enc.modality == "dance" and enc.needs == {"motion"}
    cfg = enc.config()
    assert cfg["name"] == "pose" and cfg["dim"] == 56 and cfg["fps"] == 10 and cfg["layout"] == "body13-xy"


def test_same_body_gives_the_same_features_from_every_skeleton():
    body = _body13_walk(fps=30, duration_s=4)
    feats = {
        name: _encode(_as_layout(body, name, coords=3 if name == "dwm23" else 2))
        for name in ("mediapipe33", "coco17", "dwm23")
    }
    for f in feats.values():
        assert f.shape == (100, 56) and f.dtype == np.float32 and np.isfinite(f).all()
    np.testing.assert_allclose(feats["mediapipe33"], feats["coco17"], atol=1e-5)
    np.testing.assert_allclose(feats["dwm23"], feats["coco17"], atol=1e-5)


def test_invariant_to_scale_and_translation():
    motion = _as_layout(_body13_walk(fps=30, duration_s=4, seed=2), "coco17")
    moved = Motion(
        joints=motion.joints * np.float32(2.7) + np.array([300, -120], np.float32), fps=30, skeleton="coco17"
    )
    a, b = _encode(motion), _encode(moved)
    np.testing.assert_allclose(a, b, atol=2e-4)
    assert np.abs(a[:, 26:52]).max() > 0.05  # the velocities are not trivially zero


def test_columns_mean_what_the_docstring_says():
    body = _body13_walk(fps=30, duration_s=4, seed=3)
    f = _encode(_as_layout(body, "coco17"), fps=30)  # the motion's own rate: frame k is body[k]
    torso = np.median(np.linalg.norm(body[:, 1:3].mean(axis=1) - body[:, 7:9].mean(axis=1), axis=1))
    hips = body[:, 7:9].mean(axis=1)
    np.testing.assert_allclose(f[:, 0:2], (body[:, 0] - hips) / torso, atol=1e-4)
    # the figure walks right at 40 px/s: 0.1 s of travel in torso lengths
    assert np.median(f[:, 52]) == pytest.approx(4.0 / torso, rel=0.05)
    assert np.all(f[:, 54] > 0) and np.all(f[:, 55] == 1)


def test_resamples_to_the_encoder_fps():
    body = _body13_walk(fps=60, duration_s=3)
    motion = Motion(joints=body.astype(np.float32), fps=60, skeleton="body13")
    f25, f20 = _encode(motion, duration_s=3.0), _encode(motion, duration_s=3.0, fps=20)
    f60 = _encode(motion, duration_s=3.0, fps=60)
    assert f25.shape == (75, 56) and f20.shape == (60, 56) and f60.shape == (180, 56)
    # same poses at the shared instants (the clip's median torso differs a little between samplings)
    np.testing.assert_allclose(f20[:, :26], f60[::3, :26], atol=0.01)
    np.testing.assert_allclose(f25[::5, :26], f20[::4, :26], atol=0.01)


def test_unseen_joints_and_low_confidence_stay_finite():
    motion = _as_layout(_body13_walk(fps=30, duration_s=4, seed=4), "coco17")
    conf = np.ones(motion.joints.shape[:2], np.float32)
    conf[:, [15, 16]] = 0.0  # ankles never seen
    conf[10:20, 9] = 0.1
    f = _encode(Motion(joints=motion.joints, fps=30, confidence=conf, skeleton="coco17"))
    assert np.isfinite(f).all()
    assert np.all(f[:, [22, 23, 24, 25]] == 0)  # body13 ankles are joints 11 and 12
    assert np.all(f[:, 55] <= 11 / 13 + 1e-6) and f[15, 55] < f[40, 55]
    blind = Motion(joints=motion.joints, fps=30, confidence=np.zeros_like(conf), skeleton="coco17")
    assert np.all(_encode(blind) == 0)


def test_errors():
    with pytest.raises(MediaError, match="no motion"):
        PoseEncoder().encode(MediaClip(duration_s=1.0, source="x"))
    with pytest.raises(ParameterError, match="'generic' has no mapping"):
        _encode(Motion(joints=np.zeros((10, 5, 2), np.float32), fps=30))
    with pytest.raises(ParameterError, match="fps=0"):
        PoseEncoder(fps=0)


@pytest.mark.data
def test_real_mocap_and_aist_windows(shared_data):
    enc = PoseEncoder()
    dwm = load_dwm_pair(shared_data / "dance_with_melody" / "DANCE_R_2").motion
    aist = load_keypoints(shared_data / "aist_keypoints2d" / "gBR_sBM_cAll_d04_mBR0_ch01.pkl")
    for motion in (dwm, aist):
        f = enc.encode(MediaClip(duration_s=10.0, motion=motion.slice(start_s=1.0, duration_s=10.0)))
        assert f.shape == (250, 56) and np.isfinite(f).all()
        # a standing dancer: the head is above the hips (y down) by about one torso or more
        assert np.median(f[:, 1]) < -0.8
