"""The FAISS vector index: exact search equals brute force, options work, save/load round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.errors import CheckpointError, ParameterError
from beatdance.retrieval.index import VectorIndex, normalize_rows
from beatdance.retrieval.index_config import IndexConfig


def _data(n=500, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.normal(size=(20, dim)).astype(np.float32)


def test_flat_search_equals_brute_force_and_roundtrips(tmp_path):
    x, q = _data()
    index = VectorIndex(IndexConfig(dim=32))
    index.add(x)
    scores, ids = index.search(q, k=5)
    brute = normalize_rows(q) @ normalize_rows(x).T
    np.testing.assert_array_equal(ids, np.argsort(-brute, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :5], atol=1e-5)
    index.save(tmp_path / "music.faiss")
    again = VectorIndex.load(tmp_path / "music.faiss", dim=32)
    assert len(again) == 500
    np.testing.assert_array_equal(again.search(q, k=5)[1], ids)
    with pytest.raises(CheckpointError, match="dim"):
        VectorIndex.load(tmp_path / "music.faiss", dim=64)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_most_exact_neighbours(kind):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 32))
    x = (centres[rng.integers(0, 40, 2000)] + 0.3 * rng.normal(size=(2000, 32))).astype(np.float32)
    q = (centres[rng.integers(0, 40, 20)] + 0.3 * rng.normal(size=(20, 32))).astype(np.float32)
    exact = VectorIndex(IndexConfig(dim=32))
    exact.add(x)
    approx = VectorIndex(IndexConfig(dim=32, kind=kind, nlist=32, nprobe=8))
    approx.add(x)
    truth, got = exact.search(q, k=10)[1], approx.search(q, k=10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)])
    assert recall > 0.7


def test_bad_inputs_raise_clear_errors():
    index = VectorIndex(IndexConfig(dim=8))
    with pytest.raises(ParameterError, match="dim 4"):
        index.add(np.ones((3, 4)))
    with pytest.raises(ParameterError, match="NaN"):
        index.add(np.full((3, 8), np.nan))
    with pytest.raises(ParameterError, match="nlist"):
        VectorIndex(IndexConfig(dim=8, kind="ivf", nlist=64)).add(np.ones((10, 8)))
    with pytest.raises(ParameterError, match="kind"):
        IndexConfig(dim=8, kind="annoy")  # type: ignore[arg-type]
