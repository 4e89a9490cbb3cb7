"""``export``: put a piece of music under a dance, shifted so that the music's beats land on the dance beats.

The dance is a video (its frames are re-encoded, MediaPipe Pose finds its motion), a keypoint file or a
Dance-with-Melody folder (drawn as a stick figure). Music beats (:func:`track_music_beats`) and dance
beats (:func:`kinematic_beats`) are compared over shifts of up to ``max_offset_s`` (:func:`best_offset`),
and the music is cut at the best shift and muxed under the dance as an H.264 + AAC MP4.

Offsets follow the pairing manifests of ``beatdance prepare``: ``offset_s`` is the music time, counted
from ``music_start_s``, that plays at the first exported frame. The shift may reach past either end of
the music file by at most ``max_offset_s``; that part is silence.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..beats.alignment import beat_alignment_score, best_offset
from ..beats.dance import DanceBeatConfig, DanceBeats, kinematic_beats
from ..beats.music import MusicBeats, track_music_beats
from ..errors import MediaError, ParameterError
from ..media.audio import check_audio, check_span, load_audio, probe_media
from ..media.drawing import render_skeleton
from ..media.keypoints import load_keypoints
from ..media.types import Motion
from ..plots import PathLike, plot_beat_alignment
from ..synth.render import encode_mp4
from ..util import atomic_write_bytes
from .extract import analyse_dance
from .inputs import VIDEO_EXTS

_MIN_PERSON_RATIO = 0.5  # a dance video must show a person in at least this fraction of its frames
_SPAN_TOLERANCE_S = 0.05  # containers round their durations; a span may end this much past them
_AAC_MAX_SR = 48000
_NEAR_BEST = 0.95  # shifts scoring this fraction of the best BA count as equally good (the smallest wins)


@dataclass
class ExportReport:
    """What :func:`export_pair` did.

    ``offset_s`` is the music time (from ``music_start_s``) that plays at the first frame; the BA scores
    (music -> dance, Gaussian width ``sigma_s``) are those of the music that plays, without the shift
    (``score_before``) and with it (``score_after``). Beat times are seconds on the exported clip's clock.
    """

    music: str
    dance: str
    dance_kind: str
    out: str
    offset_s: float
    score_before: float
    score_after: float
    music_tempo_bpm: float
    dance_tempo_bpm: float
    music_beats_s: list[float]
    dance_beats_s: list[float]
    music_start_s: float
    dance_start_s: float
    duration_s: float
    fps: float
    sigma_s: float
    plot: str | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _check_parameters(
    *,
    music_start_s: float,
    dance_start_s: float,
    duration_s: float | None,
    max_offset_s: float,
    step_s: float,
    fps: float,
    width: int,
    height: int,
    sigma_s: float,
) -> None:
    for name, value in (
        ("music_start_s", music_start_s),
        ("dance_start_s", dance_start_s),
        ("max_offset_s", max_offset_s),
    ):
        if not (np.isfinite(value) and value >= 0):
            raise ParameterError(f"{name}={value} must be a finite number of seconds >= 0.")
    for name, value in (("step_s", step_s), ("fps", fps), ("sigma_s", sigma_s)):
        if not (np.isfinite(value) and value > 0):
            raise ParameterError(f"{name}={value} must be strictly positive, e.g. step_s=0.02, fps=25, sigma_s=0.1.")
    if duration_s is not None and not (np.isfinite(duration_s) and duration_s > 0):
        raise ParameterError(
            f"duration_s={duration_s} must be strictly positive, or None for as long as both media last."
        )
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ParameterError(
            f"width={width}, height={height}: the frame size must be even and at least 64 x 64 "
            "pixels (H.264 4:2:0), e.g. 480 x 480."
        )


def _span_s(*, path: PathLike, what: str, start_s: float, duration_s: float | None, length_s: float | None) -> float:
    """The seconds available from ``start_s`` (``duration_s`` when given), or a beatdance error naming ``path``."""
    check_span(path=path, start_s=start_s, duration_s=duration_s, file_duration_s=length_s)
    available_s = np.inf if length_s is None else length_s - start_s
    if duration_s is None:
        return available_s
    if duration_s > available_s + _SPAN_TOLERANCE_S:
        raise MediaError(
            f"The {what} '{path}' lasts {length_s:.3f} s, so it has only {available_s:.3f} s after start "
            f"{start_s:.3f} s, less than duration_s={duration_s:.3f}. Pass a shorter --duration or an earlier start."
        )
    return duration_s


def _played_ba(
    *, music_beats_s: np.ndarray, dance_beats_s: np.ndarray, offset_s: float, duration_s: float, sigma_s: float
) -> tuple[float, np.ndarray]:
    """BA of the music beats that play when the music starts at ``offset_s``, and those beats on the clip's clock."""
    played = music_beats_s[(music_beats_s >= offset_s) & (music_beats_s < offset_s + duration_s)] - offset_s
    return beat_alignment_score(music_beats=played, dance_beats=dance_beats_s, sigma_frames=sigma_s), played


def _search_offset(
    *, music_beats_s: np.ndarray, dance_beats_s: np.ndarray, max_offset_s: float, step_s: float, sigma_s: float
) -> float:
    """The music time (from the music start) to play at dance time 0: the smallest within 5 % of the best BA.

    The search scores BA from the dance side (each dance beat to its nearest music beat, by
    :func:`best_offset` with the roles swapped): the dance beats are the same for every shift, whereas
    the music beats that play change with it, which would favour shifts that push beats out of the
    clip. Music with a steady beat aligns about equally well once per beat period, and which of those
    wins by a hair is down to beat-tracking noise; the nearest one changes the music least. The best BA
    within a range only grows with the range, so the smallest good range is found by bisection.
    """

    def search(steps: int) -> tuple[float, float]:
        return best_offset(
            music_beats_s=dance_beats_s,
            dance_beats_s=music_beats_s,
            max_offset_s=steps * step_s,
            step_s=step_s,
            sigma_s=sigma_s,
        )

    lo, hi = 0, int(np.floor(max_offset_s / step_s + 1e-9))
    good = _NEAR_BEST * search(hi)[1]
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if search(mid)[1] >= good else (mid + 1, hi)
    return search(hi)[0]


def _cut(y: np.ndarray, *, start: int, length: int) -> np.ndarray:
    """``length`` samples of ``y`` from index ``start`` (which may be negative), silence outside ``y``."""
    out = np.zeros(length, dtype=np.float32)
    a, b = max(start, 0), min(start + length, len(y))
    if b > a:
        out[a - start : b - start] = y[a:b]
    return out


def _dance_frames_and_beats(
    dance: Path, *, motion: Motion | None, start_s: float, span_s: float, fps: float, width: int, height: int
) -> tuple[np.ndarray, DanceBeats]:
    """The exported frames (a video's own picture, or the motion drawn as a stick figure) and the dance beats
    of ``[start_s, start_s + span_s)``; a span without any dance beat is a MediaError."""
    if motion is None:
        track = analyse_dance(
            dance,
            kind="video",
            beat_config=DanceBeatConfig(),
            start_s=start_s,
            duration_s=span_s,
            pose_fps=fps,
            max_side=max(width, height),
            min_person_ratio=_MIN_PERSON_RATIO,
        )
        assert track.frames is not None
        frames = track.frames[:, : track.frames.shape[1] // 2 * 2, : track.frames.shape[2] // 2 * 2]  # H.264: even
        beats = track.beats
    else:
        motion = motion.slice(start_s=start_s, duration_s=span_s)
        frames = render_skeleton(motion=motion, fps=fps, width=width, height=height)
        beats = kinematic_beats(motion=motion)
    if beats.times_s.size == 0:
        raise MediaError(
            f"The dance '{dance}' shows no dance beats between {start_s:.3f} and {start_s + len(frames) / fps:.3f} s "
            "(no motion, or a motionless person). Pass a span where the dancer moves."
        )
    return frames, beats


@dataclass
class _MusicWindow:
    """The decoded music around the clip (``max_offset_s`` either side) and its beats on the clip's clock."""

    y: np.ndarray
    sr: int
    start_s: float
    beats: MusicBeats
    beats_s: np.ndarray


def _music_window(
    music: Path, *, audio_sr: int | None, music_start_s: float, clip_s: float, max_offset_s: float
) -> _MusicWindow:
    sr = min(audio_sr or 44100, _AAC_MAX_SR)
    window_start_s = max(0.0, music_start_s - max_offset_s)
    y, sr = load_audio(
        music, sr=sr, start_s=window_start_s, duration_s=music_start_s + clip_s + max_offset_s - window_start_s
    )
    check_audio(y, sr=sr, path=music)
    beats = track_music_beats(y=y, sr=sr)
    beats_s = beats.times_s + (window_start_s - music_start_s)
    if beats_s.size == 0:
        raise MediaError(
            f"No beats were found in the music '{music}' from {music_start_s:.3f} s. Pass music with a beat."
        )
    return _MusicWindow(y=y, sr=sr, start_s=window_start_s, beats=beats, beats_s=beats_s)


def _chosen_offset(
    *,
    music_beats_s: np.ndarray,
    dance_beats_s: np.ndarray,
    clip_s: float,
    max_offset_s: float,
    step_s: float,
    sigma_s: float,
) -> tuple[float, float, float, np.ndarray]:
    """(offset, BA before, BA after, played music beats): the searched shift, unless the music that actually
    plays scores lower with it than without."""
    offset_s = _search_offset(
        music_beats_s=music_beats_s,
        dance_beats_s=dance_beats_s,
        max_offset_s=max_offset_s,
        step_s=step_s,
        sigma_s=sigma_s,
    )
    before, played_before = _played_ba(
        music_beats_s=music_beats_s, dance_beats_s=dance_beats_s, offset_s=0.0, duration_s=clip_s, sigma_s=sigma_s
    )
    after, played = _played_ba(
        music_beats_s=music_beats_s, dance_beats_s=dance_beats_s, offset_s=offset_s, duration_s=clip_s, sigma_s=sigma_s
    )
    if after < before:
        return 0.0, before, before, played_before
    return offset_s, before, after, played


def export_pair(
    *,
    music: PathLike,
    dance: PathLike,
    out: PathLike,
    music_start_s: float = 0.0,
    dance_start_s: float = 0.0,
    duration_s: float | None = None,
    max_offset_s: float = 2.0,
    step_s: float = 0.02,
    fps: float = 25.0,
    width: int = 480,
    height: int = 480,
    plot: PathLike | None = None,
    sigma_s: float = 0.1,
) -> ExportReport:
    """Write ``out`` (MP4, atomically): the dance from ``dance_start_s`` with the music beat-aligned under it.

    ``duration_s`` defaults to as long as both the dance and the music last from their starts. Video
    dances keep their picture (scaled so the longer side is at most ``max(width, height)``); keypoint
    and Dance-with-Melody dances are drawn at ``width`` x ``height``. Both are resampled to ``fps``.
    The shift is searched in ``step_s`` steps, preferring the smallest one within 5 % of the best
    beat-alignment score (BA); ``sigma_s`` is the Gaussian width of BA. A shift that scores lower than
    no shift on the music that actually plays is not applied.
    ``plot`` writes a PNG of the beats before and after the shift.
    """
    started = time.perf_counter()
    _check_parameters(
        music_start_s=music_start_s,
        dance_start_s=dance_start_s,
        duration_s=duration_s,
        max_offset_s=max_offset_s,
        step_s=step_s,
        fps=fps,
        width=width,
        height=height,
        sigma_s=sigma_s,
    )
    music, dance = Path(music), Path(dance)
    info = probe_media(music)
    if not info.has_audio:
        raise MediaError(f"The music '{music}' has no audio stream. Pass an audio file or a video with a soundtrack.")
    is_video = dance.suffix.lower() in VIDEO_EXTS
    motion = None if is_video else load_keypoints(dance)
    dance_length_s = probe_media(dance).duration_s if motion is None else motion.duration_s
    span_s = min(
        _span_s(path=dance, what="dance", start_s=dance_start_s, duration_s=duration_s, length_s=dance_length_s),
        _span_s(path=music, what="music", start_s=music_start_s, duration_s=duration_s, length_s=info.duration_s),
    )
    if not np.isfinite(span_s):
        raise MediaError(f"Neither '{music}' nor '{dance}' declares its duration. Pass duration_s (--duration).")
    frames, dance_beats = _dance_frames_and_beats(
        dance, motion=motion, start_s=dance_start_s, span_s=span_s, fps=fps, width=width, height=height
    )
    clip_s = len(frames) / fps
    window = _music_window(
        music, audio_sr=info.audio_sr, music_start_s=music_start_s, clip_s=clip_s, max_offset_s=max_offset_s
    )
    offset_s, score_before, score_after, played = _chosen_offset(
        music_beats_s=window.beats_s,
        dance_beats_s=dance_beats.times_s,
        clip_s=clip_s,
        max_offset_s=max_offset_s,
        step_s=step_s,
        sigma_s=sigma_s,
    )
    start = int(round((music_start_s + offset_s - window.start_s) * window.sr))
    audio = _cut(window.y, start=start, length=int(round(clip_s * window.sr)))
    atomic_write_bytes(out, encode_mp4(frames=frames, fps=fps, audio=audio, sr=window.sr))
    if plot is not None:
        plot_beat_alignment(
            path=plot,
            music_beats_s=window.beats_s,
            dance_beats_s=dance_beats.times_s,
            duration_s=clip_s,
            offset_s=-offset_s,
            score=score_after,
            score_before=score_before,
            title=f"{music.name} under {dance.name}",
        )
    return ExportReport(
        music=str(music),
        dance=str(dance),
        dance_kind="video" if is_video else "keypoints",
        out=str(out),
        offset_s=float(offset_s),
        score_before=score_before,
        score_after=score_after,
        music_tempo_bpm=window.beats.tempo_bpm,
        dance_tempo_bpm=dance_beats.tempo_bpm,
        music_beats_s=played.tolist(),
        dance_beats_s=dance_beats.times_s.tolist(),
        music_start_s=music_start_s,
        dance_start_s=dance_start_s,
        duration_s=clip_s,
        fps=fps,
        sigma_s=sigma_s,
        plot=None if plot is None else str(plot),
        seconds=time.perf_counter() - started,
    )
