"""A feature store to and from the official BeatDance layout (``features.official``: per-clip ``.pt`` features
and beat grids under ``video_feature/``, ``music_feature/``, ``video_beat/``, ``music_beat/``, split lists)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .official import (
    DEFAULT_BEAT_FPS,
    is_official_layout,
    read_id_list,
    read_official_clip,
    write_id_list,
    write_official_clip,
)
from .store import SPLIT_NAMES, FeatureStore


def export_official(store: FeatureStore, root: str | os.PathLike[str], *, splits: Sequence[str] | None = None) -> Path:
    """Write the clips of ``store``'s ``splits`` (default: every split) in the official layout under ``root``."""
    root = Path(root)
    names = list(splits) if splits is not None else store.split_names()
    if not names:
        raise DataError(f"the store {store.path} has no split lists to export. Run make_splits first.")
    for name in names:
        ids = store.split_ids(name)
        for clip_id in ids:
            rec = store.get(clip_id)
            write_official_clip(
                root,
                clip_id=clip_id,
                music=rec.music,
                dance=rec.dance,
                music_beat=rec.music_beat,
                dance_beat=rec.dance_beat,
                beat_fps=store.grid_fps,
                group=rec.meta.get("group"),
            )
        write_id_list(root, split=name, ids=ids)
    return root


def import_official(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> FeatureStore:
    """Build (or complete) a store at ``path`` from the official layout at ``root``, with its splits.

    Beat times are the beat frames over the beat fps (the files' ``fps``, else 10).
    """
    root = Path(root)
    if not is_official_layout(root):
        raise DataError(
            f"{root} is not in the official layout (video_feature/, music_feature/, video_beat/, "
            "music_beat/ and split lists). Point at the folder that holds those."
        )
    splits = {name: read_id_list(root, split=name) for name in SPLIT_NAMES if (root / f"{name}.txt").is_file()}
    if not splits:
        raise DataError(f"{root} has none of the split lists {[f'{n}.txt' for n in SPLIT_NAMES]}. Add them.")
    first = read_official_clip(root, next(iter(splits.values()))[0])
    beat_fps = first.beat_fps or DEFAULT_BEAT_FPS
    store = FeatureStore.create(path, config={"origin": "official-layout", "grid_fps": beat_fps})
    for ids in splits.values():
        for clip_id in ids:
            if store.has(clip_id):
                continue
            c = read_official_clip(root, clip_id)
            store.put(
                clip_id,
                music=c.music,
                dance=c.dance,
                music_beat=c.music_beat,
                dance_beat=c.dance_beat,
                music_beat_times=np.flatnonzero(c.music_beat > 0) / beat_fps,
                dance_beat_times=np.flatnonzero(c.dance_beat > 0) / beat_fps,
                meta={"group": c.group or clip_id, "source": str(root)},
            )
    store.write_splits(splits)
    return store
