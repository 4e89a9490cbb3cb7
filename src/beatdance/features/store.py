"""The native on-disk feature store that ``prepare`` writes and ``train``, ``evaluate`` and ``index`` read.

::

    STORE/store.json                 {"format": "beatdance-store", "version": 1, "config": {...}}
    STORE/clips/<id>.safetensors     music (T_m, D_m), dance (T_d, D_d) per-frame features (float32);
                                     music_beat, dance_beat (F,) 0/1 grids at config["grid_fps"];
                                     music_beat_times, dance_beat_times (seconds); metadata {"meta": JSON};
                                     optionally music_rhythm, dance_rhythm (C, R) on the log-tempo axis
    STORE/splits/<split>.txt         one clip id per line
    STORE/report.jsonl               one line per skipped input: {"input", "reason", "stage"}

No pickle anywhere. Every clip file is written to a temporary dot-file and renamed into place, so a
crash never leaves a partial file that counts as done, several processes can ``put`` different clips
at once, and a re-run only computes the clips that are missing. The config (extractor and encoder
settings) is fixed when the store is created; opening it for writing with other settings is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from ..errors import CheckpointError, DataError, ParameterError
from ..util import atomic_write_bytes, atomic_write_json, read_json
from .featureset import FeatureSet
from .official import (
    DEFAULT_BEAT_FPS,
    check_clip_id,
    read_id_list,
    write_id_list,
)
from .pooling import PerFrameClip, pool_clips

STORE_FORMAT = "beatdance-store"
STORE_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
_RANKS = {"music": 2, "dance": 2, "music_beat": 1, "dance_beat": 1, "music_beat_times": 1, "dance_beat_times": 1}
_OPTIONAL_RANKS = {"music_rhythm": 2, "dance_rhythm": 2}
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class ClipRecord:
    """Everything the store holds for one clip (see the module docstring for shapes)."""

    clip_id: str
    music: np.ndarray
    dance: np.ndarray
    music_beat: np.ndarray
    dance_beat: np.ndarray
    music_beat_times: np.ndarray
    dance_beat_times: np.ndarray
    meta: dict[str, Any]
    music_rhythm: np.ndarray | None = None
    dance_rhythm: np.ndarray | None = None


def _normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (tuples become lists), so saved and new configs compare equal."""
    try:
        return json.loads(json.dumps(dict(config), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"store config is not plain JSON ({exc}); expected str/number/bool/list/dict values."
        ) from exc


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the entries where the nested dicts ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _split_name(split: str) -> str:
    if not isinstance(split, str) or not _SPLIT_NAME.match(split):
        raise ParameterError(f"split name {split!r}; expected letters, digits, '_' or '-' (e.g. 'train').")
    return split


def _group_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()


class FeatureStore:
    """A feature store directory; make one with :meth:`create` or :meth:`open` (or ``features.convert.import_official``)."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config

    # -- creating and opening ------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, config: Mapping[str, Any], exist_ok: bool = True) -> FeatureStore:
        """Create the store at ``path``, or re-open it when it exists with an equal config (``exist_ok``)."""
        path = Path(path)
        new = _normalise(config)
        if (path / "store.json").exists():
            if not exist_ok:
                raise CheckpointError(f"{path} already holds a feature store. Pass a new --out or allow reusing it.")
            store = cls.open(path)
            diff = _differing_keys(store.config, new)
            if diff:
                raise CheckpointError(
                    f"{path} was made with other settings; they differ in {diff}. Use a new --out for the new "
                    "settings, or the store's own settings (see its store.json) to complete it."
                )
            return store
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise DataError(f"{path} exists and is not a feature store (no store.json). Pick a new or empty folder.")
        (path / "clips").mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / "store.json", {"format": STORE_FORMAT, "version": STORE_VERSION, "config": new})
        return cls(path, new)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FeatureStore:
        """Open an existing store."""
        path = Path(path)
        manifest = path / "store.json"
        if not manifest.is_file():
            raise DataError(
                f"{path} is not a feature store: {manifest} is missing. Create it with `beatdance prepare`."
            )
        try:
            head = read_json(manifest)
        except (OSError, ValueError) as exc:
            raise DataError(f"{manifest} is not readable JSON ({exc}). Restore it or re-create the store.") from exc
        if not isinstance(head, dict) or head.get("format") != STORE_FORMAT or not isinstance(head.get("config"), dict):
            raise DataError(
                f"{manifest} is not a beatdance store manifest; expected format {STORE_FORMAT!r} and a config."
            )
        if head.get("version") != STORE_VERSION:
            raise CheckpointError(
                f"{manifest} has store version {head.get('version')!r}; this beatdance reads "
                f"version {STORE_VERSION}. Use the matching beatdance version or re-prepare."
            )
        return cls(path, head["config"])

    @property
    def grid_fps(self) -> float:
        """Frame rate of the stored beat grids (config ``grid_fps``, default 10)."""
        return float(self.config.get("grid_fps", DEFAULT_BEAT_FPS))

    # -- clips ---------------------------------------------------------------------------------

    def clip_path(self, clip_id: str) -> Path:
        return self.path / "clips" / f"{check_clip_id(clip_id)}.safetensors"

    def put(
        self,
        clip_id: str,
        *,
        music: np.ndarray,
        dance: np.ndarray,
        music_beat: np.ndarray,
        dance_beat: np.ndarray,
        music_beat_times: np.ndarray,
        dance_beat_times: np.ndarray,
        meta: Mapping[str, Any],
        music_rhythm: np.ndarray | None = None,
        dance_rhythm: np.ndarray | None = None,
    ) -> None:
        """Write one clip atomically (replacing an older version of it); rhythm arrays are optional."""
        path = self.clip_path(clip_id)
        given: dict[str, Any] = {
            "music": music,
            "dance": dance,
            "music_beat": music_beat,
            "dance_beat": dance_beat,
            "music_beat_times": music_beat_times,
            "dance_beat_times": dance_beat_times,
        }
        if (music_rhythm is None) != (dance_rhythm is None):
            raise ParameterError(f"clip {clip_id!r}: give both music_rhythm and dance_rhythm, or neither.")
        if music_rhythm is not None:
            given.update(music_rhythm=music_rhythm, dance_rhythm=dance_rhythm)
        ranks = {**_RANKS, **_OPTIONAL_RANKS}
        arrays: dict[str, np.ndarray] = {}
        for name, value in given.items():
            arr = np.ascontiguousarray(value, dtype=np.float64 if name.endswith("_times") else np.float32)
            if arr.ndim != ranks[name] or not np.isfinite(arr).all():
                raise ParameterError(
                    f"clip {clip_id!r}: {name} has shape {arr.shape} or non-finite values; "
                    f"expected a finite {ranks[name]}-D array."
                )
            arrays[name] = arr
        if arrays["music_beat"].shape != arrays["dance_beat"].shape:
            raise ParameterError(
                f"clip {clip_id!r}: music_beat {arrays['music_beat'].shape} and dance_beat "
                f"{arrays['dance_beat'].shape} must be grids of the same length."
            )
        try:
            meta_json = json.dumps(dict(meta), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"clip {clip_id!r}: meta is not plain JSON ({exc}).") from exc
        atomic_write_bytes(path, safetensors.numpy.save(arrays, metadata={"meta": meta_json}))

    def has(self, clip_id: str) -> bool:
        """True when the clip's file is complete on disk (temporary files never count)."""
        return self.clip_path(clip_id).is_file()

    def ids(self) -> list[str]:
        """Ids of all complete clips, sorted."""
        return sorted(
            p.name[: -len(".safetensors")]
            for p in (self.path / "clips").glob("*.safetensors")
            if not p.name.startswith(".")
        )

    def _read(self, clip_id: str, *, tensors: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        path = self.clip_path(clip_id)
        if not path.is_file():
            raise DataError(
                f"{path} does not exist: clip {clip_id!r} is not in the store {self.path}. "
                "Re-run `beatdance prepare` to compute it, or drop it from the split list."
            )
        try:
            with safetensors.safe_open(str(path), framework="np") as fh:
                meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
                arrays = {k: fh.get_tensor(k) for k in fh.keys()} if tensors else {}
        except Exception as exc:  # corrupt header or payload, whatever safetensors raises
            raise DataError(
                f"{path} is not a readable clip file ({type(exc).__name__}: {exc}). "
                "Delete it and re-run `beatdance prepare` to recompute it."
            ) from exc
        missing = sorted(set(_RANKS) - set(arrays)) if tensors else []
        if missing:
            raise DataError(
                f"{path} lacks the arrays {missing}; expected {sorted(_RANKS)}. Delete it and re-run prepare."
            )
        bad = sorted(name for name, arr in arrays.items() if not np.isfinite(arr).all())
        if bad:
            raise DataError(
                f"{path} has NaN or infinite values in {bad}; a clip file must hold finite numbers. "
                "Delete it and re-run `beatdance prepare` to recompute it."
            )
        return arrays, meta

    def get(self, clip_id: str) -> ClipRecord:
        """All arrays and the metadata of one clip."""
        arrays, meta = self._read(clip_id, tensors=True)
        window_s = self.config.get("window_s")
        if window_s is not None:
            frames = int(round(float(window_s) * self.grid_fps))
            got = {name: arrays[name].shape[0] for name in ("music_beat", "dance_beat")}
            if set(got.values()) != {frames}:
                raise DataError(
                    f"{self.clip_path(clip_id)} has beat grids of {got} frames, but the store's config "
                    f"says {window_s:g}-s windows at {self.grid_fps:g} fps ({frames} frames): the clip "
                    f"and {self.path / 'store.json'} disagree. Restore store.json, or re-run prepare "
                    "into a new store."
                )
        fields: dict[str, Any] = {**{k: arrays[k] for k in _RANKS}, **{k: arrays.get(k) for k in _OPTIONAL_RANKS}}
        return ClipRecord(clip_id=clip_id, meta=meta, **fields)

    def meta(self, clip_id: str) -> dict[str, Any]:
        """The metadata of one clip (reads only the file header)."""
        return self._read(clip_id, tensors=False)[1]

    # -- skipped inputs ------------------------------------------------------------------------

    def add_skip(self, *, input: str, reason: str, stage: str) -> None:
        """Record that ``input`` was skipped at ``stage`` and why (once per identical entry)."""
        entry = {"input": str(input), "reason": str(reason), "stage": str(stage)}
        if entry in self.skips():
            return
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path / "report.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def skips(self) -> list[dict[str, str]]:
        """Every recorded skip, oldest first."""
        path = self.path / "report.jsonl"
        if not path.is_file():
            return []
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise DataError(f"{path} line {n} is not JSON ({exc}). Delete that line.") from exc
        return out

    # -- splits --------------------------------------------------------------------------------

    def split_names(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "splits").glob("*.txt"))

    def split_ids(self, split: str) -> list[str]:
        return read_id_list(self.path / "splits", split=_split_name(split))

    def write_splits(self, splits: Mapping[str, Sequence[str]]) -> None:
        """Write the given split lists; every id must be in the store and in one split only."""
        owner: dict[str, str] = {}
        for name, ids in splits.items():
            _split_name(name)
            for clip_id in ids:
                if not self.has(clip_id):
                    raise ParameterError(f"split {name!r} lists {clip_id!r}, which is not in the store {self.path}.")
                if owner.setdefault(clip_id, name) != name:
                    raise ParameterError(
                        f"clip {clip_id!r} is in both split {owner[clip_id]!r} and {name!r}; "
                        "expected each clip in one split only."
                    )
        for name, ids in splits.items():
            write_id_list(self.path / "splits", split=name, ids=list(ids))

    def make_splits(
        self, *, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0, by: str = "group"
    ) -> dict[str, list[str]]:
        """Split all clips into train/val/test by whole groups (source pairs) and write the lists.

        Groups are ordered by a hash of (seed, group), so the order does not depend on the listing, then
        cut at the clip-count ``fractions``. No group is in two splits, so no window of a test pair is
        trained on. Each split with a positive fraction gets at least one group when there are enough.
        A split with fraction 0 gets no list file. ``by="clip"`` makes every clip its own group.
        """
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ParameterError(
                f"fractions={fractions}; expected three non-negative numbers summing to 1, e.g. (0.8, 0.1, 0.1)."
            )
        if by not in ("group", "clip"):
            raise ParameterError(f"by={by!r}; expected 'group' (keep source pairs together) or 'clip'.")
        members: dict[str, list[str]] = {}
        for clip_id in self.ids():
            group = str(self.meta(clip_id).get("group", clip_id)) if by == "group" else clip_id
            members.setdefault(group, []).append(clip_id)
        if not members:
            raise DataError(f"the store {self.path} has no clips to split. Run `beatdance prepare` first.")
        order = sorted(members, key=lambda g: _group_key(seed, g))
        bounds = np.cumsum(fractions) * sum(len(m) for m in members.values())
        assigned: list[list[str]] = [[], [], []]
        done = 0
        for group in order:
            size = len(members[group])
            k = min(int(np.searchsorted(bounds, done + size / 2, side="right")), 2)
            assigned[k].append(group)
            done += size
        for k in range(3):
            if fractions[k] > 0 and not assigned[k]:
                donor = max(range(3), key=lambda j: len(assigned[j]))
                if len(assigned[donor]) > 1:
                    assigned[k].append(assigned[donor].pop())
        result = {name: sorted(c for g in groups for c in members[g]) for name, groups in zip(SPLIT_NAMES, assigned)}
        self.write_splits({name: ids for name, ids in result.items() if ids})
        for name, ids in result.items():
            if not ids:
                (self.path / "splits" / f"{name}.txt").unlink(missing_ok=True)
        return result

    def load_split(self, split: str, *, num_segments: int = 10, slots: int = 10) -> FeatureSet:
        """Pool the clips of ``split`` into a FeatureSet (groups from the clips' metadata)."""
        return self.load_clips(self.split_ids(split), num_segments=num_segments, slots=slots, split=split)

    def load_clips(
        self, clip_ids: Sequence[str], *, num_segments: int = 10, slots: int = 10, split: str | None = None
    ) -> FeatureSet:
        """Pool the given clips, in that order, into a FeatureSet (groups from the clips' metadata)."""
        return self.pool_records((self.get(c) for c in clip_ids), num_segments=num_segments, slots=slots, split=split)

    def pool_records(
        self, records: Iterable[ClipRecord], *, num_segments: int = 10, slots: int = 10, split: str | None = None
    ) -> FeatureSet:
        """Pool clip records already read with :meth:`get` (for callers that also need their beat times or
        metadata, so that each clip file is read once)."""

        def clips() -> Any:
            for rec in records:
                source = str(self.clip_path(rec.clip_id))
                yield PerFrameClip(
                    clip_id=rec.clip_id,
                    music=rec.music,
                    dance=rec.dance,
                    music_beat=rec.music_beat,
                    dance_beat=rec.dance_beat,
                    sources=dict.fromkeys(_RANKS, source),
                    group=str(rec.meta.get("group", rec.clip_id)),
                    music_rhythm=rec.music_rhythm,
                    dance_rhythm=rec.dance_rhythm,
                    music_beats_per_bar=rec.meta.get("music_beats_per_bar"),
                )

        return pool_clips(
            clips(),
            num_segments=num_segments,
            slots=slots,
            beat_fps=self.grid_fps,
            info={"layout": "store", "path": str(self.path), "split": split, "rhythm": self.config.get("rhythm")},
        )
