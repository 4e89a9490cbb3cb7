"""The bench's standing baselines, each as (music, dance) embeddings that the shared scorer and metrics rank.

* ``chance``: independent random unit vectors.
* ``rhythm heuristic``: no learned weights. The metre ratios (music tempo / dance tempo, among
  ``METRE_FACTORS``) are counted on the training pairs, and a test pair is scored by the agreement of its
  track tempos under those ratios, weighted by how often each occurs (a Gaussian kernel in log2 tempo,
  written as a dot product of Fourier features, so that it runs through the same scorer as every arm).
* ``linear CCA``: canonical correlation between the pooled features (and rhythm arrays, when the store
  has them) of the two sides, fitted on the training clips.
* ``style oracle``: where style labels exist (Dance-with-Melody pair names ``DANCE_<style>_<n>``), clips
  of the query's style first, in random order. A reference that knows the answer's style, not a method.

``load_bench_data`` reads a store's clips with the track tempos the rhythm heuristic ranks by.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ..errors import DataError
from ..features.featureset import FeatureSet
from ..features.store import FeatureStore
from ..model.prior import PriorConfig, ratio_counts, tempo_kernel_rows
from ..retrieval.evaluate import ModalityEmbeddings

METRE_FACTORS = PriorConfig.ratios  # music tempo / dance tempo ratios that count as agreement
_STYLE = re.compile(r"^DANCE_([A-Za-z]+)_\d+$")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _side(features: FeatureSet, fuse: np.ndarray, *, music: bool) -> ModalityEmbeddings:
    n = len(features)
    grid = features.music_beat if music else features.dance_beat
    return ModalityEmbeddings(
        fuse=_unit_rows(fuse),
        beat_head=None,
        beat_grid=grid.reshape(n, -1),
        ids=list(features.ids),
        groups=list(features.groups or features.ids),
    )


def random_embeddings(
    features: FeatureSet, *, seed: int, dim: int = 64
) -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    """Chance: independent random unit vectors for every clip of both modalities."""
    rng = np.random.default_rng(seed)
    n = len(features)
    return (
        _side(features, rng.normal(size=(n, dim)), music=True),
        _side(features, rng.normal(size=(n, dim)), music=False),
    )


def metre_weights(music_bpm: np.ndarray, dance_bpm: np.ndarray) -> np.ndarray:
    """How often each ``METRE_FACTORS`` ratio occurs among pairs (add-one smoothed, sums to 1)."""
    octaves = np.log2(np.asarray(music_bpm, np.float64) / np.asarray(dance_bpm, np.float64))
    return ratio_counts(octaves, ratios=METRE_FACTORS)


def tempo_embeddings(
    tempo_bpm: np.ndarray, *, music: bool, sigma_octaves: float = 0.05, weights: np.ndarray | None = None
) -> np.ndarray:
    """Unit vectors whose music-dance dot product is a tempo-agreement kernel (up to one constant factor):
    :func:`~beatdance.model.prior.tempo_kernel_rows` over ``METRE_FACTORS`` (``weights`` None: equally).
    A NaN or zero tempo (none found) gives a zero row: score 0."""
    p = (np.ones(len(METRE_FACTORS)) if weights is None else np.asarray(weights, np.float64)) if music else None
    return _unit_rows(tempo_kernel_rows(tempo_bpm, sigma_octaves=sigma_octaves, ratios=METRE_FACTORS, weights=p))


def rhythm_heuristic(
    train: FeatureSet, test: FeatureSet, tempos: dict[str, tuple[float, float]], *, sigma_octaves: float
) -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    """Tempo agreement of the test clips under the metre ratios counted on the training clips."""
    weights = metre_weights(*(np.array([tempos[i][k] for i in train.ids]) for k in (0, 1)))
    music_bpm, dance_bpm = (np.array([tempos[i][k] for i in test.ids]) for k in (0, 1))
    return (
        _side(test, tempo_embeddings(music_bpm, music=True, sigma_octaves=sigma_octaves, weights=weights), music=True),
        _side(test, tempo_embeddings(dance_bpm, music=False, sigma_octaves=sigma_octaves), music=False),
    )


def _pooled(features: FeatureSet, *, music: bool) -> np.ndarray:
    x = (features.music if music else features.dance).mean(axis=1)
    rhythm = features.music_rhythm if music else features.dance_rhythm
    return np.concatenate([x, rhythm.reshape(len(features), -1)], axis=1) if rhythm is not None else x


def cca_embeddings(
    train: FeatureSet, test: FeatureSet, *, dim: int = 16, pca_dim: int = 32, ridge: float = 1e-2
) -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    """Linear CCA between the two sides' pooled features: each side z-scored and reduced to ``pca_dim``
    principal components on the training clips, whitened with a ``ridge``, and projected on the top
    ``dim`` canonical directions (scaled by their canonical correlations)."""
    projections = []
    for music in (True, False):
        x = _pooled(train, music=music).astype(np.float64)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        basis = vt[: min(pca_dim, vt.shape[0])].T
        h = z @ basis
        cov = h.T @ h / len(h) + ridge * np.eye(h.shape[1])
        evals, evecs = np.linalg.eigh(cov)
        whiten = evecs @ np.diag(evals**-0.5) @ evecs.T
        projections.append((mean, std, basis @ whiten, h @ whiten))
    (_, _, _, hm), (_, _, _, hd) = projections
    u, s, vt = np.linalg.svd(hm.T @ hd / len(hm))
    k = min(dim, len(s))
    directions = (u[:, :k] * np.sqrt(s[:k]), vt[:k].T * np.sqrt(s[:k]))
    out = []
    for music, (mean, std, project, _), direction in zip((True, False), projections, directions):
        x = (_pooled(test, music=music) - mean) / std
        out.append(_side(test, x @ project @ direction, music=music))
    return out[0], out[1]


def style_labels(groups: list[str]) -> list[str] | None:
    """Style of each pair from Dance-with-Melody names (``DANCE_W_5`` -> ``W``); None unless every name has one."""
    found = [_STYLE.match(g) for g in groups]
    return None if not all(found) else [m.group(1) for m in found if m]


def style_oracle(
    test: FeatureSet, *, seed: int, tempo: tuple[ModalityEmbeddings, ModalityEmbeddings] | None = None
) -> tuple[ModalityEmbeddings, ModalityEmbeddings] | None:
    """Same style first, then (with ``tempo``) by the tempo heuristic, else in random order; None without labels."""
    styles = style_labels(list(test.groups or test.ids))
    if styles is None:
        return None
    names = sorted(set(styles))
    onehot = np.array([[float(s == name) for name in names] for s in styles])
    rng = np.random.default_rng(seed)
    n = len(test)
    if tempo is None:
        tie = rng.normal(size=(n, 8))
        music_rest, dance_rest = _unit_rows(tie), _unit_rows(rng.normal(size=(n, 8)))
    else:
        music_rest, dance_rest = tempo[0].fuse, tempo[1].fuse
    scale = 10.0  # style agreement (0 or 1) outweighs any tie-break score in [-1, 1] ...
    return (
        _side(test, np.concatenate([scale * onehot, music_rest], axis=1), music=True),
        _side(test, np.concatenate([scale * onehot, dance_rest], axis=1), music=False),
    )


def load_bench_data(store_path: str | os.PathLike[str]) -> tuple[FeatureSet, dict[str, tuple[float, float]]]:
    """Every clip of a store (pooled) and each clip's (music, dance) track tempo in BPM, as ``prepare`` stored
    it in the clip's metadata (the whole track's, so as precise as the model's rhythm input); clips of
    stores without it get the tempo of their own beats (60 / median inter-beat interval, NaN below 2 beats)."""
    store = FeatureStore.open(store_path)
    ids = store.ids()
    if not ids:
        raise DataError(f"the store {store_path} has no clips. Run `beatdance prepare` first.")
    records = [store.get(clip_id) for clip_id in ids]
    tempos = {
        r.clip_id: (
            _track_tempo_bpm(r.meta, "music_tempo_bpm", r.music_beat_times),
            _track_tempo_bpm(r.meta, "dance_tempo_bpm", r.dance_beat_times),
        )
        for r in records
    }
    return store.pool_records(records), tempos


def _track_tempo_bpm(meta: dict[str, Any], key: str, beat_times_s: np.ndarray) -> float:
    """The stored track tempo, or (stores without one) the tempo of the clip's own beats."""
    if key in meta:
        return float(meta[key])
    t = np.sort(np.asarray(beat_times_s, dtype=np.float64))
    return float(60.0 / np.median(np.diff(t))) if t.size >= 2 else float("nan")
