"""Reading the official BeatDance layout safely, and writing it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from beatdance.errors import DataError, ParameterError, SplitNotFoundError
from beatdance.features.official import is_official_layout, read_official_split, write_official
from beatdance.features.pooling import pool_segments

FOLDERS = {
    "video_feature": "video_clip_feature",
    "music_feature": "music_bert_feature",
    "video_beat": "video_beat",
    "music_beat": "music_beat",
}


def write_clip(root: Path, clip_id: str, seed: int, **override: Any) -> dict[str, torch.Tensor]:
    """Write one clip's four files the way the official data is stored; ``override`` replaces a file's dict."""
    g = torch.Generator().manual_seed(seed)
    tensors = {
        "video_feature": torch.randn(37, 16, generator=g),
        "music_feature": torch.randn(83, 24, generator=g),
        "video_beat": (torch.rand(100, generator=g) > 0.8).long(),
        "music_beat": (torch.rand(120, generator=g) > 0.8).float(),
    }
    for folder, key in FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        obj = override.get(folder, {"fps": 10, key: tensors[folder]})
        torch.save(obj, root / folder / f"{clip_id}.pt")
    return tensors


def make_layout(root: Path, ids: list[str], split: str = "test") -> dict[str, dict[str, torch.Tensor]]:
    data = {clip_id: write_clip(root, clip_id, seed=i) for i, clip_id in enumerate(ids)}
    (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return data


def test_reads_and_pools_official_files(tmp_path: Path) -> None:
    data = make_layout(tmp_path, ["b", "a", "c"])
    assert is_official_layout(tmp_path) and not is_official_layout(tmp_path / "video_feature")
    fs = read_official_split(tmp_path, split="test")
    assert fs.ids == ["b", "a", "c"] and fs.groups == ["b", "a", "c"] and fs.beat_fps == 10.0
    assert fs.dance.shape == (3, 10, 16) and fs.music.shape == (3, 10, 24) and fs.dance_beat.shape == (3, 10, 10)
    np.testing.assert_allclose(fs.dance[1], pool_segments(data["a"]["video_feature"].numpy(), num_segments=10))
    np.testing.assert_array_equal(fs.music_beat[2].ravel(), data["c"]["music_beat"][:100].numpy())
    np.testing.assert_array_equal(fs.dance_beat[0].ravel(), data["b"]["video_beat"].numpy())
    assert fs.info["layout"] == "official"


class NotATensor:
    """A pickled object that weights-only loading must refuse."""


@pytest.mark.parametrize(
    ("folder", "obj", "message"),
    [
        (
            "video_feature",
            {"fps": 10, "video_feature": torch.zeros(40, 16)},
            r"keys \['fps', 'video_feature'\].*'video_clip_feature'",
        ),
        ("video_feature", {"fps": 10, "video_clip_feature": torch.zeros(40)}, r"shape \(40,\); expected a 2-D"),
        ("music_beat", {"fps": 10, "music_beat": torch.zeros(10, 10)}, r"shape \(10, 10\); expected a 1-D"),
        (
            "music_feature",
            {"fps": 10, "music_bert_feature": torch.zeros(40, 24, dtype=torch.complex64)},
            "dtype torch.complex64",
        ),
        ("music_feature", {"fps": 10, "music_bert_feature": torch.full((40, 24), float("nan"))}, "NaN or inf"),
        ("video_beat", {"fps": 10, "video_beat": [0, 1] * 50}, "is a list; expected a torch tensor"),
        ("video_beat", torch.zeros(100), "holds a Tensor; expected a dict"),
        ("video_beat", {"fps": "ten", "video_beat": torch.zeros(100)}, "'fps' is 'ten'"),
        ("video_feature", {"fps": 10, "video_clip_feature": NotATensor()}, "weights-only"),
    ],
)
def test_bad_file_raises_data_error_naming_it(tmp_path: Path, folder: str, obj: Any, message: str) -> None:
    make_layout(tmp_path, ["ok1", "bad"])
    write_clip(tmp_path, "bad", seed=5, **{folder: obj})
    with pytest.raises(DataError, match=message) as info:
        read_official_split(tmp_path, split="test")
    assert str(tmp_path / folder / "bad.pt") in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    make_layout(tmp_path, ["a", "b"])
    (tmp_path / "music_beat" / "b.pt").unlink()
    with pytest.raises(DataError, match=r"music_beat/b\.pt does not exist"):
        read_official_split(tmp_path, split="test")


def test_inconsistent_dims_name_both_files(tmp_path: Path) -> None:
    make_layout(tmp_path, ["a", "b"])
    write_clip(tmp_path, "b", seed=1, video_feature={"fps": 10, "video_clip_feature": torch.zeros(40, 15)})
    with pytest.raises(
        DataError, match=r"video_feature/b\.pt: dance features are 15-d but .*video_feature/a\.pt has 16-d"
    ):
        read_official_split(tmp_path, split="test")


def test_short_feature_and_short_beat_vector(tmp_path: Path) -> None:
    make_layout(tmp_path, ["a"])
    write_clip(tmp_path, "a", seed=1, video_beat={"fps": 10, "video_beat": torch.ones(90, dtype=torch.bool)})
    with pytest.warns(UserWarning, match=r"video_beat/a\.pt.*90 frames"):
        fs = read_official_split(tmp_path, split="test")
    assert fs.dance_beat[0].ravel()[:90].all() and not fs.dance_beat[0].ravel()[90:].any()
    write_clip(tmp_path, "a", seed=1, music_feature={"fps": 10, "music_bert_feature": torch.ones(8, 24)})
    with pytest.raises(DataError, match=r"music_feature/a\.pt: 8 feature frames"):
        read_official_split(tmp_path, split="test")


def test_missing_and_empty_split_lists(tmp_path: Path) -> None:
    make_layout(tmp_path, ["a"], split="train")
    with pytest.raises(SplitNotFoundError, match=r"val\.txt does not exist.*\['train'\]") as info:
        read_official_split(tmp_path, split="val")
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "val.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"val\.txt lists no clip ids"):
        read_official_split(tmp_path, split="val")
    with pytest.raises(DataError, match="lacks some of the official folders"):
        read_official_split(tmp_path / "video_feature", split="train")


def test_write_official_roundtrip_keeps_groups_and_is_readable_raw(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    split = SimpleNamespace(
        ids=["p1__0", "p1__1", "p2__0"],
        groups=["p1", "p1", "p2"],
        music=rng.normal(size=(3, 75, 8)),
        dance=[rng.normal(size=(50 + i, 4)) for i in range(3)],
        music_beat=(rng.random((3, 100)) > 0.7).astype(np.float32),
        dance_beat=(rng.random((3, 100)) > 0.7).astype(np.float32),
    )
    write_official(tmp_path, splits={"train": split})
    raw = torch.load(tmp_path / "music_feature" / "p1__1.pt", weights_only=True)
    assert set(raw) == {"fps", "music_bert_feature"} and raw["fps"] == pytest.approx(7.5)
    assert torch.load(tmp_path / "video_beat" / "p2__0.pt", weights_only=True)["fps"] == 10.0
    fs = read_official_split(tmp_path, split="train")
    assert fs.ids == split.ids and fs.groups == ["p1", "p1", "p2"]
    np.testing.assert_allclose(fs.dance[2], pool_segments(split.dance[2], num_segments=10), atol=1e-6)
    np.testing.assert_array_equal(fs.music_beat.reshape(3, -1), split.music_beat)


def test_write_official_rejects_shared_ids_and_bad_ids(tmp_path: Path) -> None:
    one = SimpleNamespace(
        ids=["x"],
        music=np.ones((1, 20, 2)),
        dance=np.ones((1, 20, 2)),
        music_beat=np.ones((1, 100)),
        dance_beat=np.ones((1, 100)),
    )
    with pytest.raises(ParameterError, match="'x' is in both split 'train' and 'test'"):
        write_official(tmp_path, splits={"train": one, "test": one})
    bad = SimpleNamespace(**{**vars(one), "ids": ["../x"]})
    with pytest.raises(ParameterError, match=r"'\.\./x' cannot name a file"):
        write_official(tmp_path, splits={"train": bad})


def test_split_list_with_path_like_id_is_refused(tmp_path: Path) -> None:
    make_layout(tmp_path, ["a"])
    (tmp_path / "test.txt").write_text("a\n../../etc/passwd\n")
    with pytest.raises(DataError, match=r"test\.txt: clip id '\.\./\.\./etc/passwd' cannot name a file"):
        read_official_split(tmp_path, split="test")
