"""One entry point for training and evaluation data: a native feature store or the official layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from .featureset import FeatureSet
from .official import DEFAULT_BEAT_FPS, is_official_layout, read_id_list, read_official_clip, read_official_split
from .store import SPLIT_NAMES, FeatureStore

_LAYOUTS = (
    "a feature store (store.json, clips/, splits/ from `beatdance prepare`) or the official BeatDance "
    "layout (train/val/test.txt with video_feature/, music_feature/, video_beat/, music_beat/)"
)


def layout_of(path: str | os.PathLike[str]) -> str:
    """Which layout ``path`` holds: "store" or "official"; DataError naming the path and both expected layouts otherwise."""
    path = Path(path)
    if (path / "store.json").is_file():
        return "store"
    if is_official_layout(path):
        return "official"
    found = "does not exist" if not path.exists() else "is neither"
    raise DataError(f"{path} {found}; expected {_LAYOUTS}. Pass the folder that holds one of them.")


def load_features(path: str | os.PathLike[str], *, split: str, num_segments: int = 10, slots: int = 10) -> FeatureSet:
    """Split ``split`` of the dataset at ``path`` pooled to ``num_segments`` segments of ``slots`` beat slots."""
    if layout_of(path) == "store":
        return FeatureStore.open(path).load_split(split, num_segments=num_segments, slots=slots)
    return read_official_split(path, split=split, num_segments=num_segments, slots=slots)


def dataset_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a checkpoint records about its data: layout, per-frame feature dims, beat fps and the store config."""
    path = Path(path)
    layout = layout_of(path)
    if layout == "store":
        store = FeatureStore.open(path)
        ids = store.ids()
        if not ids:
            raise DataError(f"the store {path} has no clips. Run `beatdance prepare` to fill it.")
        rec = store.get(ids[0])
        return {
            "layout": "store",
            "path": str(path),
            "music_dim": int(rec.music.shape[1]),
            "dance_dim": int(rec.dance.shape[1]),
            "beat_fps": store.grid_fps,
            "store_config": store.config,
        }
    lists = [name for name in SPLIT_NAMES if (path / f"{name}.txt").is_file()]
    if not lists:
        raise DataError(f"{path} has none of the split lists {[f'{n}.txt' for n in SPLIT_NAMES]}. Add them.")
    clip = read_official_clip(path, read_id_list(path, split=lists[0])[0])
    return {
        "layout": "official",
        "path": str(path),
        "music_dim": int(clip.music.shape[1]),
        "dance_dim": int(clip.dance.shape[1]),
        "beat_fps": clip.beat_fps or DEFAULT_BEAT_FPS,
    }
