"""Plain containers passed between the media, beats and encoder stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Motion:
    """Body keypoints over time.

    ``joints`` is (T, J, C) float32 with C = 2 (x, y) or 3 (x, y, z), sampled at ``fps`` frames per
    second. ``confidence`` is (T, J) in [0, 1] or None when the source has none (motion capture).
    ``skeleton`` names the joint layout ("mediapipe33", "coco17", "dwm23", or "generic").
    """

    joints: np.ndarray
    fps: float
    confidence: np.ndarray | None = None
    skeleton: str = "generic"
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.fps)

    def slice(self, *, start_s: float, duration_s: float) -> Motion:
        """The frames in [start_s, start_s + duration_s)."""
        a = max(0, int(round(start_s * self.fps)))
        b = min(self.num_frames, a + int(round(duration_s * self.fps)))
        conf = None if self.confidence is None else self.confidence[a:b]
        return Motion(
            joints=self.joints[a:b], fps=self.fps, confidence=conf, skeleton=self.skeleton, source=self.source
        )


@dataclass
class MediaClip:
    """One aligned music/dance window handed to the encoders.

    Times are in seconds on the clip's own clock (0 = window start). Any of the three streams may be
    None when the source lacks it; an encoder declares which ones it needs.
    """

    duration_s: float
    audio: np.ndarray | None = None  # (n_samples,) float32 mono
    sr: int | None = None  # audio sample rate, Hz
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8 RGB video frames
    frames_fps: float | None = None
    motion: Motion | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
