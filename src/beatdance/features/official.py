"""The official BeatDance feature layout (SPEC §1.2): read it safely, and write it for export.

::

    ROOT/{train,val,test}.txt          one clip id per line
    ROOT/video_feature/ID.pt           {"fps", "video_clip_feature": (T_v, D_v)}   (our "dance")
    ROOT/music_feature/ID.pt           {"fps", "music_bert_feature": (T_m, D_m)}
    ROOT/video_beat/ID.pt              {"fps", "video_beat": (>= 100,)}
    ROOT/music_beat/ID.pt              {"fps", "music_beat": (>= 100,)}

Files are read with ``torch.load(weights_only=True)`` only, so a file cannot run code. ``fps`` is
optional on reading (the official code ignores it). Files written here may carry an extra string
``group`` (the source pair) in ``video_feature/ID.pt``; the official loader ignores unknown keys.
"""

from __future__ import annotations

import io
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import DataError, ParameterError, SplitNotFoundError
from ..util import atomic_write_bytes
from .featureset import FeatureSet
from .pooling import PerFrameClip, pool_clips

if TYPE_CHECKING:  # torch is imported by the functions that read or write the official files
    import torch

#: our name -> (folder, key in the file's dict, tensor rank)
OFFICIAL_FILES: dict[str, tuple[str, str, int]] = {
    "dance": ("video_feature", "video_clip_feature", 2),
    "music": ("music_feature", "music_bert_feature", 2),
    "dance_beat": ("video_beat", "video_beat", 1),
    "music_beat": ("music_beat", "music_beat", 1),
}
DEFAULT_BEAT_FPS = 10.0
_FORBIDDEN_ID_CHARS = set('/\\:*?"<>|')


def check_clip_id(clip_id: str) -> str:
    """Return ``clip_id`` if it can name a file and a line of a split list, else raise ParameterError."""
    bad = (
        not isinstance(clip_id, str)
        or not clip_id
        or clip_id != clip_id.strip()
        or clip_id.startswith(".")
        or any(c in _FORBIDDEN_ID_CHARS or ord(c) < 32 for c in clip_id)
    )
    if bad:
        raise ParameterError(
            f"clip id {clip_id!r} cannot name a file: expected a non-empty string without path separators, "
            "control characters, surrounding spaces or a leading dot. Rename the clip."
        )
    return clip_id


def read_id_list(root: str | os.PathLike[str], *, split: str) -> list[str]:
    """The clip ids of ``ROOT/<split>.txt`` (blank lines ignored); shared by both layouts."""
    path = Path(root) / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in Path(root).glob("*.txt"))
        raise SplitNotFoundError(
            f"{path} does not exist, so there is no split {split!r} (splits found: {have or 'none'}). "
            "Pick one of those splits or write the list file (one clip id per line)."
        )
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for clip_id in ids:
        try:
            check_clip_id(clip_id)
        except ParameterError as exc:
            raise DataError(f"{path}: {exc}") from exc
    if not ids:
        raise DataError(f"{path} lists no clip ids; expected one id per line. Fill it or pick another split.")
    dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise DataError(f"{path} lists clip ids more than once: {dup[:5]}; expected each once. Remove the repeats.")
    return ids


def write_id_list(root: str | os.PathLike[str], *, split: str, ids: Sequence[str]) -> None:
    """Atomically write ``ROOT/<split>.txt`` with one id per line."""
    text = "".join(f"{check_clip_id(i)}\n" for i in ids)
    atomic_write_bytes(Path(root) / f"{split}.txt", text.encode("utf-8"))


def is_official_layout(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` has the four official feature folders."""
    root = Path(root)
    return all((root / folder).is_dir() for folder, _, _ in OFFICIAL_FILES.values())


def _read_fps(path: Path, value: Any) -> float:
    fps = value.item() if hasattr(value, "numel") and value.numel() == 1 else value
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise DataError(f"{path}: 'fps' is {value!r}; expected a positive number. Fix or drop the 'fps' entry.")
    return float(fps)


def _load_entry(path: Path, *, key: str, ndim: int) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """The validated array under ``key`` of the dict in ``path``, its fps (None when absent) and the dict."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; every clip id in a split list needs a file in each of the four folders. "
            "Export the missing file or remove the id from the split list."
        )
    import torch  # only the official layout's files need it (a search imports none of this)

    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # any unreadable or unsafe file: corrupt, truncated, pickled objects
        raise DataError(
            f"{path} cannot be read as a weights-only torch file ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Expected a dict saved with torch.save({{'fps': ..., '{key}': tensor}}, path)."
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}; expected a dict with the key {key!r} (and 'fps').")
    if key not in obj:
        raise DataError(
            f"{path} has keys {sorted(map(str, obj))}; expected the key {key!r} (and 'fps'). "
            "Is the file in the right folder?"
        )
    t = obj[key]
    if not isinstance(t, torch.Tensor):
        raise DataError(f"{path}: {key!r} is a {type(t).__name__}; expected a torch tensor.")
    if t.ndim != ndim:
        want = "(frames, dim)" if ndim == 2 else "(frames,)"
        raise DataError(f"{path}: {key!r} has shape {tuple(t.shape)}; expected a {ndim}-D tensor {want}.")
    integers = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
    if not (t.dtype.is_floating_point or t.dtype in integers):
        raise DataError(f"{path}: {key!r} has dtype {t.dtype}; expected a floating-point or integer tensor.")
    arr = t.detach().to(torch.float32).numpy()
    if not np.isfinite(arr).all():
        raise DataError(
            f"{path}: {key!r} contains {int((~np.isfinite(arr)).sum())} NaN or inf values; "
            "expected finite numbers. Re-extract this clip."
        )
    fps = _read_fps(path, obj["fps"]) if "fps" in obj else None
    return arr, fps, obj


@dataclass
class OfficialClip:
    """The four validated arrays of one clip, float32, with the beat fps (None if unstated) and group."""

    music: np.ndarray
    dance: np.ndarray
    music_beat: np.ndarray
    dance_beat: np.ndarray
    beat_fps: float | None
    group: str | None


def _path(root: Path, name: str, clip_id: str) -> Path:
    return root / OFFICIAL_FILES[name][0] / f"{clip_id}.pt"


def read_official_clip(root: str | os.PathLike[str], clip_id: str) -> OfficialClip:
    """Load and validate the four files of ``clip_id``; every failure is a DataError naming the file."""
    root = Path(root)
    arrays: dict[str, np.ndarray] = {}
    fps: dict[str, float | None] = {}
    raw: dict[str, dict[str, Any]] = {}
    for name, (_, key, ndim) in OFFICIAL_FILES.items():
        arrays[name], fps[name], raw[name] = _load_entry(_path(root, name, clip_id), key=key, ndim=ndim)
    group = raw["dance"].get("group")
    if group is not None and not isinstance(group, str):
        raise DataError(f"{_path(root, 'dance', clip_id)}: 'group' is a {type(group).__name__}; expected a string.")
    return OfficialClip(beat_fps=fps["music_beat"] or fps["dance_beat"], group=group, **arrays)


def read_official_split(
    root: str | os.PathLike[str], *, split: str, num_segments: int = 10, slots: int = 10
) -> FeatureSet:
    """Pool one split of the official layout into a FeatureSet (the official ``video`` is our ``dance``)."""
    root = Path(root)
    if not is_official_layout(root):
        folders = [folder for folder, _, _ in OFFICIAL_FILES.values()]
        raise DataError(f"{root} lacks some of the official folders {folders}; expected the layout of SPEC §1.2.")
    ids = read_id_list(root, split=split)
    loaded = ((clip_id, read_official_clip(root, clip_id)) for clip_id in ids)
    first = next(loaded)
    clips = (
        PerFrameClip(
            clip_id=clip_id,
            music=c.music,
            dance=c.dance,
            music_beat=c.music_beat,
            dance_beat=c.dance_beat,
            group=c.group,
            sources={name: str(_path(root, name, clip_id)) for name in OFFICIAL_FILES},
        )
        for clip_id, c in itertools.chain([first], loaded)
    )
    return pool_clips(
        clips,
        num_segments=num_segments,
        slots=slots,
        beat_fps=first[1].beat_fps or DEFAULT_BEAT_FPS,
        info={"layout": "official", "path": str(root), "split": split},
    )


def _tensor(x: Any, *, ndim: int, what: str) -> torch.Tensor:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != ndim or not np.isfinite(arr).all():
        raise ParameterError(f"{what} has shape {arr.shape} or non-finite values; expected a finite {ndim}-D array.")
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr))


def write_official_clip(
    root: str | os.PathLike[str],
    *,
    clip_id: str,
    music: np.ndarray,
    dance: np.ndarray,
    music_beat: np.ndarray,
    dance_beat: np.ndarray,
    beat_fps: float = DEFAULT_BEAT_FPS,
    group: str | None = None,
) -> None:
    """Write the four official files of one clip (plain dicts of tensors, each file atomically).

    The feature ``fps`` is the frame count over the clip duration, which is ``len(music_beat) / beat_fps``.
    """
    check_clip_id(clip_id)
    if not beat_fps > 0:
        raise ParameterError(f"beat_fps={beat_fps}; expected a positive frame rate (the official one is 10).")
    root = Path(root)
    data = {
        "music": _tensor(music, ndim=2, what=f"{clip_id} music"),
        "dance": _tensor(dance, ndim=2, what=f"{clip_id} dance"),
        "music_beat": _tensor(music_beat, ndim=1, what=f"{clip_id} music_beat"),
        "dance_beat": _tensor(dance_beat, ndim=1, what=f"{clip_id} dance_beat"),
    }
    duration_s = data["music_beat"].shape[0] / beat_fps
    for name, (_, key, ndim) in OFFICIAL_FILES.items():
        t = data[name]
        fps = float(beat_fps) if ndim == 1 else (t.shape[0] / duration_s if duration_s > 0 else float(beat_fps))
        obj: dict[str, Any] = {"fps": fps, key: t}
        if name == "dance" and group is not None:
            obj["group"] = str(group)
        buf = io.BytesIO()
        import torch

        torch.save(obj, buf)
        atomic_write_bytes(_path(root, name, clip_id), buf.getvalue())


class PerFrameSplit(Protocol):
    """Per-frame data of one split: ``ids`` and, per clip, ``music`` (T_m, D_m), ``dance`` (T_d, D_d),
    ``music_beat`` and ``dance_beat`` (F,) (arrays of shape (N, ...) or lists of N arrays)."""

    ids: Sequence[str]
    music: Any
    dance: Any
    music_beat: Any
    dance_beat: Any


def write_official(
    root: str | os.PathLike[str], *, splits: Mapping[str, PerFrameSplit], beat_fps: float = DEFAULT_BEAT_FPS
) -> Path:
    """Export per-frame ``splits`` (name -> data; an optional ``groups`` list is kept) to the official layout.

    Clip files are written first and each split list last, so an interrupted export never lists a
    clip whose files are missing. Returns ``root``.
    """
    root = Path(root)
    seen: dict[str, str] = {}
    for name, data in splits.items():
        for clip_id in data.ids:
            if seen.setdefault(clip_id, name) != name:
                raise ParameterError(
                    f"clip id {clip_id!r} is in both split {seen[clip_id]!r} and {name!r}; "
                    "expected every id in one split only. Rename or drop one."
                )
    for name, data in splits.items():
        groups = getattr(data, "groups", None)
        for i, clip_id in enumerate(data.ids):
            write_official_clip(
                root,
                clip_id=clip_id,
                music=data.music[i],
                dance=data.dance[i],
                music_beat=data.music_beat[i],
                dance_beat=data.dance_beat[i],
                beat_fps=beat_fps,
                group=None if groups is None else groups[i],
            )
        write_id_list(root, split=name, ids=list(data.ids))
    return root
