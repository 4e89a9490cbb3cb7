"""The InfoExtractor on one file at a time: analyse a whole music or dance track once, then cut windows.

Beats need context, so a track is analysed as a whole (or over the span asked for) and every window
takes its beats from that analysis. ``prepare`` cuts aligned windows of a music track and a dance track;
a search query cuts windows of one track. Both use the functions here, so a query is extracted exactly
like the clips of the library it is searched against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..beats.dance import DanceBeatConfig, DanceBeats, kinematic_beats
from ..beats.grid import times_to_grid
from ..beats.music import MusicBeatConfig, MusicBeats, track_music_beats
from ..beats.rhythm import RhythmConfig, TrackRhythm, track_rhythm, window_rhythm
from ..encoders.registry import Encoder, create_encoder
from ..errors import MediaError, ParameterError
from ..media.audio import check_audio, load_audio, probe_media
from ..media.keypoints import body_scale, load_dwm_pair, load_keypoints
from ..media.limits import QueryLimits, span_s
from ..media.pose import PoseEstimator, person_ratio
from ..media.types import MediaClip, Motion
from ..media.video import read_video_frames
from .inputs import AUDIO_EXTS, KEYPOINT_EXTS, VIDEO_EXTS, is_dwm_folder

DanceKind = Literal["video", "keypoints", "dwm"]


class WindowSkipped(MediaError):
    """One window cannot be used (silence, nobody in view); the rest of the track can."""


@dataclass
class MusicTrack:
    """Mono audio of ``path`` from file time ``start_s`` on, with its beats (times relative to ``start_s``)."""

    path: str
    y: np.ndarray
    sr: int
    start_s: float
    beats: MusicBeats

    @property
    def duration_s(self) -> float:
        return len(self.y) / float(self.sr)


@dataclass
class DanceTrack:
    """Motion (and video frames for a video) of ``path`` from file time ``start_s`` on, with its beats."""

    path: str
    kind: DanceKind
    motion: Motion
    frames: np.ndarray | None
    frames_fps: float | None
    start_s: float
    beats: DanceBeats
    music_offset_s: float = 0.0  # music time at dance time 0 when the source says (Dance-with-Melody)

    @property
    def duration_s(self) -> float:
        return self.motion.duration_s


@dataclass
class Window:
    """One window of a track: per-frame encoder features, its 0/1 beat grid and beat times (window clock),
    its rhythm array (``beats.rhythm``) when a rhythm config was given, and (music) the song's beats per bar
    (``MusicBeats.beats_per_bar``; 0: unknown)."""

    start_s: float
    features: np.ndarray
    beat_grid: np.ndarray
    beat_times_s: np.ndarray
    rhythm: np.ndarray | None = None
    beats_per_bar: int = 0


@dataclass
class RhythmContext:
    """The whole-track rhythm of one track, computed once and shared by all of its windows."""

    config: RhythmConfig
    track: TrackRhythm


def _envelope(track: MusicTrack | DanceTrack) -> np.ndarray:
    """The envelope rhythm is read from: a music track's onset strength, a dance's joint speed."""
    return track.beats.onset_envelope if isinstance(track, MusicTrack) else track.beats.speed_envelope


def rhythm_context(track: MusicTrack | DanceTrack, config: RhythmConfig | None) -> RhythmContext | None:
    """Track-level rhythm (tempo bump, tempogram) of a music track's onset envelope or a dance's joint speed."""
    if config is None:
        return None
    return RhythmContext(
        config=config,
        track=track_rhythm(
            envelope=_envelope(track),
            envelope_fps=track.beats.envelope_fps,
            tempo_bpm=track.beats.tempo_bpm,
            config=config,
        ),
    )


def _window_rhythm(
    track: MusicTrack | DanceTrack, context: RhythmContext | None, *, start_s: float, window_s: float
) -> np.ndarray | None:
    if context is None:
        return None
    return window_rhythm(
        context.track,
        envelope=_envelope(track),
        envelope_fps=track.beats.envelope_fps,
        start_s=start_s,
        window_s=window_s,
        config=context.config,
    )


_ENCODERS: dict[str, Encoder] = {}
_POSE: dict[str, PoseEstimator] = {}


def get_encoder(name: str, options: dict[str, Any], *, modality: str) -> Encoder:
    """A cached encoder instance (models load once per process) that must encode ``modality``."""
    key = repr((name, sorted(options.items())))
    if key not in _ENCODERS:
        _ENCODERS[key] = create_encoder(name, **options)
    enc = _ENCODERS[key]
    if enc.modality != modality:
        raise ParameterError(
            f"encoder {name!r} encodes {enc.modality}, not {modality}; pass a {modality} encoder "
            f"(--{modality}-encoder)."
        )
    return enc


def dance_kind_of(path: str | os.PathLike[str]) -> DanceKind:
    """How a dance file is read: a video, a keypoint file, or a Dance-with-Melody folder."""
    p = Path(path)
    if p.is_dir():
        if is_dwm_folder(p):
            return "dwm"
        raise MediaError(
            f"{p}: a folder is a dance only if it is a Dance-with-Melody folder (skeletons.json.gz "
            "+ config.json). Pass a video, a keypoint file or such a folder."
        )
    ext = p.suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext in KEYPOINT_EXTS:
        return "keypoints"
    raise MediaError(
        f"{p}: unknown dance format {ext or '(no extension)'!r}; expected a video "
        f"({', '.join(sorted(VIDEO_EXTS))}), keypoints ({', '.join(sorted(KEYPOINT_EXTS))}) "
        "or a Dance-with-Melody folder."
    )


def check_music_path(path: str | os.PathLike[str]) -> None:
    """Reject a file that cannot hold music before decoding it."""
    ext = Path(path).suffix.lower()
    if Path(path).is_dir() or ext not in AUDIO_EXTS | VIDEO_EXTS:
        raise MediaError(
            f"{path}: unknown music format {ext or '(no extension)'!r}; expected audio "
            f"({', '.join(sorted(AUDIO_EXTS))}) or a video with a soundtrack."
        )


def analyse_music(
    path: str | os.PathLike[str],
    *,
    sr: int,
    beat_config: MusicBeatConfig,
    start_s: float = 0.0,
    duration_s: float | None = None,
    min_duration_s: float = 0.0,
    limits: QueryLimits | None = None,
) -> MusicTrack:
    """Decode the music of ``path`` (span ``start_s`` .. + ``duration_s``; None: to the end) and track its beats.

    ``limits`` caps the span decoded (a query's); None reads without caps (``prepare`` on one's own media)."""
    info = probe_media(path)
    if not info.has_audio:
        raise MediaError(f"{path}: no audio stream, so there is no music. Pass a file with a soundtrack.")
    y, sr = load_audio(path, sr=sr, start_s=start_s, duration_s=duration_s, limits=limits)
    check_audio(y, sr=sr, path=path, min_duration_s=min_duration_s)
    return MusicTrack(
        path=str(path), y=y, sr=sr, start_s=float(start_s), beats=track_music_beats(y=y, sr=sr, config=beat_config)
    )


def analyse_dance(
    path: str | os.PathLike[str],
    *,
    beat_config: DanceBeatConfig,
    kind: DanceKind | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    pose_fps: float = 15.0,
    max_side: int = 480,
    min_person_ratio: float = 0.6,
    limits: QueryLimits | None = None,
) -> DanceTrack:
    """Read the dance of ``path`` (pose from a video's frames by MediaPipe) and find its kinematic beats.

    ``limits`` caps the span read and the file's size (a query's); None reads without caps. A motion in which
    no joint moves (an all-zero or frozen "dancer") is refused with MediaError."""
    kind = kind or dance_kind_of(path)
    frames, frames_fps, music_offset_s = None, None, 0.0
    if kind == "video":
        info = probe_media(path)
        if not info.has_video:
            raise MediaError(
                f"{path}: the file has no video stream, so there is no dance to analyse. Pass a dance video."
            )
        frames, frames_fps = read_video_frames(
            path, fps=pose_fps, start_s=start_s, duration_s=duration_s, max_side=max_side, limits=limits
        )
        if "pose" not in _POSE:
            _POSE["pose"] = PoseEstimator()
        motion = _POSE["pose"].process(frames=frames, fps=frames_fps, source=str(path))
        ratio = person_ratio(motion)
        if ratio < min_person_ratio:
            raise MediaError(
                f"{path}: a person was detected in only {ratio:.0%} of the frames (need "
                f"{min_person_ratio:.0%}). Use a video with one dancer in full view."
            )
    else:
        if kind == "dwm":
            pair = load_dwm_pair(path, limits=limits)
            motion, music_offset_s = pair.motion, pair.music_start_s
        else:
            motion = load_keypoints(path, limits=limits)
        if limits is not None:
            limits.check_seconds(
                path=path,
                what="the motion to analyse",
                seconds=span_s(start_s=start_s, duration_s=duration_s, file_duration_s=motion.duration_s),
            )
        if start_s > 0 or duration_s is not None:
            if start_s >= motion.duration_s:
                raise MediaError(
                    f"{path}: start {start_s:g} s is past the end of the motion ({motion.duration_s:.1f} s). "
                    "Pass a start inside it."
                )
            motion = motion.slice(
                start_s=start_s, duration_s=duration_s if duration_s is not None else motion.duration_s
            )
            music_offset_s += start_s
    _check_moves(motion, path=path)
    return DanceTrack(
        path=str(path),
        kind=kind,
        motion=motion,
        frames=frames,
        frames_fps=frames_fps,
        start_s=float(start_s),
        beats=kinematic_beats(motion=motion, config=beat_config),
        music_offset_s=music_offset_s,
    )


def _check_moves(motion: Motion, *, path: str | os.PathLike[str]) -> None:
    """MediaError when no joint moves by more than 0.1 % of the body's size: an all-zero or frozen skeleton has
    no dance beats, and would be embedded as a dance all the same."""
    joints = motion.joints
    seen = np.isfinite(joints).all(axis=2).any(axis=0)
    travel = np.nanmax(joints[:, seen], axis=0) - np.nanmin(joints[:, seen], axis=0) if seen.any() else np.zeros(1)
    scale = body_scale(joints, skeleton=motion.skeleton)
    if not float(np.max(travel)) > 1e-3 * scale:
        raise MediaError(
            f"{path}: no joint moves (the largest travel is {float(np.max(travel)):.3g} for a body of size "
            f"{scale:.3g}: an all-zero or frozen skeleton), so there is no dance. Pass a take of a moving dancer."
        )


def _grid(times_s: np.ndarray, *, window_s: float, grid_fps: float) -> np.ndarray:
    return times_to_grid(times_s, duration_s=window_s, fps=grid_fps)[: int(round(window_s * grid_fps))]


def _beats_in(times_s: np.ndarray, start_s: float, window_s: float) -> np.ndarray:
    return times_s[(times_s >= start_s) & (times_s < start_s + window_s)] - start_s


def music_window(
    track: MusicTrack,
    *,
    start_s: float,
    window_s: float,
    grid_fps: float,
    encoder: Encoder,
    rhythm: RhythmContext | None = None,
) -> Window:
    """Encode the music of [start_s, start_s + window_s) on the track's clock; silence is skipped."""
    a = int(round(start_s * track.sr))
    audio = track.y[a : a + int(round(window_s * track.sr))]
    if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) < 1e-4:
        raise WindowSkipped("silent music")
    beats = _beats_in(track.beats.times_s, start_s, window_s)
    clip = MediaClip(duration_s=window_s, audio=audio, sr=track.sr, source=track.path)
    return Window(
        start_s=start_s,
        features=encoder.encode(clip),
        beat_grid=_grid(beats, window_s=window_s, grid_fps=grid_fps),
        beat_times_s=beats,
        rhythm=_window_rhythm(track, rhythm, start_s=start_s, window_s=window_s),
        beats_per_bar=track.beats.beats_per_bar,
    )


def dance_window(
    track: DanceTrack,
    *,
    start_s: float,
    window_s: float,
    grid_fps: float,
    encoder: Encoder,
    min_person_ratio: float,
    rhythm: RhythmContext | None = None,
) -> Window:
    """Encode the dance of [start_s, start_s + window_s) on the track's clock; a window without a person is skipped."""
    motion = track.motion.slice(start_s=start_s, duration_s=window_s)
    if motion.confidence is not None and np.mean(motion.confidence.max(axis=1) > 0) < min_person_ratio:
        raise WindowSkipped("no person in most frames")
    frames = None
    if track.frames is not None and track.frames_fps:
        a = int(round(start_s * track.frames_fps))
        frames = track.frames[a : a + int(round(window_s * track.frames_fps))]
    clip = MediaClip(duration_s=window_s, frames=frames, frames_fps=track.frames_fps, motion=motion, source=track.path)
    beats = _beats_in(track.beats.times_s, start_s, window_s)
    return Window(
        start_s=start_s,
        features=encoder.encode(clip),
        beat_grid=_grid(beats, window_s=window_s, grid_fps=grid_fps),
        beat_times_s=beats,
        rhythm=_window_rhythm(track, rhythm, start_s=start_s, window_s=window_s),
    )
