"""The bench's baselines: CCA finds a planted linear link, the style oracle needs labels, chance is chance."""

from __future__ import annotations

import numpy as np

from beatdance.features.featureset import FeatureSet
from beatdance.pipeline.baselines import cca_embeddings, random_embeddings, style_labels, style_oracle
from beatdance.retrieval.evaluate import evaluate_retrieval


def _linked(n: int, *, seed: int, groups: list[str] | None = None) -> FeatureSet:
    """Music and dance features that share a 3-d latent through fixed random maps, plus noise."""
    rng = np.random.default_rng(seed)
    maps = np.random.default_rng(99)
    a, b = maps.normal(size=(3, 20)), maps.normal(size=(3, 15))
    z = rng.normal(size=(n, 3))
    music = (z @ a)[:, None, :] + 0.3 * rng.normal(size=(n, 10, 20))
    dance = (z @ b)[:, None, :] + 0.3 * rng.normal(size=(n, 10, 15))
    grid = np.zeros((n, 10, 10), np.float32)
    return FeatureSet(
        ids=[f"c{i}" for i in range(n)],
        music=music.astype(np.float32),
        dance=dance.astype(np.float32),
        music_beat=grid,
        dance_beat=grid.copy(),
        groups=groups,
    )


def test_cca_recovers_a_planted_linear_link_and_chance_does_not():
    train, test = _linked(300, seed=1), _linked(60, seed=2)
    cca = evaluate_retrieval(music=(m := cca_embeddings(train, test, dim=3))[0], dance=m[1])
    chance = evaluate_retrieval(music=(r := random_embeddings(test, seed=0))[0], dance=r[1])
    assert cca["m2d"]["metrics"]["MedR"] <= 3 and cca["d2m"]["metrics"]["MedR"] <= 3
    assert chance["m2d"]["metrics"]["MedR"] >= 15


def test_style_oracle_ranks_the_same_style_first_and_needs_labels():
    groups = [f"DANCE_{s}_{i}" for i, s in enumerate("WWWRRC")]
    assert style_labels(groups) == list("WWWRRC") and style_labels(["DANCE_W_1", "pair2"]) is None
    test = _linked(6, seed=3, groups=groups)
    music, dance = style_oracle(test, seed=0)
    scores = music.fuse @ dance.fuse.T
    same = np.array([[a[6] == b[6] for b in groups] for a in groups])
    assert scores[same].min() > scores[~same].max()
    assert style_oracle(_linked(6, seed=3), seed=0) is None  # clip ids carry no style
