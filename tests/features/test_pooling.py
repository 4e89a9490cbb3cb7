"""Segment pooling never drops segments, and beat tables are binarised, cut and padded as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdance.errors import DataError, ParameterError
from beatdance.features.pooling import PerFrameClip, beat_slots, pool_clips, pool_segments


@pytest.mark.parametrize("frames", [10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 27, 45, 81, 82, 100, 250])
def test_pool_segments_always_fills_every_segment(frames: int) -> None:
    x = np.arange(frames * 3, dtype=np.float32).reshape(frames, 3) + 1.0
    pooled = pool_segments(x, num_segments=10)
    want = torch.stack([p.mean(0) for p in torch.tensor_split(torch.from_numpy(x), 10)]).numpy()
    assert pooled.shape == (10, 3) and pooled.dtype == np.float32
    assert np.all(pooled != 0)
    np.testing.assert_allclose(pooled, want, rtol=1e-6)


def test_torch_chunk_really_drops_segments_where_we_do_not() -> None:
    x = torch.ones(11, 2)
    assert len(torch.chunk(x, 10)) < 10
    assert pool_segments(x.numpy(), num_segments=10).shape == (10, 2)


def test_pool_segments_too_few_frames_names_source_and_fix() -> None:
    with pytest.raises(DataError, match=r"clipA\.pt.*7 feature frames.*longer clips\) or fewer segments"):
        pool_segments(np.ones((7, 4)), num_segments=10, source="clipA.pt")


def test_pool_segments_rejects_bad_shapes_and_counts() -> None:
    with pytest.raises(DataError, match=r"x\.pt.*\(20,\)"):
        pool_segments(np.ones(20), num_segments=10, source="x.pt")
    with pytest.raises(ParameterError, match="num_segments=0"):
        pool_segments(np.ones((20, 2)), num_segments=0)


def test_beat_slots_binarises_and_reshapes_row_major() -> None:
    vec = np.zeros(130)
    vec[[0, 11, 99]] = [1.0, 0.5, 3.0]
    vec[5] = -1.0
    vec[100:] = 1.0  # beyond the 100 slots used
    table = beat_slots(vec, num_segments=10, slots=10)
    assert table.shape == (10, 10) and table.dtype == np.float32
    assert set(np.unique(table)) == {0.0, 1.0}
    assert table[0, 0] == 1 and table[1, 1] == 1 and table[9, 9] == 1 and table[0, 5] == 0
    assert table.sum() == 3


def test_beat_slots_pads_short_vector_with_warning_naming_source() -> None:
    vec = np.ones(95)
    with pytest.warns(UserWarning, match=r"beats/c1\.pt.*95 frames"):
        table = beat_slots(vec, num_segments=10, slots=10, source="beats/c1.pt")
    assert table.reshape(-1)[:95].all() and not table.reshape(-1)[95:].any()


def test_beat_slots_rejects_2d() -> None:
    with pytest.raises(DataError, match="1-D"):
        beat_slots(np.ones((10, 10)), num_segments=10, slots=10)


def _clip(clip_id: str, music_dim: int) -> PerFrameClip:
    rng = np.random.default_rng(0)
    return PerFrameClip(
        clip_id=clip_id,
        music=rng.normal(size=(30, music_dim)),
        dance=rng.normal(size=(20, 4)),
        music_beat=np.ones(100),
        dance_beat=np.zeros(100),
        sources={"music": f"{clip_id}/music.pt"},
    )


def test_pool_clips_stacks_and_checks_dims() -> None:
    fs = pool_clips([_clip("a", 6), _clip("b", 6)], num_segments=5, slots=20, beat_fps=10.0)
    assert fs.music.shape == (2, 5, 6) and fs.dance.shape == (2, 5, 4) and fs.music_beat.shape == (2, 5, 20)
    assert fs.groups == ["a", "b"] and fs.music_beat.all() and not fs.dance_beat.any()
    with pytest.raises(DataError, match=r"b/music\.pt: music features are 7-d but a/music\.pt has 6-d"):
        pool_clips([_clip("a", 6), _clip("b", 7)], num_segments=5, slots=20, beat_fps=10.0)
