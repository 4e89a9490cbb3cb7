"""Querybank normalisation (QB-Norm, SPEC §4.3-4.4): inverted softmax (IS) and its dynamic form (DIS).

A hub is a gallery item that many queries retrieve whatever they ask. QB-Norm divides exp(beta * s) by
the item's normaliser Z_j = sum over a querybank B of exp(beta * s_b(j)), so an item that every bank
query likes is pushed down. DIS applies this only to queries whose top-1 item is in the activation set
A (items in the top-k of some bank query) and keeps the raw scores of the other rows; rows are then on
different scales, so only within-row ranking is meaningful.

Two forms: reference functions on full matrices, and a chunked one whose bank statistics
(``QuerybankStats``: log Z and A) are fitted from row chunks of the bank matrix, stored to safetensors
and applied to query chunks. Nothing is modified in place; every computation is in log space
(logsumexp), which returns the same values as exp(beta s) / Z without overflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CheckpointError, ParameterError
from ..util import atomic_write_bytes
from .metrics import top_k_mask

Method = Literal["is", "dis"]
_FORMAT = "beatdance.querybank/1"


def _matrix(x: np.ndarray, *, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ParameterError(f"{name} has shape {arr.shape}; expected a 2-D (queries, gallery) score matrix.")
    if np.isnan(arr).any():
        raise ParameterError(f"{name} contains NaN; check the embeddings the scores come from.")
    return arr


def _check_params(*, k: int, beta: float) -> None:
    if not beta > 0:
        raise ParameterError(f"beta={beta} must be strictly positive (QB-Norm inverse temperature, default 20).")
    if k < 1:
        raise ParameterError(f"k={k} must be >= 1 (DIS activation set: top-k items of each bank query, default 1).")


def _log_colsum_exp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x), axis=0)), stable for large x."""
    m = x.max(axis=0)
    return m + np.log(np.exp(x - m).sum(axis=0))


def _same_gallery(scores: np.ndarray, bank: np.ndarray) -> None:
    if scores.shape[1] != bank.shape[1]:
        raise ParameterError(
            f"scores cover {scores.shape[1]} gallery items but bank_scores {bank.shape[1]}; "
            "score the querybank against the same gallery."
        )


def inverted_softmax(*, scores: np.ndarray, bank_scores: np.ndarray, beta: float) -> np.ndarray:
    """IS: exp(beta s[q, j]) / sum_b exp(beta bank[b, j]) for (Q, G) scores and an (M, G) querybank."""
    _check_params(k=1, beta=beta)
    s = _matrix(scores, name="scores")
    bank = _matrix(bank_scores, name="bank_scores")
    _same_gallery(s, bank)
    return np.exp(beta * s - _log_colsum_exp(beta * bank))


def dynamic_inverted_softmax(*, scores: np.ndarray, bank_scores: np.ndarray, k: int, beta: float) -> np.ndarray:
    """DIS: IS for the rows whose top-1 item is in the top-k of some bank query, raw scores elsewhere."""
    _check_params(k=k, beta=beta)
    s = _matrix(scores, name="scores")
    bank = _matrix(bank_scores, name="bank_scores")
    _same_gallery(s, bank)
    active = np.unique(np.argsort(-bank, axis=1, kind="stable")[:, :k])
    rows = np.isin(np.argmax(s, axis=1), active)
    out = s.copy()
    out[rows] = inverted_softmax(scores=s[rows], bank_scores=bank, beta=beta)
    return out


@dataclass
class QuerybankStats:
    """What QB-Norm needs of a querybank: log Z_j (G,), the DIS activation set (G,) bool, and how it was made."""

    log_normaliser: np.ndarray
    activation: np.ndarray
    k: int
    beta: float
    bank_size: int
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def gallery_size(self) -> int:
        return int(self.log_normaliser.shape[0])


def fit_querybank(
    bank_score_chunks: Iterable[np.ndarray], *, k: int, beta: float, source: dict[str, Any] | None = None
) -> QuerybankStats:
    """Querybank statistics from row chunks of the (M, G) bank score matrix, streamed (never all in memory)."""
    _check_params(k=k, beta=beta)
    log_z: np.ndarray | None = None
    active: np.ndarray | None = None
    size = 0
    for i, chunk in enumerate(bank_score_chunks):
        c = _matrix(chunk, name=f"bank score chunk {i}")
        if c.shape[0] == 0:
            continue
        if log_z is None:
            log_z = np.full(c.shape[1], -np.inf)
            active = np.zeros(c.shape[1], dtype=bool)
        if c.shape[1] != log_z.shape[0]:
            raise ParameterError(
                f"bank score chunk {i} covers {c.shape[1]} gallery items, earlier chunks "
                f"{log_z.shape[0]}; every chunk must be scored against the same gallery."
            )
        log_z = np.logaddexp(log_z, _log_colsum_exp(beta * c))
        active |= top_k_mask(c, k=k).any(axis=0)  # type: ignore[operator]  # set with log_z above
        size += c.shape[0]
    if log_z is None or active is None:
        raise ParameterError("the querybank is empty; give at least one bank query (e.g. the train split).")
    return QuerybankStats(
        log_normaliser=log_z, activation=active, k=k, beta=float(beta), bank_size=size, source=dict(source or {})
    )


def apply_hubness(scores: np.ndarray, *, stats: QuerybankStats, method: Method) -> np.ndarray:
    """QB-Norm of a chunk of query rows (Q, G) with fitted querybank ``stats``; returns a new float64 array."""
    s = _matrix(scores, name="scores")
    if s.shape[1] != stats.gallery_size:
        raise ParameterError(
            f"scores cover {s.shape[1]} gallery items but the querybank was fitted on "
            f"{stats.gallery_size}; fit it against the same gallery."
        )
    if method == "is":
        return np.exp(stats.beta * s - stats.log_normaliser)
    if method == "dis":
        rows = stats.activation[np.argmax(s, axis=1)]
        out = s.copy()
        out[rows] = np.exp(stats.beta * s[rows] - stats.log_normaliser)
        return out
    raise ParameterError(f"method={method!r}; expected 'is' (inverted softmax) or 'dis' (dynamic inverted softmax).")


def save_querybank(path: str | os.PathLike[str], stats: QuerybankStats) -> None:
    """Write ``stats`` atomically as safetensors, with k, beta, bank size and source as JSON metadata."""
    from safetensors.numpy import save

    tensors = {
        "log_normaliser": np.ascontiguousarray(stats.log_normaliser, dtype=np.float64),
        "activation": np.ascontiguousarray(stats.activation, dtype=np.uint8),
    }
    metadata = {
        "format": _FORMAT,
        "k": json.dumps(stats.k),
        "beta": json.dumps(stats.beta),
        "bank_size": json.dumps(stats.bank_size),
        "source": json.dumps(stats.source, sort_keys=True),
    }
    atomic_write_bytes(path, save(tensors, metadata=metadata))  # type: ignore[arg-type]


def load_querybank(path: str | os.PathLike[str]) -> QuerybankStats:
    """Read querybank statistics written by ``save_querybank``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"querybank file {path} does not exist; fit one with fit_querybank and save_querybank.")
    try:
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != _FORMAT:
                raise CheckpointError(
                    f"{path} is not a beatdance querybank (format {meta.get('format')!r}, "
                    f"expected {_FORMAT!r}); save it with save_querybank."
                )
            return QuerybankStats(
                log_normaliser=fh.get_tensor("log_normaliser"),
                activation=fh.get_tensor("activation").astype(bool),
                k=json.loads(meta["k"]),
                beta=json.loads(meta["beta"]),
                bank_size=json.loads(meta["bank_size"]),
                source=json.loads(meta["source"]),
            )
    except (SafetensorError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read querybank file {path}: {exc}. Re-create it with save_querybank.") from exc
