"""Stick figures of a motion for any joint layout: how ``export`` and the web page show keypoint dances."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import MediaError
from .skeletons import SKELETONS
from .types import Motion

_MIN_CONFIDENCE = 0.3  # keypoints below this confidence are not drawn
_BACKGROUND = (245, 245, 240)
_SIDE_COLOURS = {"left": (40, 110, 220), "right": (220, 60, 50), "centre": (60, 60, 60)}  # RGB


def render_skeleton(*, motion: Motion, fps: float, width: int, height: int) -> np.ndarray:
    """(T, height, width, 3) uint8 RGB stick figures of ``motion`` at ``fps``, for any joint layout.

    Bones come from the registered skeleton (none for an unknown layout: joints only); the dancer's left
    is blue, right red. 3-D motion is drawn from its x and y (image axes, y down, as the loaders give
    it). One scale for the whole clip fits every joint into the frame with a margin, so travelling
    across the floor stays visible. Frames show the nearest motion frame in time.
    """
    n_frames = int(round(motion.duration_s * fps))
    index = np.minimum(np.round(np.arange(n_frames) * motion.fps / fps).astype(int), motion.num_frames - 1)
    xy = motion.joints[index, :, :2].astype(np.float64)
    if motion.confidence is not None:
        xy[motion.confidence[index] < _MIN_CONFIDENCE] = np.nan
    seen = np.asarray(np.isfinite(xy).all(axis=2))
    if n_frames == 0 or not seen.any():
        raise MediaError(f"The dance '{motion.source}' has no visible joint to draw. Check the keypoint file.")
    lo, hi = xy[seen].min(axis=0), xy[seen].max(axis=0)
    extent = np.maximum(hi - lo, 1e-9)
    scale = 0.9 * min(width / extent[0], height / extent[1])
    px = (xy - (lo + hi) / 2) * scale + np.array([width / 2, height / 2])
    skeleton = SKELETONS.get(motion.skeleton)
    names = skeleton.joints if skeleton is not None else ("",) * motion.joints.shape[1]
    sides = [next((s for s in ("left", "right") if name.startswith(s)), "centre") for name in names]
    bones = skeleton.bones if skeleton is not None else ()
    thickness = max(2, round(height / 120))
    radius = max(2, round(height / 100))
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for t in range(n_frames):
        img = frames[t]
        img[:] = _BACKGROUND
        for a, b in bones:
            if seen[t, a] and seen[t, b]:
                side = sides[a] if sides[a] == sides[b] else "centre"
                cv2.line(
                    img,
                    tuple(np.round(px[t, a]).astype(int)),
                    tuple(np.round(px[t, b]).astype(int)),
                    _SIDE_COLOURS[side],
                    thickness,
                    cv2.LINE_AA,
                )
        for j in np.flatnonzero(seen[t]):
            cv2.circle(img, tuple(np.round(px[t, j]).astype(int)), radius, _SIDE_COLOURS[sides[j]], -1, cv2.LINE_AA)
    return frames
