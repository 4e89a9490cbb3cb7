"""Audio decoding with PyAV (FFmpeg): audio files and the audio track of videos, as mono float32.

PyAV bundles FFmpeg, so WAV/FLAC/OGG/MP3/M4A files and the audio of MP4/MKV/WebM/MOV videos all go
through one code path. Decoding seeks to the requested span and stops after it; resampling uses soxr
(the same high-quality resampler librosa uses by default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

from ..errors import MediaError, ParameterError
from .limits import QueryLimits, span_s

# Decoding starts this long before the requested span so that codecs with inter-frame state
# (the MP3 bit reservoir, AAC overlap) have settled when the span begins.
_PREROLL_S = 0.5


@dataclass(frozen=True)
class MediaInfo:
    """What a media file contains, read from its container header without decoding.

    ``duration_s`` is None when the container does not declare one. Audio fields are None without an
    audio stream, video fields None without a video stream (cover art does not count). ``codecs`` lists
    the decoder names of the audio streams, then of the video streams.
    """

    path: str
    duration_s: float | None
    has_audio: bool
    has_video: bool
    audio_sr: int | None
    channels: int | None
    video_fps: float | None
    width: int | None
    height: int | None
    codecs: tuple[str, ...]
    container_format: str


def _check_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or a MediaError when it is missing, not a file or empty."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"Media file '{p}' does not exist. Check the path (relative paths start at {Path.cwd()}).")
    if not p.is_file():
        raise MediaError(f"Media path '{p}' is not a file. Pass an audio or video file, not a directory.")
    if p.stat().st_size == 0:
        raise MediaError(f"Media file '{p}' is empty (0 bytes). Re-export or re-download it.")
    return p


@contextmanager
def open_media(path: str | os.PathLike[str]) -> Iterator[av.container.InputContainer]:
    """Open ``path`` with PyAV, turning FFmpeg failures into MediaError that names the file."""
    p = _check_path(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.InvalidDataError as exc:
        raise MediaError(
            f"Media file '{p}' is corrupt, truncated or in an unknown format ({exc.strerror}). "
            "Check that it plays in a media player, or re-encode it to WAV/MP3/MP4."
        ) from exc
    except av.FFmpegError as exc:
        raise MediaError(f"Media file '{p}' cannot be opened: {exc}. Check the file and its permissions.") from exc
    try:
        yield container
    except av.FFmpegError as exc:
        raise MediaError(
            f"Media file '{p}' has corrupt or truncated data ({exc}). Re-encode or re-download it."
        ) from exc
    finally:
        container.close()


def container_duration_s(container: av.container.InputContainer) -> float | None:
    """Declared duration of the container in seconds, or the longest stream's, or None."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(durations) if durations else None


def container_start_s(container: av.container.InputContainer) -> float:
    """Presentation time of the container's first sample, which beatdance treats as time 0.

    MP3 files, for example, start at the encoder delay (about 25 ms), and that offset is also in every
    timestamp after a seek; subtracting it keeps seeking and reading from the start consistent, while
    keeping audio and video of one file in sync.
    """
    return c_start / av.time_base if (c_start := container.start_time) is not None else 0.0


def stream_duration_s(stream: av.stream.Stream) -> float | None:
    """Duration the stream itself declares in seconds, or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def video_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The real video streams: cover art that MP3/M4A files carry as a one-picture stream is left out."""
    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def probe_media(path: str | os.PathLike[str]) -> MediaInfo:
    """Read the streams and duration of an audio or video file without decoding it."""
    with open_media(path) as c:
        audio = c.streams.audio[0] if c.streams.audio else None
        videos = video_streams(c)
        video = videos[0] if videos else None
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        return MediaInfo(
            path=str(path),
            duration_s=container_duration_s(c),
            has_audio=audio is not None,
            has_video=video is not None,
            audio_sr=audio.codec_context.sample_rate if audio is not None else None,
            channels=audio.codec_context.channels if audio is not None else None,
            video_fps=float(rate) if rate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            codecs=tuple(s.codec_context.name for s in [*c.streams.audio, *videos]),
            container_format=c.format.name,
        )


def check_span(
    *, path: str | os.PathLike[str], start_s: float, duration_s: float | None, file_duration_s: float | None
) -> None:
    """Raise ParameterError for a negative start or non-positive duration, MediaError for a start past the end."""
    if not np.isfinite(start_s) or start_s < 0:
        raise ParameterError(f"start_s={start_s} must be a finite number >= 0 (seconds from the start of '{path}').")
    if duration_s is not None and (not np.isfinite(duration_s) or duration_s <= 0):
        raise ParameterError(f"duration_s={duration_s} must be strictly positive, or None to read to the end.")
    if file_duration_s is not None and start_s >= file_duration_s:
        raise MediaError(
            f"Span start_s={start_s:.3f} is outside media file '{path}', which lasts {file_duration_s:.3f} s. "
            f"Pass start_s < {file_duration_s:.3f}."
        )


def load_audio(
    path: str | os.PathLike[str],
    *,
    sr: int = 22050,
    start_s: float = 0.0,
    duration_s: float | None = None,
    limits: QueryLimits | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``[start_s, start_s + duration_s)`` of the first audio stream of ``path`` as mono float32 at ``sr`` Hz.

    Works for audio files and for the audio track of videos. Channels are averaged (as in librosa).
    A span that runs past the end of the file is cut at the end, as ``librosa.load`` does; a span that
    starts at or after the end raises MediaError. A file whose data ends well before the length its
    header declares (a cut FLAC, or MP3 with a Xing header) raises MediaError; FFmpeg reads a cut WAV as
    a shorter file. With ``limits``, a span longer than ``limits.max_seconds`` by the container's duration is
    refused before decoding, and decoding stops with LimitError once it passes the cap (a file that hides or
    understates its duration). Returns ``(y, sr)``.
    """
    if sr <= 0:
        raise ParameterError(f"sr={sr} must be a strictly positive sample rate in Hz, e.g. sr=22050.")
    with open_media(path) as c:
        if not c.streams.audio:
            raise MediaError(
                f"Media file '{path}' has no audio stream (streams: {[s.type for s in c.streams]}). "
                "Pass a file with a soundtrack, or give the music as a separate audio file."
            )
        stream = c.streams.audio[0]
        file_duration_s = container_duration_s(c)
        check_span(path=path, start_s=start_s, duration_s=duration_s, file_duration_s=file_duration_s)
        if limits is not None:
            limits.check_seconds(
                path=path,
                what="the audio to read",
                seconds=span_s(start_s=start_s, duration_s=duration_s, file_duration_s=file_duration_s),
            )
        declared_s = stream_duration_s(stream)
        cap = _DecodeCap(path=path, limits=limits, declared_s=file_duration_s) if limits is not None else None
        y, native_sr, first_s = _decode_audio(c, stream, start_s=start_s, duration_s=duration_s, cap=cap)
    decoded_end_s = first_s + len(y) / native_sr
    a = int(round((start_s - first_s) * native_sr))
    b = len(y) if duration_s is None else a + int(round(duration_s * native_sr))
    y = y[max(a, 0) : b]
    if y.size == 0:
        raise MediaError(
            f"Span start_s={start_s:.3f} holds no audio in '{path}' (the decoded audio ends at {decoded_end_s:.3f} s). "
            "Pass a start inside the file."
        )
    _check_not_truncated(
        path=path,
        decoded_end_s=decoded_end_s,
        declared_s=declared_s,
        wanted_end_s=None if duration_s is None else start_s + duration_s,
    )
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32), sr


@dataclass(frozen=True)
class _DecodeCap:
    """Stops decoding once more audio than ``limits.max_seconds`` (plus the pre-roll and one frame) is held."""

    path: str | os.PathLike[str]
    limits: QueryLimits
    declared_s: float | None

    def check(self, *, decoded_s: float) -> None:
        cap_s = self.limits.max_seconds + _PREROLL_S + 1.0
        if decoded_s > cap_s:
            declared = "no duration" if self.declared_s is None else f"{self.declared_s:.1f} s"
            raise self.limits.exceeded(
                path=self.path,
                limit="max_seconds",
                measured=f"decoding passed {cap_s:g} s of audio (the file declares {declared})",
                remedy=f"Pass --start/--duration to search at most {self.limits.max_seconds:g} s of it",
            )


def _decode_audio(
    c: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    *,
    start_s: float,
    duration_s: float | None,
    seek: bool = True,
    cap: _DecodeCap | None = None,
) -> tuple[np.ndarray, int, float]:
    """Mono float32 samples at the native rate from just before ``start_s``, and the time of the first one.

    When a seek lands after ``start_s`` (an inexact index), the span is decoded again from the start.
    ``cap`` counts the samples held and stops decoding past the query limit.
    """
    origin_s = container_start_s(c)
    seek_s = max(0.0, start_s - _PREROLL_S) if seek else 0.0
    if seek_s > 0:
        c.seek(int((seek_s + origin_s) / stream.time_base), stream=stream, backward=True)  # type: ignore[operator]
    end_s = None if duration_s is None else start_s + duration_s
    chunks: list[np.ndarray] = []
    resampler = None
    first_s = start_s
    next_s = 0.0
    held = 0
    for frame in c.decode(stream):
        frame_s = float(frame.time) - origin_s if frame.time is not None else next_s
        if end_s is not None and frame_s >= end_s:
            break
        if resampler is None:  # planar float at the native rate: only a sample-format conversion
            if seek_s > 0 and frame_s > start_s:
                c.seek(0, stream=stream, backward=True)
                return _decode_audio(c, stream, start_s=start_s, duration_s=duration_s, seek=False, cap=cap)
            resampler = av.AudioResampler(format="fltp", rate=frame.sample_rate)
            first_s = frame_s
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().mean(axis=0))
            held += chunks[-1].size
        if cap is not None:
            cap.check(decoded_s=held / resampler.rate)
        next_s = frame_s + frame.samples / frame.sample_rate
    if resampler is None:
        return np.zeros(0, dtype=np.float32), stream.codec_context.sample_rate or 1, first_s
    chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32, copy=False), resampler.rate, first_s


def _check_not_truncated(
    *, path: str | os.PathLike[str], decoded_end_s: float, declared_s: float | None, wanted_end_s: float | None
) -> None:
    """MediaError when decoding stopped well before both the wanted end and the stream's declared duration.

    The tolerance (0.5 s or 2 % of the file) absorbs inexact durations that some containers estimate
    from the bitrate.
    """
    if declared_s is None:
        return
    expected_end_s = declared_s if wanted_end_s is None else min(wanted_end_s, declared_s)
    if expected_end_s - decoded_end_s > max(0.5, 0.02 * declared_s):
        raise MediaError(
            f"Media file '{path}' is truncated: its header declares {declared_s:.3f} s but the data ends at "
            f"{decoded_end_s:.3f} s. Re-download or re-encode it."
        )


def check_audio(
    y: np.ndarray,
    *,
    sr: int,
    path: str | os.PathLike[str] = "<array>",
    min_duration_s: float = 0.0,
    silence_dbfs: float = -60.0,
) -> None:
    """Raise MediaError when ``y`` holds NaN/inf, is silent (RMS below ``silence_dbfs``) or is too short.

    ``path`` only names the source in the message.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise MediaError(f"Audio from '{path}' has shape {y.shape}; expected mono (n_samples,). Average the channels.")
    if not np.all(np.isfinite(y)):
        raise MediaError(f"Audio from '{path}' contains NaN or infinite samples. Re-decode or re-export the file.")
    duration_s = y.size / float(sr)
    if duration_s < min_duration_s:
        raise MediaError(
            f"Audio from '{path}' lasts {duration_s:.3f} s, shorter than the {min_duration_s:g} s needed (one "
            "window of the store or library). Use a longer file, or prepare with a shorter --window."
        )
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    rms_dbfs = 20.0 * np.log10(max(rms, 1e-12))
    if rms_dbfs < silence_dbfs:
        raise MediaError(
            f"Audio from '{path}' is silent: RMS {rms_dbfs:.1f} dBFS is below silence_dbfs={silence_dbfs} dBFS. "
            "Check that the right track was decoded, or lower silence_dbfs."
        )
