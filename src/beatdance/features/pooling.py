"""Per-frame features -> fixed segments, and per-frame beat grids -> (segments, slots) beat tables.

The official loader pools with ``torch.chunk``, which returns fewer chunks than asked for some
lengths (T in 11-18, 21-27, ..., 81 for 10 segments) and leaves zero rows (SPEC §8.9). Here the
frames are split like ``np.array_split``: the first ``T % S`` segments get one frame more, so there
are always exactly ``S`` non-empty segments.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, ParameterError
from .featureset import RHYTHM, FeatureSet


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def _check_count(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ParameterError(f"{name}={value!r}; expected a positive whole number (the official value is 10).")


def pool_segments(x: np.ndarray, *, num_segments: int, source: str = "") -> np.ndarray:
    """Mean of ``num_segments`` contiguous, near-equal pieces of the frames of ``x`` (T, D) -> (S, D) float32.

    ``source`` (a file or clip id) is named in errors.
    """
    _check_count("num_segments", num_segments)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{_where(source)}features have shape {arr.shape}; expected (frames, dim).")
    frames = arr.shape[0]
    if frames < num_segments:
        raise DataError(
            f"{_where(source)}{frames} feature frames cannot fill {num_segments} segments. "
            f"Use clips with at least {num_segments} frames (longer clips) or fewer segments."
        )
    base, extra = divmod(frames, num_segments)
    sizes = np.full(num_segments, base, dtype=np.int64)
    sizes[:extra] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sums = np.add.reduceat(arr.astype(np.float64, copy=False), starts, axis=0)
    return (sums / sizes[:, None]).astype(np.float32)


def beat_slots(vec: np.ndarray, *, num_segments: int, slots: int, source: str = "") -> np.ndarray:
    """The first ``num_segments * slots`` frames of a per-frame beat vector as a 0/1 (S, K) float32 table.

    A frame is a beat when its value is > 0 (as in the official code). Row s holds the ``slots``
    consecutive frames of segment s. A shorter vector is zero-padded at the end with a warning.
    """
    _check_count("num_segments", num_segments)
    _check_count("slots", slots)
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise DataError(f"{_where(source)}beat vector has shape {arr.shape}; expected a 1-D per-frame vector.")
    need = num_segments * slots
    out = np.zeros(need, dtype=np.float32)
    if arr.shape[0] < need:
        warnings.warn(
            f"{_where(source)}beat vector has {arr.shape[0]} frames, fewer than the {need} = "
            f"{num_segments} segments x {slots} slots needed; padding the end with non-beats.",
            stacklevel=2,
        )
    head = arr[:need]
    out[: head.shape[0]] = head > 0
    return out.reshape(num_segments, slots)


@dataclass
class PerFrameClip:
    """One clip before pooling: per-frame features (T, D), per-frame beat vectors, and the file each came from.

    ``sources`` maps "music", "dance", "music_beat", "dance_beat" to the file (or name) used in messages.
    """

    clip_id: str
    music: np.ndarray
    dance: np.ndarray
    music_beat: np.ndarray
    dance_beat: np.ndarray
    sources: dict[str, str]
    group: str | None = None
    music_rhythm: np.ndarray | None = None
    dance_rhythm: np.ndarray | None = None
    music_beats_per_bar: float | None = None

    def source(self, name: str) -> str:
        return self.sources.get(name, self.clip_id)


def pool_clips(
    clips: Iterable[PerFrameClip], *, num_segments: int, slots: int, beat_fps: float, info: dict[str, Any] | None = None
) -> FeatureSet:
    """Pool every clip and stack them into a FeatureSet; all clips must share the music and dance dims."""
    ids: list[str] = []
    groups: list[str] = []
    rows: dict[str, list[np.ndarray]] = {"music": [], "dance": [], "music_beat": [], "dance_beat": []}
    first: dict[str, tuple[int, str]] = {}
    rhythm: dict[str, list[np.ndarray]] = {}
    metre: list[float | None] = []
    for clip in clips:
        for name in ("music", "dance"):
            x = getattr(clip, name)
            dim = int(x.shape[-1]) if x.ndim == 2 else -1
            seen = first.setdefault(name, (dim, clip.source(name)))
            if dim != seen[0]:
                raise DataError(
                    f"{clip.source(name)}: {name} features are {dim}-d but {seen[1]} has {seen[0]}-d ones. "
                    "All clips of a dataset must come from the same encoder; re-extract the odd ones."
                )
            rows[name].append(pool_segments(x, num_segments=num_segments, source=clip.source(name)))
        for name in ("music_beat", "dance_beat"):
            rows[name].append(
                beat_slots(getattr(clip, name), num_segments=num_segments, slots=slots, source=clip.source(name))
            )
        for name in RHYTHM:
            value = getattr(clip, name)
            if value is not None:
                rhythm.setdefault(name, []).append(np.asarray(value, dtype=np.float32))
        metre.append(clip.music_beats_per_bar)
        ids.append(clip.clip_id)
        groups.append(clip.group or clip.clip_id)
    if not ids:
        raise DataError(f"no clips to pool ({info or {}}); the split list is empty. List at least one clip id in it.")
    stacked: dict[str, Any] = dict.fromkeys(RHYTHM)
    if rhythm:
        for name in RHYTHM:
            arrs = rhythm.get(name, [])
            if len(arrs) != len(ids) or len({a.shape for a in arrs}) != 1:
                raise DataError(
                    f"{len(arrs)} of {len(ids)} clips have a {name} array (shapes "
                    f"{sorted({a.shape for a in arrs})}); all clips need one of the same shape. "
                    "Re-run `beatdance prepare` with one beatdance version."
                )
            stacked[name] = np.stack(arrs)
    return FeatureSet(
        ids=ids,
        groups=groups,
        beat_fps=float(beat_fps),
        info=dict(info or {}),
        **{name: np.stack(arrs) for name, arrs in rows.items()},
        **stacked,
        music_beats_per_bar=None if all(m is None for m in metre) else np.array([m or 0 for m in metre], np.float32),
    )
