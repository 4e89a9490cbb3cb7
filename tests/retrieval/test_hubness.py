"""QB-Norm: reference IS/DIS against a literal loop of the SPEC formulas, chunked == full, storage, hubs."""

from __future__ import annotations

import numpy as np
import pytest

from beatdance.errors import CheckpointError, ParameterError
from beatdance.retrieval.hubness import (
    QuerybankStats,
    apply_hubness,
    dynamic_inverted_softmax,
    fit_querybank,
    inverted_softmax,
    load_querybank,
    save_querybank,
)


def _loop_dis(test: np.ndarray, bank: np.ndarray, *, k: int, beta: float, dynamic: bool = True) -> np.ndarray:
    """SPEC §4.3 written literally, one gallery item and one query at a time."""
    q, g = test.shape
    z = [sum(np.exp(beta * bank[b, j]) for b in range(bank.shape[0])) for j in range(g)]
    active = set()
    for b in range(bank.shape[0]):
        active.update(np.argsort(-bank[b], kind="stable")[:k].tolist())
    out = test.astype(np.float64).copy()
    for i in range(q):
        if not dynamic or int(np.argmax(test[i])) in active:
            out[i] = [np.exp(beta * test[i, j]) / z[j] for j in range(g)]
    return out


@pytest.fixture
def mats():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(13, 11)), rng.uniform(-1, 1, size=(29, 11))


@pytest.mark.parametrize("k", [1, 3])
def test_reference_matches_loop(mats, k):
    test, bank = mats
    test0, bank0 = test.copy(), bank.copy()
    np.testing.assert_allclose(
        dynamic_inverted_softmax(scores=test, bank_scores=bank, k=k, beta=5.0),
        _loop_dis(test, bank, k=k, beta=5.0),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        inverted_softmax(scores=test, bank_scores=bank, beta=5.0),
        _loop_dis(test, bank, k=k, beta=5.0, dynamic=False),
        rtol=1e-10,
    )
    np.testing.assert_array_equal(test, test0)
    np.testing.assert_array_equal(bank, bank0)


def test_large_beta_is_stable(mats):
    test, bank = mats
    out = inverted_softmax(scores=test, bank_scores=bank, beta=2000.0)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("method,k", [("is", 1), ("dis", 1), ("dis", 2)])
def test_chunked_equals_full(mats, method, k):
    test, bank = mats
    stats = fit_querybank((bank[i : i + 4] for i in range(0, len(bank), 4)), k=k, beta=20.0, source={"split": "train"})
    assert stats.bank_size == len(bank) and stats.source == {"split": "train"}
    test0 = test.copy()
    chunked = np.concatenate(
        [apply_hubness(test[i : i + 5], stats=stats, method=method) for i in range(0, len(test), 5)]
    )
    ref = (
        inverted_softmax(scores=test, bank_scores=bank, beta=20.0)
        if method == "is"
        else dynamic_inverted_softmax(scores=test, bank_scores=bank, k=k, beta=20.0)
    )
    np.testing.assert_allclose(chunked, ref, rtol=1e-10)
    np.testing.assert_array_equal(test, test0)


def test_save_load_roundtrip(tmp_path, mats):
    _, bank = mats
    stats = fit_querybank([bank], k=2, beta=20.0, source={"split": "train", "n": 29})
    path = tmp_path / "qb.safetensors"
    save_querybank(path, stats)
    back = load_querybank(path)
    np.testing.assert_array_equal(back.log_normaliser, stats.log_normaliser)
    np.testing.assert_array_equal(back.activation, stats.activation)
    assert (back.k, back.beta, back.bank_size, back.source) == (2, 20.0, 29, {"split": "train", "n": 29})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_querybank(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_querybank(tmp_path / "junk.safetensors")


def test_errors(mats):
    test, bank = mats
    with pytest.raises(ParameterError, match="empty"):
        fit_querybank([], k=1, beta=20.0)
    with pytest.raises(ParameterError, match="beta"):
        fit_querybank([bank], k=1, beta=0.0)
    stats = fit_querybank([bank], k=1, beta=20.0)
    with pytest.raises(ParameterError, match="gallery"):
        apply_hubness(test[:, :5], stats=stats, method="dis")
    with pytest.raises(ParameterError, match="method"):
        apply_hubness(test, stats=stats, method="csls")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="same gallery"):
        fit_querybank([bank, bank[:, :5]], k=1, beta=20.0)
    assert isinstance(stats, QuerybankStats)


def test_planted_hub_is_retrieved_less():
    rng = np.random.default_rng(5)
    n, dim = 200, 32

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    gallery = unit(rng.normal(size=(n, dim)))
    queries, bank = unit(rng.normal(size=(n, dim))), unit(rng.normal(size=(400, dim)))
    gallery[0] = unit(queries.mean(0, keepdims=True) + bank.mean(0, keepdims=True))[0]  # close to everyone
    hub_dir = gallery[0]
    queries, bank = unit(queries + 0.6 * hub_dir), unit(bank + 0.6 * hub_dir)
    scores, bank_scores = queries @ gallery.T, bank @ gallery.T
    raw_hits = np.mean(np.argmax(scores, axis=1) == 0)
    assert raw_hits > 0.5
    stats = fit_querybank([bank_scores], k=1, beta=20.0)
    assert stats.activation[0]
    for method in ("is", "dis"):
        hits = np.mean(np.argmax(apply_hubness(scores, stats=stats, method=method), axis=1) == 0)
        assert hits < raw_hits / 2, method
