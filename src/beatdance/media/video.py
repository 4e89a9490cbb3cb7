"""Video frame decoding with PyAV: RGB frames resampled to a fixed rate by presentation time."""

from __future__ import annotations

import math
import os

import av
import numpy as np

from ..errors import MediaError, ParameterError
from .audio import check_span, container_duration_s, container_start_s, open_media, video_streams


def _output_size(*, width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``max_side`` (each side at least 1)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def read_video_frames(path: str | os.PathLike[str], *, fps: float, start_s: float = 0.0,
                      duration_s: float | None = None, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """RGB uint8 frames (T, H, W, 3) of the first video stream, sampled at ``fps`` from ``start_s``.

    Output frame k shows the decoded frame whose presentation time is nearest to ``start_s + k / fps``,
    so a variable-frame-rate video is resampled correctly. ``T = round(duration_s * fps)``, fewer when the
    video ends first. With ``max_side`` the frames are downscaled (area interpolation) so that their longer
    side is at most ``max_side`` pixels; all frames are held in memory, so read long videos in spans.
    Rotation metadata (portrait phone videos) is not applied. Returns ``(frames, fps)``.
    """
    if not fps > 0 or not math.isfinite(fps):
        raise ParameterError(f"fps={fps} must be a strictly positive frame rate, e.g. fps=10.")
    if max_side is not None and max_side < 1:
        raise ParameterError(f"max_side={max_side} must be a positive number of pixels, or None to keep the size.")
    with open_media(path) as c:
        streams = video_streams(c)
        if not streams:
            raise MediaError(
                f"Media file '{path}' has no video stream (cover art does not count). "
                "Pass a video file (MP4/MKV/WebM/MOV), or use keypoints or audio instead."
            )
        stream = streams[0]
        stream.thread_type = "AUTO"
        check_span(path=path, start_s=start_s, duration_s=duration_s, file_duration_s=container_duration_s(c))
        width, height = _output_size(width=stream.codec_context.width, height=stream.codec_context.height,
                                     max_side=max_side)
        frames = _sample_frames(c, stream, fps=fps, start_s=start_s, duration_s=duration_s, size=(width, height))
    if not frames:
        raise MediaError(
            f"Span start_s={start_s:.3f} holds no video frames in '{path}'. Pass a start inside the video."
        )
    return np.stack(frames), float(fps)


def _sample_frames(c: av.container.InputContainer, stream: av.video.stream.VideoStream, *, fps: float,
                   start_s: float, duration_s: float | None, size: tuple[int, int]) -> list[np.ndarray]:
    """Decode from the keyframe before ``start_s`` and give each target time its nearest frame.

    Target k (time ``start_s + k / fps``) is decided once the frame after it arrives: it takes the
    previous frame when it lies before the midpoint of the two presentation times.
    """
    n_wanted = None if duration_s is None else int(round(duration_s * fps))
    origin_s = container_start_s(c)
    if start_s > 0:
        c.seek(int((start_s + origin_s) / stream.time_base), stream=stream, backward=True)
    rate = stream.average_rate or stream.guessed_rate
    frame_period_s = 1.0 / float(rate) if rate else 1.0 / fps
    out: list[np.ndarray] = []
    prev_s = -math.inf
    prev: av.VideoFrame | None = None
    prev_rgb: np.ndarray | None = None

    def take_prev_until(limit_s: float) -> None:
        nonlocal prev_rgb
        while (n_wanted is None or len(out) < n_wanted) and start_s + len(out) / fps < limit_s:
            if prev_rgb is None:
                assert prev is not None
                prev_rgb = prev.reformat(width=size[0], height=size[1], format="rgb24",
                                         interpolation="AREA").to_ndarray()
            out.append(prev_rgb)

    for frame in c.decode(stream):
        if frame.time is not None:
            t = float(frame.time) - origin_s
        else:
            t = prev_s + frame_period_s if prev is not None else 0.0
        if t <= prev_s:  # a repeated or out-of-order timestamp: keep the earlier frame
            continue
        if prev is not None:
            take_prev_until(0.5 * (prev_s + t))
        if n_wanted is not None and len(out) >= n_wanted:
            break
        prev_s, prev, prev_rgb = t, frame, None
    if prev is not None:  # the last frame is shown for one frame period
        take_prev_until(prev_s + frame_period_s)
    return out
