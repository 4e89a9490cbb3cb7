"""Caps on what one query file may cost, checked before the work (probe, header) and while decoding.

A small compressed file can declare hours of audio, a static video can hold minutes of frames, and a
500-KB ``.npz`` can inflate to gigabytes. Every reader of user input takes a :class:`QueryLimits` and
refuses, naming the limit and the option that raises it, before it allocates or decodes past the cap.

The duration cap applies to the span a query reads: from ``start_s`` to ``start_s + duration_s``, or to the
end of the file when no duration is given (a query analyses that whole span for its rhythm context).
``None`` in place of limits (``prepare`` and ``export`` on the user's own files) reads without caps.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LimitError, MediaError, ParameterError

if TYPE_CHECKING:
    import numpy as np

OPTIONS = {
    "max_seconds": "--max-query-seconds",
    "max_video_pixel_frames": "--max-video-pixel-frames",
    "max_keypoint_values": "--max-keypoint-values",
}
"""The command-line option (of ``beatdance search`` and ``beatdance serve``) that sets each limit."""


@dataclass(frozen=True)
class QueryLimits:
    """Per-query caps. The defaults fit a search query (a song excerpt or a dance take of a few minutes)."""

    max_seconds: float = 120.0
    """Longest media (audio, video or motion) a query may declare or decode, in seconds (``--max-query-seconds``)."""
    max_video_pixel_frames: float = 2.0e10
    """Decoded video budget: width × height × frames sampled at the pose rate (``--max-video-pixel-frames``);
    4K for two minutes at the 15-fps pose rate is 1.5e10."""
    max_keypoint_values: int = 20_000_000
    """Most numbers a keypoint file (npz/pkl/csv/json) may hold, read from its header before loading
    (``--max-keypoint-values``); two minutes of 133 joints × 3 coordinates at 120 fps is 5.7 million."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ParameterError(
                    f"QueryLimits.{name}={value!r} must be a positive finite number "
                    f"({OPTIONS[name]} on the command line)."
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueryLimits:
        return cls(**d)

    def exceeded(self, *, path: str | os.PathLike[str], measured: str, limit: str, remedy: str) -> LimitError:
        """The LimitError for ``path``: what was measured, the limit it passes, and how to get under or raise it."""
        value = getattr(self, limit)
        shown = value if isinstance(value, int) else f"{value:g}"
        return LimitError(
            f"{path}: {measured}, over the query limit {limit}={shown}. {remedy}, or "
            f"raise {OPTIONS[limit]} (beatdance search / beatdance serve)."
        )

    def check_seconds(self, *, path: str | os.PathLike[str], seconds: float | None, what: str) -> None:
        """LimitError when a span of ``seconds`` (None: not declared) is longer than ``max_seconds``."""
        if seconds is not None and seconds > self.max_seconds:
            raise self.exceeded(
                path=path,
                measured=f"{what} lasts {seconds:.1f} s",
                limit="max_seconds",
                remedy=f"Pass --start/--duration to search at most {self.max_seconds:g} s of it",
            )

    def check_video(
        self, *, path: str | os.PathLike[str], width: int, height: int, span_s: float | None, fps: float
    ) -> None:
        """LimitError when ``width`` × ``height`` pixels × the frames of ``span_s`` at ``fps`` pass the video budget."""
        if span_s is None:
            return
        frames = math.ceil(span_s * fps)
        pixel_frames = float(width) * float(height) * frames
        if pixel_frames > self.max_video_pixel_frames:
            raise self.exceeded(
                path=path,
                measured=f"{width}×{height} pixels × {frames} frames at {fps:g} fps = {pixel_frames:.3g} pixel-frames",
                limit="max_video_pixel_frames",
                remedy="Pass a shorter --duration or a smaller video",
            )

    def check_values(self, *, path: str | os.PathLike[str], values: int, what: str) -> None:
        """LimitError when a keypoint file holds (or declares) more than ``max_keypoint_values`` numbers."""
        if values > self.max_keypoint_values:
            raise self.exceeded(
                path=path, measured=f"{what} {values} values", limit="max_keypoint_values", remedy="Pass a shorter take"
            )


def span_s(*, start_s: float, duration_s: float | None, file_duration_s: float | None) -> float | None:
    """Seconds that reading ``[start_s, start_s + duration_s)`` covers of a file lasting ``file_duration_s``
    (None: to the end, or not declared); None when neither bounds it."""
    rest = None if file_duration_s is None else max(0.0, file_duration_s - start_s)
    if duration_s is None:
        return rest
    return duration_s if rest is None else min(duration_s, rest)


def npz_headers(path: str | os.PathLike[str], keys: tuple[str, ...]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of the arrays ``keys`` of an ``.npz`` that holds them, read from the ``.npy`` headers of the
    zip members without loading (or inflating) any data. MediaError for a member that is not an array."""
    import numpy as np  # here, so that the command line can import the limits without numpy

    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in keys:
                member = f"{key}.npy" if f"{key}.npy" in names else key
                if member not in names:
                    continue
                with zf.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise ValueError(f"'{key}' has .npy format version {version}; expected 1.0 or 2.0")
                out[key] = (tuple(shape), dtype)
    except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise MediaError(
            f"{path}: not a readable .npz of plain arrays ({exc}). Re-save the keypoints with "
            "numpy.savez (joints, fps, optional confidence and skeleton)."
        ) from exc
    return out
