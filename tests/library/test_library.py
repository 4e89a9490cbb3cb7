"""Libraries built from a real (synthetic-media) store: layout, queries extracted like the clips, --add, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from beatdance.errors import CheckpointError, MediaError, ParameterError
from beatdance.features.loading import dataset_config
from beatdance.features.store import FeatureStore
from beatdance.library import Library, LibraryConfig, build_library
from beatdance.model.blender import BlenderConfig
from beatdance.model.inference import embedding_dim
from beatdance.train.config import TrainConfig
from beatdance.train.trainer import train


def test_library_layout_and_metadata(small_library, small_store):
    for name in (
        "library.json",
        "meta.sqlite",
        "embeddings.safetensors",
        "music.faiss",
        "dance.faiss.json",
        "querybank_m2d.safetensors",
        "querybank_d2m.safetensors",
        "model/model.safetensors",
    ):
        assert (small_library / name).is_file(), name
    head = json.loads((small_library / "library.json").read_text())
    assert head["format"] == "beatdance-library" and head["items"] == 12
    assert head["model"]["embed_dim"] == 32 and head["store_config"]["window_s"] == 10.0
    store = FeatureStore.open(small_store)
    rows = (
        sqlite3.connect(small_library / "meta.sqlite")
        .execute("select clip_id, start_s, dance_tempo_bpm from items")
        .fetchall()
    )
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
    # The model's metre prior is joined on both paths, with the song's metre read at query time as at prepare time.
    assert lib.model.prior is not None and emb.fuse.shape[1] == embedding_dim(lib.model) > lib.model.config.output_dim
    assert track.beats.beats_per_bar in (2, 3, 4) and {w.beats_per_bar for w in windows} == {track.beats.beats_per_bar}


def _assert_file_search_is_the_id_search_of_its_windows(lib: Library, modality: str, path, settings) -> dict:
    """A whole-file query is cut into the library's own windows (its clips were cut from the same file at the same
    starts), so each window scores as the clip of its span, and the reported matches are those of a search by the id
    of the best window's clip: the same items with the same scores, similarities and beat alignments."""
    by_file = lib.search(**{modality: path}, top=4, settings=settings)
    clips = {it.side(modality).start_s: it.clip_id for it in lib.items if it.side(modality).file == str(path)}
    assert [w["start_s"] for w in by_file.windows] == sorted(clips) == [0.0, 5.0, 10.0]
    by_id = {start: lib.search(**{f"{modality}_id": clip}, top=4, settings=settings) for start, clip in clips.items()}
    for w in by_file.windows:
        assert w["best_combined"] == pytest.approx(by_id[w["start_s"]].windows[0]["best_combined"], abs=1e-4)
    best = max(by_file.windows, key=lambda w: w["best_combined"])["start_s"]
    assert by_file.query["start_s"] == best and by_file.query["beats_s"] == by_id[best].query["beats_s"]
    same = by_id[best]
    assert [m.id for m in by_file.matches] == [m.id for m in same.matches]
    np.testing.assert_allclose(
        [(m.score, m.similarity, m.beat_alignment) for m in by_file.matches],
        [(m.score, m.similarity, m.beat_alignment) for m in same.matches],
        atol=1e-4,
    )
    return by_file.to_dict()


def test_search_by_file_and_by_id(small_library, small_corpus):
    lib = Library.open(small_library)
    by_id = lib.search(music_id=lib.ids[4], top=5)
    assert by_id.direction == "m2d" and len(by_id.matches) == 5
    assert [m.rank for m in by_id.matches] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(by_id.matches, by_id.matches[1:]))
    top = by_id.matches[0]
    assert top.source == top.item.dance_file and top.start_s == top.item.start_s and top.modality == "dance"
    assert 0.0 <= top.beat_alignment <= 1.0
    item = lib.item(lib.ids[4])
    by_span = lib.search(music=item.music_file, start_s=item.music_start_s, duration_s=10.0, top=5)
    assert by_span.query["start_s"] == item.music_start_s and len(by_span.windows) == 1
    same = _assert_file_search_is_the_id_search_of_its_windows
    m2d = same(lib, "music", small_corpus / "pair_002.wav", lib.settings())
    d2m = same(lib, "dance", small_corpus / "pair_001.npz", lib.settings(hubness="none"))
    assert (m2d["direction"], d2m["direction"]) == ("m2d", "d2m")
    assert {m["modality"] for m in d2m["matches"]} == {"music"}
    json.dumps(d2m)


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


# Run in a child process: ``build_library --add`` that SIGKILLs itself at the swap, i.e. when write_dir_atomically
# renames the finished new library onto the path (the old one has just been moved aside).
_KILLED_AT_THE_SWAP = """
import os, signal, sys
from pathlib import Path

store, out = sys.argv[1], Path(sys.argv[2])
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if Path(dst) == out:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from beatdance.library import build_library
build_library(data=store, out=out, add=True, show_progress=False)
"""


def test_add_is_incremental_and_survives_a_kill_at_the_swap(small_store, small_model, tmp_path):
    shutil.copytree(small_store, tmp_path / "store")
    small_store = tmp_path / "store"
    store = FeatureStore.open(small_store)
    store.write_splits({"train": store.ids()[:8], "val": [], "test": store.ids()[8:]})
    out = tmp_path / "lib"
    first = build_library(
        data=small_store,
        model=small_model,
        out=out,
        split="train",
        show_progress=False,
        config=LibraryConfig(querybank="test"),
    )
    assert first.items == 8 and (out / "bank.safetensors").is_file()
    with pytest.raises(ParameterError, match="--add"):
        build_library(data=small_store, model=small_model, out=out, show_progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_THE_SWAP, str(small_store), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    old = Library.open(out)  # the library at the path is the one before the killed --add
    assert old.ids == store.ids()[:8] and {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert len(old.search(music_id=old.ids[0], top=3).matches) == 3
    added = build_library(data=small_store, out=out, add=True, show_progress=False)
    assert (added.items, added.added, added.already_indexed) == (12, 4, 8)
    lib = Library.open(out)
    assert lib.ids == store.ids()[:8] + store.ids()[8:]
    np.testing.assert_array_equal(lib.embeddings("music", np.arange(8)).fuse, old.embeddings("music").fuse)
    assert not (tmp_path / ".lib.old").exists()  # the library put aside by the killed run was put back
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
    cfg = BlenderConfig(
        music_dim=fs.music_dim,
        dance_dim=fs.dance_dim,
        embed_dim=16,
        num_layers=1,
        num_heads=2,
        ff_dim=32,
        positional="sinusoidal",
        pool="mean",
    )
    train(
        train_set=fs,
        val_set=None,
        model_config=cfg,
        config=TrainConfig(epochs=1, batch_size=6, evals_per_epoch=0),
        out=tmp_path / "run",
        data_info=dataset_config(small_store),
        show_progress=False,
    )
    build_library(data=small_store, model=tmp_path / "run", out=tmp_path / "lib", show_progress=False)
    lib = Library.open(tmp_path / "lib")
    assert lib.embeddings("music", np.arange(3)).fuse.shape == (3, 16)
    result = lib.search(dance_id=lib.ids[2], top=4)
    assert len(result.matches) == 4 and result.direction == "d2m"


@pytest.mark.slow
def test_a_rhythm_branch_model_indexes_and_extracts_queries_like_its_clips(small_store, small_corpus, tmp_path):
    """The default recipe (rhythm branch, standardisation in the weights) trains, indexes and searches end to end;
    a file query's rhythm arrays are cut from the whole track like the clips' were, so its embeddings equal theirs."""
    from beatdance.train.recipes import get_recipe

    store = FeatureStore.open(small_store)
    fs = store.load_clips(store.ids())
    assert fs.has_rhythm
    model, cfg = get_recipe("default").configs(
        model={
            "music_dim": fs.music_dim,
            "dance_dim": fs.dance_dim,
            "embed_dim": 16,
            "num_layers": 1,
            "num_heads": 2,
            "ff_dim": 32,
        },
        train={"epochs": 2, "batch_size": 6},
    )
    assert model.rhythm_branch and model.standardise and model.metre_prior and cfg.evals_per_epoch == 0
    train(
        train_set=fs,
        val_set=None,
        model_config=model,
        config=cfg,
        out=tmp_path / "run",
        data_info=dataset_config(small_store),
        show_progress=False,
    )
    build_library(
        data=small_store, model=tmp_path / "run", out=tmp_path / "lib", config=LibraryConfig(), show_progress=False
    )
    lib = Library.open(tmp_path / "lib")
    assert lib.model.config.output_dim == 16 + model.rhythm_dim
    for modality, name in (("music", "pair_002.wav"), ("dance", "pair_002.npz")):
        emb, windows, _ = lib.extract_query(modality=modality, path=small_corpus / name, hop_s=5.0)
        rows = [i for i, it in enumerate(lib.items) if (it.side(modality).file or "").endswith(name)]
        assert len(rows) == len(windows) == 3
        np.testing.assert_allclose(emb.fuse, lib.embeddings(modality, np.array(rows)).fuse, atol=1e-4)
    result = lib.search(music=small_corpus / "pair_002.wav", top=3)
    assert len(result.matches) == 3
