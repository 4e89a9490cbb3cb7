"""Libraries built from a real (synthetic-media) store: layout, queries extracted like the clips, --add, bad input."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import soundfile as sf

from beatdance.errors import CheckpointError, MediaError, ParameterError
from beatdance.features.loading import dataset_config
from beatdance.features.store import FeatureStore
from beatdance.library import Library, LibraryConfig, build_library
from beatdance.model.blender import BlenderConfig
from beatdance.train.config import TrainConfig
from beatdance.train.trainer import train


def test_library_layout_and_metadata(small_library, small_store):
    for name in ("library.json", "meta.sqlite", "embeddings.safetensors", "music.faiss", "dance.faiss.json",
                 "querybank_m2d.safetensors", "querybank_d2m.safetensors", "model/model.safetensors"):
        assert (small_library / name).is_file(), name
    head = json.loads((small_library / "library.json").read_text())
    assert head["format"] == "beatdance-library" and head["items"] == 12
    assert head["model"]["embed_dim"] == 32 and head["store_config"]["window_s"] == 10.0
    store = FeatureStore.open(small_store)
    rows = sqlite3.connect(small_library / "meta.sqlite").execute("select clip_id, start_s, dance_tempo_bpm from items").fetchall()
    assert [r[0] for r in rows] == store.ids()
    meta = store.meta(rows[1][0])
    assert rows[1][1] == meta["start_s"] and rows[1][2] == pytest.approx(meta["dance_tempo_bpm"])


def test_file_query_is_extracted_like_the_library_clips(small_library, small_corpus):
    lib = Library.open(small_library)
    emb, windows, track = lib.extract_query(modality="music", path=small_corpus / "pair_002.wav", hop_s=5.0)
    assert [w.start_s for w in windows] == [0.0, 5.0, 10.0]
    rows = [i for i, it in enumerate(lib.items) if it.music_file and it.music_file.endswith("pair_002.wav")]
    stored = lib.embeddings("music", np.array(rows))
    np.testing.assert_allclose(emb.fuse, stored.fuse, atol=1e-4)
    np.testing.assert_array_equal(emb.beat_grid, stored.beat_grid)
    assert track.beats.tempo_bpm > 0


def test_search_by_file_and_by_id(small_library, small_corpus):
    lib = Library.open(small_library)
    by_id = lib.search(music_id=lib.ids[4], top=5)
    assert by_id.direction == "m2d" and len(by_id.matches) == 5
    assert [m.rank for m in by_id.matches] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(by_id.matches, by_id.matches[1:]))
    top = by_id.matches[0]
    assert top.file == top.item.dance_file and top.start_s == top.item.start_s and top.modality == "dance"
    assert 0.0 <= top.beat_alignment <= 1.0
    item = lib.item(lib.ids[4])
    by_file = lib.search(music=item.music_file, start_s=item.music_start_s, duration_s=10.0, top=5)
    assert by_file.query["start_s"] == item.music_start_s and len(by_file.windows) == 1
    d2m = lib.search(dance=small_corpus / "pair_001.npz", top=3, settings=lib.settings(hubness="none"))
    assert d2m.direction == "d2m" and all(m.modality == "music" for m in d2m.matches)
    assert len(d2m.windows) == 3 and d2m.query["start_s"] in (0.0, 5.0, 10.0)
    json.dumps(d2m.to_dict())


def test_search_rejects_bad_queries(small_library, small_corpus, tmp_path):
    lib = Library.open(small_library)
    with pytest.raises(ParameterError, match="exactly one query"):
        lib.search(music=small_corpus / "pair_000.wav", dance=small_corpus / "pair_000.npz")
    with pytest.raises(ParameterError, match="not in library"):
        lib.search(music_id="nope")
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 22050 * 4).astype(np.float32), 22050)
    with pytest.raises(MediaError, match=r"short\.wav"):
        lib.search(music=short)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050 * 12, np.float32), 22050)
    with pytest.raises(MediaError, match=r"silent\.wav"):
        lib.search(music=silent)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00junk" * 10)
    with pytest.raises(MediaError, match=r"corrupt\.wav"):
        lib.search(music=corrupt)
    with pytest.raises(MediaError, match="unknown music format"):
        lib.search(music=small_corpus / "pair_000.npz")


def test_add_is_incremental_and_atomic(small_store, small_model, tmp_path):
    shutil.copytree(small_store, tmp_path / "store")
    small_store = tmp_path / "store"
    store = FeatureStore.open(small_store)
    store.write_splits({"train": store.ids()[:8], "val": [], "test": store.ids()[8:]})
    out = tmp_path / "lib"
    first = build_library(data=small_store, model=small_model, out=out, split="train", show_progress=False,
                          config=LibraryConfig(querybank="test"))
    assert first.items == 8 and (out / "bank.safetensors").is_file()
    with pytest.raises(ParameterError, match="--add"):
        build_library(data=small_store, model=small_model, out=out, show_progress=False)
    added = build_library(data=small_store, out=out, add=True, show_progress=False)
    assert (added.items, added.added, added.already_indexed) == (12, 4, 8)
    lib = Library.open(out)
    assert lib.ids == store.ids()[:8] + store.ids()[8:]
    again = build_library(data=small_store, out=out, add=True, show_progress=False)
    assert again.added == 0 and again.items == 12
    other = tmp_path / "other_store"
    FeatureStore.create(other, config={**store.config, "hop_s": 2.5})
    before = (out / "embeddings.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="other extractor settings"):
        build_library(data=other, out=out, add=True, show_progress=False)
    assert (out / "embeddings.safetensors").read_bytes() == before


def test_damaged_library_is_a_clear_error(small_library, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_library, broken)
    (broken / "embeddings.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="embeddings.safetensors"):
        Library.open(broken)
    with pytest.raises(CheckpointError, match="not a beatdance library"):
        Library.open(tmp_path)


def test_mean_pooled_model_indexes_d_dimensional_embeddings(small_store, tmp_path):
    """A model with pool='mean' (one d-vector per clip) builds a searchable library of that width."""
    store = FeatureStore.open(small_store)
    fs = store.load_clips(store.ids())
    cfg = BlenderConfig(music_dim=fs.music_dim, dance_dim=fs.dance_dim, embed_dim=16, num_layers=1, num_heads=2,
                        ff_dim=32, positional="sinusoidal", pool="mean")
    train(train_set=fs, val_set=None, model_config=cfg, config=TrainConfig(epochs=1, batch_size=6, evals_per_epoch=0),
          out=tmp_path / "run", data_info=dataset_config(small_store), show_progress=False)
    build_library(data=small_store, model=tmp_path / "run", out=tmp_path / "lib", show_progress=False)
    lib = Library.open(tmp_path / "lib")
    assert lib.embeddings("music", np.arange(3)).fuse.shape == (3, 16)
    result = lib.search(dance_id=lib.ids[2], top=4)
    assert len(result.matches) == 4 and result.direction == "d2m"
