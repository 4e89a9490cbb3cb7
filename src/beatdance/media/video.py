"""Video frame decoding with PyAV: RGB frames resampled to a fixed rate by presentation time."""

from __future__ import annotations

import math
import os

import av
import numpy as np

from ..errors import MediaError, ParameterError
from .audio import check_span, container_duration_s, container_start_s, open_media, video_streams
from .limits import QueryLimits, span_s

# Decoding may go through this many frames per frame sampled at the pose rate (a 120-fps video sampled at
# 15 fps) before a capped read stops: frames that repeat timestamps or a huge frame rate cost decoding too.
_DECODED_PER_SAMPLED = 8


class _DecodeBudget:
    """Counts a capped read's sampled and decoded frames and pixels; LimitError when a file holds more than
    its header said (a hidden or understated duration, a resolution that changes)."""

    def __init__(self, *, path: str | os.PathLike[str], limits: QueryLimits, fps: float, declared_s: float | None):
        self.path, self.limits, self.fps, self.declared_s = path, limits, fps, declared_s
        self.max_sampled = math.floor(limits.max_seconds * fps) + 1
        self.sampled_pixels = self.decoded = self.decoded_pixels = 0

    def _exceeded(self, *, measured: str, limit: str) -> None:
        declared = "no duration" if self.declared_s is None else f"{self.declared_s:.1f} s"
        remedy = (
            "Pass a shorter --duration or a smaller video"
            if limit == "max_video_pixel_frames"
            else f"Pass --start/--duration to search at most {self.limits.max_seconds:g} s of it"
        )
        raise self.limits.exceeded(
            path=self.path, limit=limit, remedy=remedy, measured=f"{measured} (the file declares {declared})"
        )

    def decoded_frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        self.decoded_pixels += frame.width * frame.height
        if self.decoded > _DECODED_PER_SAMPLED * self.max_sampled + 64:
            self._exceeded(
                measured=f"decoding passed {self.decoded} frames, {_DECODED_PER_SAMPLED} per frame sampled "
                f"in {self.limits.max_seconds:g} s",
                limit="max_seconds",
            )
        if self.decoded_pixels > _DECODED_PER_SAMPLED * self.limits.max_video_pixel_frames:
            self._exceeded(
                measured=f"decoding passed {self.decoded_pixels:.3g} pixels, {_DECODED_PER_SAMPLED}× the "
                "budget of the frames sampled",
                limit="max_video_pixel_frames",
            )

    def sampled_frame(self, frame: av.VideoFrame, *, count: int) -> None:
        self.sampled_pixels += frame.width * frame.height
        if count > self.max_sampled:
            self._exceeded(measured=f"decoding passed {self.limits.max_seconds:g} s of video", limit="max_seconds")
        # one frame of slack: the header check counts ceil(span × fps) frames, and the last one may round up once more
        if self.sampled_pixels > self.limits.max_video_pixel_frames + frame.width * frame.height:
            self._exceeded(
                measured=f"decoding passed {self.sampled_pixels:.3g} pixel-frames at {self.fps:g} fps",
                limit="max_video_pixel_frames",
            )


def _output_size(*, width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``max_side`` (each side at least 1)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def read_video_frames(
    path: str | os.PathLike[str],
    *,
    fps: float,
    start_s: float = 0.0,
    duration_s: float | None = None,
    max_side: int | None = None,
    limits: QueryLimits | None = None,
) -> tuple[np.ndarray, float]:
    """RGB uint8 frames (T, H, W, 3) of the first video stream, sampled at ``fps`` from ``start_s``.

    Output frame k shows the decoded frame whose presentation time is nearest to ``start_s + k / fps``,
    so a variable-frame-rate video is resampled correctly. ``T = round(duration_s * fps)``, fewer when the
    video ends first. With ``max_side`` the frames are downscaled (area interpolation) so that their longer
    side is at most ``max_side`` pixels; all frames are held in memory, so read long videos in spans.
    Rotation metadata (portrait phone videos) is not applied. With ``limits``, the span's duration and its
    pixels × frames at ``fps`` (full-size frames) are checked against the caps from the header before
    decoding, and counted while decoding, which stops with LimitError past them. Returns ``(frames, fps)``.
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
        file_duration_s = container_duration_s(c)
        check_span(path=path, start_s=start_s, duration_s=duration_s, file_duration_s=file_duration_s)
        budget = None
        if limits is not None:
            span = span_s(start_s=start_s, duration_s=duration_s, file_duration_s=file_duration_s)
            limits.check_seconds(path=path, seconds=span, what="the video to read")
            limits.check_video(
                path=path, width=stream.codec_context.width, height=stream.codec_context.height, span_s=span, fps=fps
            )
            budget = _DecodeBudget(path=path, limits=limits, fps=fps, declared_s=file_duration_s)
        width, height = _output_size(
            width=stream.codec_context.width, height=stream.codec_context.height, max_side=max_side
        )
        frames = _sample_frames(
            c, stream, fps=fps, start_s=start_s, duration_s=duration_s, size=(width, height), budget=budget
        )
    if not frames:
        raise MediaError(
            f"Span start_s={start_s:.3f} holds no video frames in '{path}'. Pass a start inside the video."
        )
    return np.stack(frames), float(fps)


def _sample_frames(
    c: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    fps: float,
    start_s: float,
    duration_s: float | None,
    size: tuple[int, int],
    budget: _DecodeBudget | None = None,
) -> list[np.ndarray]:
    """Decode from the keyframe before ``start_s`` and give each target time its nearest frame.

    Target k (time ``start_s + k / fps``) is decided once the frame after it arrives: it takes the
    previous frame when it lies before the midpoint of the two presentation times.
    """
    n_wanted = None if duration_s is None else int(round(duration_s * fps))
    origin_s = container_start_s(c)
    if start_s > 0:
        c.seek(int((start_s + origin_s) / stream.time_base), stream=stream, backward=True)  # type: ignore[operator]
    rate = stream.average_rate or stream.guessed_rate
    frame_period_s = 1.0 / float(rate) if rate else 1.0 / fps
    out: list[np.ndarray] = []
    prev_s = -math.inf
    prev: av.VideoFrame | None = None
    prev_rgb: np.ndarray | None = None

    def take_prev_until(limit_s: float) -> None:
        nonlocal prev_rgb
        assert prev is not None
        while (n_wanted is None or len(out) < n_wanted) and start_s + len(out) / fps < limit_s:
            if prev_rgb is None:
                prev_rgb = prev.reformat(
                    width=size[0], height=size[1], format="rgb24", interpolation="AREA"
                ).to_ndarray()
            out.append(prev_rgb)
            if budget is not None:
                budget.sampled_frame(prev, count=len(out))

    for frame in c.decode(stream):
        if budget is not None:
            budget.decoded_frame(frame)
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
