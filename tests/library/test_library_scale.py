"""Libraries with compressed, sharded indexes, a sampled querybank and ``--index auto`` (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from beatdance.cli import load_commands
from beatdance.errors import ParameterError
from beatdance.library import Library, LibraryConfig, write_library
from beatdance.library.catalog import Item
from beatdance.model.checkpoint import load_checkpoint
from beatdance.model.inference import embedding_dim
from beatdance.pipeline.prepare import PrepareConfig
from beatdance.retrieval.scoring import ModalityEmbeddings

N = 10_000  # enough to train 8-bit PQ (39 x 256 vectors)


def _side(rng: np.random.Generator, fuse: np.ndarray) -> ModalityEmbeddings:
    unit = fuse / np.linalg.norm(fuse, axis=1, keepdims=True)
    head = rng.normal(size=fuse.shape)
    return ModalityEmbeddings(
        fuse=unit,
        beat_head=head / np.linalg.norm(head, axis=1, keepdims=True),
        beat_grid=(rng.random((len(fuse), 100)) < 0.2).astype(np.float32),
        ids=[f"c{i}" for i in range(len(fuse))],
    )


@pytest.fixture(scope="module")
def big_library(small_model, tmp_path_factory):
    """A 10k-item library of synthetic embeddings (dance i near music i) for the small model: 2-shard ivfpq
    index and a querybank sampled to 500 of the 10k music clips."""
    net, _ = load_checkpoint(small_model)
    dim = embedding_dim(net)
    rng = np.random.default_rng(0)
    music = rng.normal(size=(N, dim)).astype(np.float32)
    dance = music + 0.5 * rng.normal(size=(N, dim)).astype(np.float32)
    items = [
        Item(
            row=i,
            clip_id=f"c{i}",
            grp=f"c{i}",
            music_file=None,
            dance_file=None,
            dance_kind=None,
            start_s=0.0,
            music_start_s=0.0,
            duration_s=10.0,
            music_tempo_bpm=None,
            dance_tempo_bpm=None,
        )
        for i in range(N)
    ]
    out = tmp_path_factory.mktemp("big") / "lib"
    config = LibraryConfig(index="ivfpq", nlist=16, pq_m=16, shards=2, querybank_size=500)
    choice = write_library(
        out=out,
        checkpoint=small_model,
        items=items,
        music=_side(rng, music),
        dance=_side(rng, dance),
        config=config,
        store_config=PrepareConfig().store_config(),
    )
    return out, choice


@pytest.mark.slow
def test_a_sharded_pq_library_opens_memory_mapped_and_finds_the_pairs(big_library):
    out, choice = big_library
    assert choice.config.kind == "ivfpq" and "IVF16,PQ16)" in choice.reason  # padded to a multiple of 16 first
    for name in ("dance.faiss.0", "dance.faiss.1", "dance.faiss.vectors.npy", "music.faiss.json"):
        assert (out / name).is_file(), name
    lib = Library.open(out)
    searcher = lib._searchers["m2d"]
    assert searcher.index.mapped and searcher.index.config.shards == 2 and len(searcher.index) == N
    assert searcher.querybank.bank_size == 500 and searcher.querybank.source["sampled_from"] == N
    hits = [lib.search(music_id=f"c{i}", top=5).matches[0].id for i in range(0, N, 500)]
    assert hits == [f"c{i}" for i in range(0, N, 500)]


def test_auto_and_its_choice_are_reported_by_the_cli(small_store, small_model, tmp_path):
    result = CliRunner().invoke(
        load_commands(),
        [
            "index",
            str(small_store),
            "--model",
            str(small_model),
            "--out",
            str(tmp_path / "lib"),
            "--index",
            "auto",
            "--rerank-min",
            "500",
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "index auto: flat (exact) for 12 items" in result.output and "model on cpu, FAISS on the CPU" in result.output
    )
    head = json.loads((tmp_path / "lib" / "library.json").read_text())
    assert head["config"]["index"] == "auto"
    index_config = json.loads((tmp_path / "lib" / "music.faiss.json").read_text())
    assert index_config["kind"] == "flat" and index_config["rerank_min"] == head["config"]["rerank_min"] == 500
    lib = Library.open(tmp_path / "lib")
    assert lib.search(music_id=lib.ids[0], top=3).matches


def test_bad_index_settings_fail_before_embedding():
    with pytest.raises(ParameterError, match="index='annoy'"):
        LibraryConfig(index="annoy")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="querybank_size=-1"):
        LibraryConfig(querybank_size=-1)
    with pytest.raises(ParameterError, match="shards=0"):
        LibraryConfig(shards=0)
    with pytest.raises(ParameterError, match="rerank_min=0"):
        LibraryConfig(rerank_min=0)


def test_index_refuses_a_gpu_that_is_not_there_before_embedding(small_store, small_model, tmp_path):
    missing = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    args = ["index", str(small_store), "--model", str(small_model), "--out", str(tmp_path / "lib"), "--no-progress"]
    result = CliRunner().invoke(load_commands(), [*args, "--device", missing])
    assert isinstance(result.exception, ParameterError), result.output
    assert f"--device {missing}" in str(result.exception) and "--device cpu" in str(result.exception)
    assert not (tmp_path / "lib").exists()
