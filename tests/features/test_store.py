"""The native feature store: atomic resumable clips, config checks, group splits, official export/import."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beatdance.errors import CheckpointError, DataError, ParameterError, SplitNotFoundError
from beatdance.features.convert import export_official, import_official
from beatdance.features.official import read_official_split
from beatdance.features.pooling import beat_slots, pool_segments
from beatdance.features.store import FeatureStore

CONFIG: dict[str, Any] = {
    "grid_fps": 10.0,
    "window_s": 10.0,
    "music_beats": {"hop": 512, "tightness": 100},
    "sizes": (1, 2),
}


def clip_arrays(seed: int, music_frames: int = 75) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    mb = (rng.random(100) > 0.8).astype(np.float32)
    db = (rng.random(100) > 0.8).astype(np.float32)
    return {
        "music": rng.normal(size=(music_frames, 12)).astype(np.float32),
        "dance": rng.normal(size=(41, 6)).astype(np.float32),
        "music_beat": mb,
        "dance_beat": db,
        "music_beat_times": np.flatnonzero(mb) / 10.0,
        "dance_beat_times": np.flatnonzero(db) / 10.0,
    }


def fill(store: FeatureStore, groups: int, per_group: int) -> None:
    for g in range(groups):
        for w in range(per_group):
            store.put(
                f"pair{g:03d}__{w}", **clip_arrays(g * 100 + w), meta={"group": f"pair{g:03d}", "start_s": 10.0 * w}
            )


def test_put_get_roundtrip_and_load_split(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    arrays = clip_arrays(1)
    store.put("p__0", **arrays, meta={"group": "p", "music_tempo_bpm": 120.5})
    store.put("q__0", **clip_arrays(2, music_frames=81), meta={"group": "q"})
    rec = store.get("p__0")
    for name, value in arrays.items():
        np.testing.assert_array_equal(getattr(rec, name), value)
    assert rec.meta == {"group": "p", "music_tempo_bpm": 120.5} == store.meta("p__0")
    store.write_splits({"train": ["q__0", "p__0"]})
    fs = FeatureStore.open(tmp_path / "s").load_split("train")
    assert fs.ids == ["q__0", "p__0"] and fs.groups == ["q", "p"] and fs.beat_fps == 10.0
    assert fs.music.shape == (2, 10, 12) and fs.dance.shape == (2, 10, 6) and fs.music_beat.shape == (2, 10, 10)
    np.testing.assert_allclose(fs.music[1], pool_segments(arrays["music"], num_segments=10))
    np.testing.assert_array_equal(fs.dance_beat[1], beat_slots(arrays["dance_beat"], num_segments=10, slots=10))
    assert np.all(np.abs(fs.music[0]).sum(-1) > 0)  # 81 frames: no zero segment
    assert store.load_split("train", num_segments=5, slots=20).music_beat.shape == (2, 5, 20)
    assert fs.music_beats_per_bar is None and list(fs.beats_per_bar()) == [0, 0]  # prepared without a metre


def test_each_songs_metre_reaches_the_feature_set(tmp_path: Path) -> None:
    """The beats per bar ``prepare`` stores with a clip come back per clip (0 where unknown), through subsets too."""
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    for i, bars in enumerate((3, None, 4)):
        meta = {"group": f"g{i}"} | ({} if bars is None else {"music_beats_per_bar": bars})
        store.put(f"c{i}", **clip_arrays(i), meta=meta)
    fs = store.load_clips(["c0", "c1", "c2"])
    np.testing.assert_array_equal(fs.music_beats_per_bar, [3, 0, 4])
    np.testing.assert_array_equal(fs.subset([2, 0]).beats_per_bar(), [4, 3])
    for bad in (np.zeros(2), np.array([3.0, np.nan, 4.0])):
        with pytest.raises(DataError, match="music_beats_per_bar"):
            dataclasses.replace(fs, music_beats_per_bar=bad)


def test_config_is_checked_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    FeatureStore.create(path, config=CONFIG)
    again = FeatureStore.create(path, config={**CONFIG, "sizes": [1, 2]})
    assert again.config["music_beats"] == {"hop": 512, "tightness": 100}
    other = {**CONFIG, "window_s": 5.0, "music_beats": {"hop": 256, "tightness": 100}}
    with pytest.raises(CheckpointError, match=r"differ in \['music_beats\.hop', 'window_s'\].*new --out"):
        FeatureStore.create(path, config=other)
    with pytest.raises(CheckpointError, match="already holds a feature store"):
        FeatureStore.create(path, config=CONFIG, exist_ok=False)
    with pytest.raises(ParameterError, match="not plain JSON"):
        FeatureStore.create(tmp_path / "t", config={"f": object()})


def test_open_and_create_refuse_non_stores(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "song.mp3").write_bytes(b"x")
    with pytest.raises(DataError, match=r"media exists and is not a feature store"):
        FeatureStore.create(tmp_path / "media", config=CONFIG)
    with pytest.raises(DataError, match=r"store\.json is missing"):
        FeatureStore.open(tmp_path / "media")
    (tmp_path / "media" / "store.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not a beatdance store manifest"):
        FeatureStore.open(tmp_path / "media")


def test_resume_semantics_and_leftover_tmp_file(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    assert not store.has("a__0") and store.ids() == []
    (tmp_path / "s" / "clips" / ".a__0.safetensors.k3j2.tmp").write_bytes(b"half a file")
    assert not store.has("a__0") and store.ids() == []
    store.put("a__0", **clip_arrays(0), meta={"group": "a"})
    first = (tmp_path / "s" / "clips" / "a__0.safetensors").read_bytes()
    store.put("a__0", **clip_arrays(0), meta={"group": "a"})
    assert store.has("a__0") and store.ids() == ["a__0"]
    assert (tmp_path / "s" / "clips" / "a__0.safetensors").read_bytes() == first


def test_bad_clip_files_and_inputs(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    with pytest.raises(DataError, match=r"clips/nope\.safetensors does not exist"):
        store.get("nope")
    (tmp_path / "s" / "clips" / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(DataError, match=r"junk\.safetensors is not a readable clip file.*re-run"):
        store.get("junk")
    bad = clip_arrays(0)
    bad["music"][3, 2] = np.nan
    with pytest.raises(ParameterError, match="'x': music .* non-finite"):
        store.put("x", **bad, meta={})
    with pytest.raises(ParameterError, match="must be grids of the same length"):
        store.put("x", **{**clip_arrays(0), "dance_beat": np.zeros(90)}, meta={})
    with pytest.raises(ParameterError, match="cannot name a file"):
        store.put("../x", **clip_arrays(0), meta={})


def test_skips_are_recorded_once(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    assert store.skips() == []
    store.add_skip(input="a.mp4", reason="no audio", stage="extract")
    store.add_skip(input="a.mp4", reason="no audio", stage="extract")
    store.add_skip(input="b.mp4", reason="no person", stage="window")
    assert [s["input"] for s in FeatureStore.open(tmp_path / "s").skips()] == ["a.mp4", "b.mp4"]


def test_make_splits_by_group_has_no_leakage(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    fill(store, groups=40, per_group=3)
    splits = store.make_splits(seed=3)
    groups = {name: {store.meta(c)["group"] for c in ids} for name, ids in splits.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert sorted(sum(splits.values(), [])) == store.ids()
    assert [len(splits[n]) for n in ("train", "val", "test")] == [96, 12, 12]
    assert store.split_ids("test") == splits["test"] and store.load_split("test").groups[0].startswith("pair")
    assert store.make_splits(seed=3) == splits and store.make_splits(seed=4) != splits


def test_make_splits_small_and_zero_fraction(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    fill(store, groups=3, per_group=4)
    splits = store.make_splits(seed=0)
    assert all(len(ids) == 4 for ids in splits.values())
    splits = store.make_splits(fractions=(0.7, 0.0, 0.3), seed=0)
    assert splits["val"] == [] and store.split_names() == ["test", "train"]
    with pytest.raises(SplitNotFoundError):
        store.load_split("val")
    by_clip = store.make_splits(fractions=(0.5, 0.25, 0.25), by="clip")
    assert [len(by_clip[n]) for n in ("train", "val", "test")] == [6, 3, 3]
    with pytest.raises(ParameterError, match="summing to 1"):
        store.make_splits(fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ParameterError, match="by='pair'"):
        store.make_splits(by="pair")


def test_write_splits_validates_ids(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    fill(store, groups=2, per_group=1)
    with pytest.raises(ParameterError, match="lists 'ghost', which is not in the store"):
        store.write_splits({"train": ["ghost"]})
    with pytest.raises(ParameterError, match="in both split 'train' and 'test'"):
        store.write_splits({"train": ["pair000__0"], "test": ["pair000__0"]})
    with pytest.raises(ParameterError, match="split name 'a/b'"):
        store.write_splits({"a/b": ["pair000__0"]})


def test_export_official_then_read_equals_load_split_and_import_back(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    fill(store, groups=6, per_group=2)
    store.make_splits(fractions=(0.5, 0.25, 0.25), seed=1)
    export_official(store, tmp_path / "official")
    for split in ("train", "val", "test"):
        ours, theirs = store.load_split(split), read_official_split(tmp_path / "official", split=split)
        assert ours.ids == theirs.ids and ours.groups == theirs.groups and ours.beat_fps == theirs.beat_fps
        for name in ("music", "dance", "music_beat", "dance_beat"):
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), atol=1e-6)
    back = import_official(tmp_path / "official", tmp_path / "back")
    assert back.config == {"origin": "official-layout", "grid_fps": 10.0}
    assert back.split_names() == ["test", "train", "val"] and sorted(back.ids()) == store.ids()
    rec, orig = back.get("pair001__1"), store.get("pair001__1")
    np.testing.assert_allclose(rec.music_beat_times, orig.music_beat_times)
    np.testing.assert_allclose(rec.dance, orig.dance)
    assert rec.meta["group"] == "pair001"
    np.testing.assert_allclose(back.load_split("val").music, store.load_split("val").music, atol=1e-6)
    assert import_official(tmp_path / "official", tmp_path / "back").ids() == back.ids()


def _put_many(path: str, start: int) -> int:
    store = FeatureStore.open(path)
    for i in range(start, start + 6):
        store.put(f"c{i:02d}", **clip_arrays(i), meta={"group": f"g{i}"})
    return 6


def test_parallel_puts_from_processes(tmp_path: Path) -> None:
    FeatureStore.create(tmp_path / "s", config=CONFIG)
    with ProcessPoolExecutor(max_workers=2) as pool:
        assert sum(pool.map(_put_many, [str(tmp_path / "s")] * 2, [0, 6])) == 12
    store = FeatureStore.open(tmp_path / "s")
    assert store.ids() == [f"c{i:02d}" for i in range(12)]
    assert not [p for p in (tmp_path / "s" / "clips").iterdir() if p.name.startswith(".")]
    np.testing.assert_array_equal(store.get("c07").music, clip_arrays(7)["music"])


def test_a_clip_file_with_nan_beat_times_is_refused_naming_the_file(tmp_path: Path) -> None:
    import safetensors.numpy

    store = FeatureStore.create(tmp_path / "s", config=CONFIG)
    store.put("x", **clip_arrays(0), meta={"group": "g"})
    path = store.clip_path("x")
    with open(path, "rb") as fh:  # an edited or damaged file: valid safetensors, NaN in the beat times
        arrays = safetensors.numpy.load(fh.read())
    arrays["music_beat_times"] = np.array([0.5, np.nan])
    path.write_bytes(safetensors.numpy.save(arrays, metadata={"meta": "{}"}))
    with pytest.raises(DataError, match=r"x\.safetensors has NaN or infinite values in \['music_beat_times'\]"):
        store.get("x")


def test_a_store_json_edited_to_another_window_is_refused_at_load(tmp_path: Path) -> None:
    import json

    store = FeatureStore.create(tmp_path / "s", config={**CONFIG, "window_s": 10.0, "grid_fps": 10.0})
    store.put("x", **clip_arrays(0), meta={"group": "g"})
    assert store.get("x").music_beat.shape == (100,)
    head = json.loads((tmp_path / "s" / "store.json").read_text())
    head["config"]["window_s"] = 5.0
    (tmp_path / "s" / "store.json").write_text(json.dumps(head))
    with pytest.raises(DataError, match=r"beat grids of .*100.* 5-s windows at 10 fps \(50 frames\)"):
        FeatureStore.open(tmp_path / "s").get("x")
