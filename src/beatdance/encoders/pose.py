"""Built-in dance encoder "pose": body-normalised keypoints and their motion, no weights needed.

The motion (any layout with a common-body mapping: mediapipe33 from video, coco17 from AIST++, dwm23
from motion capture) is mapped onto the 13 ``body13`` joints (head, then left/right shoulder, elbow,
wrist, hip, knee, ankle; see ``media.skeletons.BODY13``) and resampled by linear interpolation to
``fps`` frames per second: frame t describes time ``t / fps`` of the clip, so a 10-s clip gives
``round(10 * fps)`` frames. Only x and y are used, for every source: 2D video keypoints have no
reliable depth, and the x/y projection of motion capture is what a fixed front camera would see, so
all sources mean the same thing in every column. Missing points (NaN or confidence below
``confidence_threshold``) are interpolated over time; a joint never seen in the clip is 0.

Units: "torso" is the clip's median 2D distance between the shoulder and hip midpoints, so every
column is unchanged when the dancer is filmed larger or elsewhere in the frame. Velocities are in
torso lengths per ``velocity_scale_s`` seconds (per 0.1 s by default), which keeps them near [-1, 1].

=============  =====  ============================================================================
columns        count  content
=============  =====  ============================================================================
0 .. 25        26     joint positions (x0, y0, x1, y1, ... in body13 order) minus the hip midpoint,
                      in torso lengths: the pose.
26 .. 51       26     their velocities (central differences), same order.
52 .. 53       2      velocity of the hip midpoint: travel across the floor or frame.
54             1      speed envelope of ``beats.dance.speed_envelope`` (mean joint speed, scale-free,
                      same smoothing as the dance beats): its minima are the dance beats.
55             1      fraction of the 13 joints actually observed in the frame (1 = nothing guessed).
=============  =====  ============================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..beats.dance import DanceBeatConfig, speed_envelope
from ..errors import MediaError, ParameterError
from ..media.keypoints import body_scale, interpolate_missing, to_common_body
from ..media.skeletons import BODY13
from ..media.types import MediaClip, Motion
from .registry import Encoder, register_encoder

_NUM_JOINTS = BODY13.num_joints
_DIM = 4 * _NUM_JOINTS + 4


@register_encoder("pose")
class PoseEncoder(Encoder):
    """Body-normalised body13 pose, velocities, travel, speed envelope and visibility; see the module table."""

    modality = "dance"
    needs = frozenset({"motion"})

    def __init__(
        self,
        *,
        fps: float = 25.0,
        confidence_threshold: float = 0.3,
        velocity_scale_s: float = 0.1,
        smoothing_sigma_s: float = DanceBeatConfig.smoothing_sigma_s,
    ) -> None:
        if not (np.isfinite(fps) and fps > 0):
            raise ParameterError(f"fps={fps} must be a positive frame rate in frames per second, e.g. 25.")
        if not velocity_scale_s > 0:
            raise ParameterError(f"velocity_scale_s={velocity_scale_s} must be a positive time in seconds, e.g. 0.1.")
        self._fps = float(fps)
        self.velocity_scale_s = float(velocity_scale_s)
        self.speed_config = DanceBeatConfig(
            joints="body", confidence_threshold=confidence_threshold, smoothing_sigma_s=smoothing_sigma_s
        )

    @property
    def dim(self) -> int:
        return _DIM

    @property
    def fps(self) -> float:
        return self._fps

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "layout": "body13-xy",
            "velocity_scale_s": self.velocity_scale_s,
            "speed": self.speed_config.to_dict(),
        }

    def encode(self, clip: MediaClip) -> np.ndarray:
        """(round(clip.duration_s * fps), 56) float32 features of ``clip.motion``."""
        if clip.motion is None:
            raise MediaError(
                f"clip {clip.source!r} has no motion, which the 'pose' encoder needs. Load keypoints "
                "(media.keypoints.load_keypoints) or run pose estimation on the video first."
            )
        body = to_common_body(clip.motion)
        n_out = max(1, int(round(clip.duration_s * self._fps)))
        if body.num_frames == 0:
            return np.zeros((n_out, _DIM), dtype=np.float32)
        joints, observed = interpolate_missing(body, confidence_threshold=self.speed_config.confidence_threshold)
        seen = np.asarray(observed.any(axis=0))
        source_pos = np.arange(n_out) * (body.fps / self._fps)
        xy = _resample(joints[..., :2].reshape(body.num_frames, -1), source_pos).reshape(n_out, _NUM_JOINTS, 2)
        visible = _resample(observed.mean(axis=1, keepdims=True), source_pos)
        if not seen.any():
            return np.concatenate([np.zeros((n_out, _DIM - 1)), visible], axis=1).astype(np.float32)
        scale = body_scale(xy, skeleton=BODY13.name)
        centre = _centre(xy, seen)
        pose = np.nan_to_num((xy - centre[:, None]) / scale)
        per_step = self._fps * self.velocity_scale_s
        velocity = _velocity(pose) * per_step
        travel = _velocity(centre / scale) * per_step
        resampled = Motion(joints=xy.astype(np.float32), fps=self._fps, skeleton=BODY13.name)
        speed = speed_envelope(motion=resampled, config=self.speed_config) * self.velocity_scale_s
        return np.concatenate(
            [pose.reshape(n_out, -1), velocity.reshape(n_out, -1), travel, speed[:, None], visible], axis=1
        ).astype(np.float32)


def _resample(values: np.ndarray, source_pos: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (T, K) linearly interpolated at fractional row positions, held at the ends."""
    rows = np.arange(values.shape[0])
    return np.stack([np.interp(source_pos, rows, values[:, k]) for k in range(values.shape[1])], axis=1)


def _centre(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per-frame hip midpoint, or the centroid of the seen joints when a hip is never seen."""
    hips = list(BODY13.hips)
    if seen[hips].all():
        return xy[:, hips].mean(axis=1)
    return xy[:, seen].mean(axis=1)


def _velocity(x: np.ndarray) -> np.ndarray:
    """Per-frame change along axis 0 (central differences); zeros for a single frame."""
    return np.gradient(x, axis=0) if x.shape[0] > 1 else np.zeros_like(x)
