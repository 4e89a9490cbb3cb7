"""2D body pose from video frames with MediaPipe Pose (33 landmarks), offline.

Only ``model_complexity=1`` ships inside the mediapipe 0.10.21 wheel; the other complexities download
their model at run time, so they are not offered. MediaPipe tracks a single person. Coordinates are
normalised by the frame size (x right, y down, both in [0, 1] inside the frame; z is depth on the scale
of x, negative towards the camera). A frame without a detection is NaN with confidence 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import MediaError, ParameterError
from .skeletons import MEDIAPIPE33
from .types import Motion

_NUM_LANDMARKS = MEDIAPIPE33.num_joints


def _import_pose_solution() -> Any:
    # MediaPipe's TFLite and glog print set-up lines on every start; keep a user's own setting.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as exc:
        raise MediaError(
            f"MediaPipe is not importable ({exc}). Pose estimation from video needs it: "
            "pip install --no-deps mediapipe==0.10.21 (plus absl-py, attrs, flatbuffers, protobuf<5, opencv)."
        ) from exc
    return mp_pose


@contextmanager
def _native_logs_silenced() -> Iterator[None]:
    """Send the process's file descriptor 2 to /dev/null while MediaPipe's C++ runs.

    TFLite and absl print set-up lines ("Created TensorFlow Lite XNNPACK delegate", feedback-manager and
    projection warnings) straight to fd 2, which no logging setting reaches; Python errors still raise.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_confidence(value: float, *, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ParameterError(f"{name}={value} must lie in [0, 1], e.g. 0.5.")


def _check_frames(frames: np.ndarray, *, fps: float) -> None:
    if not fps > 0:
        raise ParameterError(f"fps={fps} must be strictly positive. Pass the frame rate of the frames, e.g. fps=25.")
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ParameterError(f"frames has shape {shape}; expected an RGB array (T, H, W, 3).")
    if frames.dtype != np.uint8:
        raise ParameterError(
            f"frames has dtype {frames.dtype}; expected uint8 RGB. Convert with np.clip(x, 0, 255).astype(np.uint8)."
        )


class PoseEstimator:
    """A reusable MediaPipe Pose tracker: create once, call :meth:`process` per clip, then :meth:`close`.

    Tracking state is reset at the start of each clip so that one clip never seeds the next.
    """

    def __init__(self, *, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        _check_confidence(min_detection_confidence, name="min_detection_confidence")
        _check_confidence(min_tracking_confidence, name="min_tracking_confidence")
        mp_pose = _import_pose_solution()
        with _native_logs_silenced():
            self._pose: Any = mp_pose.Pose(
                static_image_mode=False,
                model_complexity=1,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )

    def process(self, *, frames: np.ndarray, fps: float, source: str = "") -> Motion:
        """Landmarks of one clip: a ``mediapipe33`` Motion with (T, 33, 3) joints and visibility as confidence."""
        if self._pose is None:
            raise ParameterError("This PoseEstimator is closed. Create a new one to process more clips.")
        _check_frames(frames, fps=fps)
        n = frames.shape[0]
        joints = np.full((n, _NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        confidence = np.zeros((n, _NUM_LANDMARKS), dtype=np.float32)
        with _native_logs_silenced():
            self._pose.reset()
            for t in range(n):
                result = self._pose.process(np.ascontiguousarray(frames[t]))
                if result.pose_landmarks is None:
                    continue
                lm = result.pose_landmarks.landmark
                joints[t] = [(p.x, p.y, p.z) for p in lm]
                confidence[t] = [p.visibility for p in lm]
        return Motion(
            joints=joints,
            fps=float(fps),
            confidence=np.clip(confidence, 0.0, 1.0),
            skeleton=MEDIAPIPE33.name,
            source=source,
        )

    def close(self) -> None:
        """Free the MediaPipe graph; idempotent."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def estimate_pose(*, frames: np.ndarray, fps: float, min_detection_confidence: float = 0.5) -> Motion:
    """MediaPipe Pose on one clip of RGB uint8 frames (T, H, W, 3); see :class:`PoseEstimator`."""
    with PoseEstimator(min_detection_confidence=min_detection_confidence) as estimator:
        return estimator.process(frames=frames, fps=fps)


def person_ratio(motion: Motion) -> float:
    """Fraction of frames in which a person was found (any joint finite, with confidence > 0 when given)."""
    if motion.num_frames == 0:
        return 0.0
    seen = np.isfinite(motion.joints).all(axis=2)
    if motion.confidence is not None:
        seen &= motion.confidence > 0
    return float(seen.any(axis=1).mean())
