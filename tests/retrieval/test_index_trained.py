"""The compressed index on embeddings of a trained model, not synthetic clusters (issue 13): ``ivfpq`` with the
library's defaults keeps recall@10 >= 0.95 against exact search after its re-rank, and memory mapping and two
shards return the same top 10 as one in-memory index."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import train_small_model

from beatdance.features.store import ClipRecord, FeatureStore
from beatdance.library import LibraryConfig
from beatdance.model.checkpoint import load_checkpoint
from beatdance.retrieval.embed import embed_featureset
from beatdance.retrieval.index import VectorIndex, normalize_rows

GALLERY = 12_000  # PQ trains on at least 39 x 256 vectors
QUERIES = 100
PER_FRAME = ("music", "dance", "music_beat", "dance_beat")


def spliced_windows(records: list[ClipRecord], *, count: int, seed: int) -> list[ClipRecord]:
    """``count`` windows, each the start of one clip joined to the end of another at a random share of the window
    and rolled by a random share (every per-frame array cut and rolled alike), so that a 12-clip store gives
    thousands of distinct inputs to embed, as the hop-shifted windows of a large library do."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        a, b = rng.integers(len(records), size=2)
        cut, shift = rng.random(2)
        arrays = {}
        for name in PER_FRAME:
            x, y = getattr(records[a], name), getattr(records[b], name)
            joined = np.concatenate([x[: int(cut * len(x))], y[int(cut * len(y)) :]])
            arrays[name] = np.roll(joined, int(shift * len(joined)), axis=0)
        out.append(dataclasses.replace(records[a], clip_id=f"w{i}", **arrays))
    return out


@pytest.fixture(scope="module")
def trained_embeddings(small_store, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """Dance embeddings of 12 000 windows (the gallery) and music embeddings of 100 other windows (the queries),
    from conftest's tiny model trained for 40 epochs (2.5 s), until it ranks its own clips: after its 2 epochs
    the music and dance embeddings are nearly orthogonal (mean top-1 cosine 0.09), after 40 about 0.25."""
    net, _ = load_checkpoint(train_small_model(small_store, tmp_path_factory.mktemp("run40") / "run", epochs=40))
    store = FeatureStore.open(small_store)
    records = [store.get(clip_id) for clip_id in store.ids()]
    windows = spliced_windows(records, count=GALLERY + QUERIES, seed=0)
    features = store.pool_records(windows, num_segments=net.config.num_segments, slots=net.config.beat_slots)
    music, dance = embed_featureset(net, features, batch_size=512)
    return dance.fuse[:GALLERY], music.fuse[GALLERY:]


def exact_top10(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    scores = normalize_rows(queries).astype(np.float64) @ normalize_rows(gallery).astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))


@pytest.mark.slow
def test_ivfpq_recall_on_trained_embeddings_memory_mapped_and_sharded(trained_embeddings, tmp_path):
    gallery, queries = trained_embeddings
    truth = exact_top10(queries, gallery)
    assert len(np.unique(truth)) > 200  # many distinct neighbours, not a few repeated clips
    config = LibraryConfig(index="ivfpq").index_config(gallery.shape[1], items=GALLERY)
    assert (config.nlist, config.lists_probed, config.rerank_min) == (256, 64, 1000)  # the library's defaults
    index = VectorIndex.build(gallery, config=config)
    ids = index.search(queries, k=10)[1]
    assert recall_at_10(ids, truth) >= 0.95
    index.save(tmp_path / "dance.faiss")
    mapped = VectorIndex.load(tmp_path / "dance.faiss", dim=gallery.shape[1])
    assert mapped.mapped
    np.testing.assert_array_equal(mapped.search(queries, k=10)[1], ids)
    sharded = VectorIndex.build(gallery, config=dataclasses.replace(config, shards=2))
    np.testing.assert_array_equal(sharded.search(queries, k=10)[1], ids)
