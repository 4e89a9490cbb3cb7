"""load_features and dataset_config detect the native store and the official layout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from beatdance.errors import DataError
from beatdance.features.convert import import_official
from beatdance.features.loading import dataset_config, layout_of, load_features
from beatdance.features.official import write_official
from beatdance.features.store import FeatureStore


def _split() -> SimpleNamespace:
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        ids=["a", "b"],
        music=rng.normal(size=(2, 31, 9)),
        dance=rng.normal(size=(2, 20, 5)),
        music_beat=(rng.random((2, 100)) < 0.3).astype(np.float32),
        dance_beat=(rng.random((2, 100)) < 0.2).astype(np.float32),
    )


def official(root: Path) -> Path:
    return write_official(root, splits={"train": _split()})


def _segment_means(x: np.ndarray, segments: int) -> np.ndarray:
    """Mean of each of ``segments`` contiguous pieces of the frames, the first ``T % segments`` one frame longer."""
    base, extra = divmod(len(x), segments)
    out, start = [], 0
    for s in range(segments):
        size = base + (s < extra)
        out.append(x[start : start + size].mean(axis=0))
        start += size
    return np.array(out)


def test_official_layout_is_detected(tmp_path: Path) -> None:
    """The official layout is read back as written, pooled as the pooling rule says (official "video" = dance)."""
    root = official(tmp_path / "off")
    assert layout_of(root) == "official"
    fs = load_features(root, split="train", num_segments=5, slots=20)
    assert fs.music.shape == (2, 5, 9) and fs.music_beat.shape == (2, 5, 20) and fs.info["layout"] == "official"
    written = _split()
    assert fs.ids == written.ids
    for i in range(2):
        np.testing.assert_allclose(fs.music[i], _segment_means(written.music[i], 5), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fs.dance[i], _segment_means(written.dance[i], 5), rtol=1e-5, atol=1e-6)
        for name in ("music_beat", "dance_beat"):  # segment s holds beat frames 20 s .. 20 s + 19
            np.testing.assert_array_equal(getattr(fs, name)[i], getattr(written, name)[i].reshape(5, 20))
    assert dataset_config(root) == {
        "layout": "official",
        "path": str(root),
        "music_dim": 9,
        "dance_dim": 5,
        "beat_fps": 10.0,
    }
    assert load_features(root, split="train", num_segments=10, slots=10).music_beat.sum() == written.music_beat.sum()


def test_store_is_detected(tmp_path: Path) -> None:
    store = import_official(official(tmp_path / "off"), tmp_path / "store")
    assert layout_of(store.path) == "store"
    fs = load_features(store.path, split="train")
    assert fs.ids == ["a", "b"] and fs.dance.shape == (2, 10, 5) and fs.info["layout"] == "store"
    cfg = dataset_config(store.path)
    assert (
        cfg["layout"] == "store"
        and cfg["store_config"] == store.config
        and (cfg["music_dim"], cfg["dance_dim"]) == (9, 5)
    )


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p.mkdir() or p])
def test_neither_layout_names_path_and_both_layouts(tmp_path: Path, make) -> None:
    path = make(tmp_path / "data")
    with pytest.raises(DataError, match=r"data (does not exist|is neither).*store\.json.*video_feature/"):
        load_features(path, split="train")
    with pytest.raises(DataError, match=r"data "):
        dataset_config(path)


def test_dataset_config_of_empty_sources(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config={"grid_fps": 10.0})
    with pytest.raises(DataError, match="has no clips"):
        dataset_config(store.path)
    root = official(tmp_path / "off")
    (root / "train.txt").unlink()
    with pytest.raises(DataError, match="none of the split lists"):
        dataset_config(root)
