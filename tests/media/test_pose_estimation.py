"""MediaPipe pose estimation: output layout, missing detections, errors, and a drawn figure detected."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from beatdance.errors import MediaError, ParameterError
from beatdance.media.pose import PoseEstimator, estimate_pose, person_ratio
from beatdance.media.types import Motion


def _figure_frames(*, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a drawn dancing figure and its (T, 17, 2) COCO joints in frame-normalised coordinates."""
    from beatdance.synth.motion import synthesize_motion
    from beatdance.synth.render import FigureLook, render_frames

    beats = 0.2 + 0.5 * np.arange(8)
    motion = synthesize_motion(
        beat_times_s=beats, downbeat_times_s=beats[::2], style="funk", duration_s=seconds, fps=25, seed=3
    )
    frames = render_frames(motion=motion, fps=25, width=256, height=256, look=FigureLook.from_seed(3))
    return frames, motion.joints


def test_blank_frames_give_nan_joints_and_zero_confidence() -> None:
    frames = np.full((4, 96, 128, 3), 200, dtype=np.uint8)
    motion = estimate_pose(frames=frames, fps=10)
    assert motion.skeleton == "mediapipe33"
    assert motion.joints.shape == (4, 33, 3) and motion.confidence.shape == (4, 33)
    assert np.isnan(motion.joints).all() and (motion.confidence == 0).all()
    assert motion.fps == 10.0
    assert person_ratio(motion) == 0.0


def test_drawn_figure_is_detected_where_it_was_drawn() -> None:
    frames, coco = _figure_frames()
    motion = estimate_pose(frames=frames, fps=25)
    assert person_ratio(motion) >= 0.9
    seen = np.isfinite(motion.joints[:, 0, 0])
    # MediaPipe left/right wrists (15, 16) against COCO wrists (9, 10): same side, same place.
    error = np.abs(motion.joints[seen][:, [15, 16], :2] - coco[seen][:, [9, 10]])
    assert np.median(error) < 0.03
    assert (motion.confidence[seen][:, [11, 12]] > 0.5).all()


def test_estimator_is_reusable_and_closes() -> None:
    frames, _ = _figure_frames(seconds=0.4)
    with PoseEstimator() as estimator:
        first = estimator.process(frames=frames, fps=25)
        second = estimator.process(frames=frames, fps=25)
    # Tracking restarts per clip, so the same clip gives the same landmarks twice.
    np.testing.assert_allclose(first.joints, second.joints, atol=1e-4)
    with pytest.raises(ParameterError, match="closed"):
        estimator.process(frames=frames, fps=25)
    estimator.close()


@pytest.mark.parametrize(
    ("frames", "fps", "match"),
    [
        (np.zeros((2, 32, 32, 3), dtype=np.float32), 25, "dtype float32"),
        (np.zeros((32, 32, 3), dtype=np.uint8), 25, r"shape \(32, 32, 3\)"),
        (np.zeros((2, 32, 32, 4), dtype=np.uint8), 25, "RGB"),
        (np.zeros((2, 32, 32, 3), dtype=np.uint8), 0, "fps=0"),
    ],
)
def test_bad_frames_are_rejected(frames: np.ndarray, fps: float, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        estimate_pose(frames=frames, fps=fps)


def test_bad_confidence_is_rejected() -> None:
    with pytest.raises(ParameterError, match=r"min_detection_confidence=1.5 must lie in \[0, 1\]"):
        PoseEstimator(min_detection_confidence=1.5)


def test_missing_mediapipe_is_a_media_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    with pytest.raises(MediaError, match="pip install --no-deps mediapipe==0.10.21"):
        PoseEstimator()


def test_person_ratio_counts_frames_with_any_seen_joint() -> None:
    joints = np.zeros((4, 33, 3), dtype=np.float32)
    joints[0] = np.nan
    confidence = np.ones((4, 33), dtype=np.float32)
    confidence[1] = 0.0
    assert person_ratio(Motion(joints=joints, fps=25, confidence=confidence)) == 0.5
    assert person_ratio(Motion(joints=joints, fps=25)) == 0.75
    assert person_ratio(Motion(joints=joints[:0], fps=25)) == 0.0


def test_mediapipe_prints_nothing_to_stderr() -> None:
    """TFLite and absl write set-up lines straight to file descriptor 2; a run of the estimator leaves it clean,
    while Python's own output on stderr still shows."""
    import subprocess

    code = (
        "import sys, numpy as np\n"
        "from beatdance.media.pose import estimate_pose\n"
        "estimate_pose(frames=np.full((3, 64, 64, 3), 200, np.uint8), fps=10)\n"
        "print('still here', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "still here"
