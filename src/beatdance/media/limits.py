"""Caps on what one query file may cost, checked before the work (probe, header) and while decoding.

A small compressed file can declare hours of audio, a static video can hold minutes of frames, and a
500-KB ``.npz`` can inflate to gigabytes. Every reader of user input takes a :class:`QueryLimits` and
refuses, naming the limit and the option that raises it, before it allocates or decodes past the cap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class QueryLimits:
    """Per-query caps. The defaults fit a search query (a song excerpt or a dance take of a few minutes)."""

    max_seconds: float = 120.0
    """Longest media (audio or video) a query may declare or decode, in seconds (``--max-query-seconds``)."""
    max_video_pixel_frames: float = 2.0e10
    """Decoded video budget: width × height × frames sampled at the pose rate (``--max-video-pixel-frames``)."""
    max_keypoint_values: int = 50_000_000
    """Most numbers a keypoint file (npz/pkl/csv) may hold, read from its header before loading
    (``--max-keypoint-values``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueryLimits:
        return cls(**d)
