"""The metre prior: counted ratios per song metre, the dance's metre classifier, its score as a dot product,
the join with a model's embeddings, and the checkpoint that carries it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdance.beats.rhythm import RhythmConfig, tempo_bump
from beatdance.errors import CheckpointError, DataError, ParameterError
from beatdance.features.featureset import FeatureSet
from beatdance.model.blender import BeatBlender, BlenderConfig
from beatdance.model.checkpoint import load_checkpoint, save_checkpoint
from beatdance.model.inference import NumpyBlender, TorchEncoder, embedding_dim
from beatdance.model.prior import (
    MetrePrior,
    PriorConfig,
    fit_metre_prior,
    fit_prior_on,
    metre_class,
    track_tempos_bpm,
)

RC = RhythmConfig()


def _rhythm(track_bpm: float, *also_bpm: float) -> np.ndarray:
    """A (3, bins) rhythm array: the track tempo, a track tempogram with peaks there and at ``also_bpm``."""
    tempo = tempo_bump(tempo_bpm=track_bpm, config=RC)
    gram = tempo + sum((0.8 * tempo_bump(tempo_bpm=b, config=RC) for b in also_bpm), np.zeros_like(tempo))
    return np.stack([tempo, gram, gram]).astype(np.float32)


def _pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Waltzes (3/4, danced once a bar: music / 3, a step on every beat shows at music tempo) and
    duple songs danced every other beat (music / 2, steps at the music tempo too)."""
    music, dance, bars = [], [], []
    for i in range(n):
        triple = i % 2 == 0
        bpm = rng.uniform(80, 130)
        dance_bpm = bpm / (3 if triple else 2)
        music.append(_rhythm(bpm))
        dance.append(_rhythm(dance_bpm, 2 * dance_bpm) if not triple else _rhythm(dance_bpm, 3 * dance_bpm))
        bars.append(3 if triple else rng.choice([2, 4]))
    return np.stack(music), np.stack(dance), np.array(bars, np.float32)


def test_metre_classes():
    assert [metre_class(b) for b in (3, 2, 4, 0, 6)] == ["triple", "duple", "duple", "unknown", "unknown"]


def test_fit_counts_ratios_per_metre_and_learns_the_dance_metre():
    music, dance, bars = _pairs(np.random.default_rng(0), 40)
    prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=bars, rhythm=RC)
    ratios = list(prior.config.ratios)
    assert ratios[int(np.argmax(prior.ratio_weights["triple"]))] == 3.0
    assert ratios[int(np.argmax(prior.ratio_weights["duple"]))] == 2.0
    for weights in prior.ratio_weights.values():
        assert sum(weights) == pytest.approx(1.0)
    p = prior.dance_triple_probability(dance)
    assert np.all((p > 0.5) == (bars == 3)), p
    assert prior.fitted_on == {"triple": 20, "duple": 20, "unknown": 0}


def test_one_metre_only_gives_a_constant_dance_side():
    music, dance, _ = _pairs(np.random.default_rng(1), 6)
    prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=np.full(6, 3.0), rhythm=RC)
    p = prior.dance_triple_probability(dance)
    assert np.allclose(p, p[0]) and p[0] > 0.5


def test_the_dot_product_is_tempo_agreement_plus_metre_agreement():
    """Rows of the two sides score (up to one constant) tempo_weight x H + metre_weight x A, where H is the sum
    over ratios of count x Gaussian of log2(music / dance tempo) - log2 ratio, and A the metre agreement."""
    music, dance, bars = _pairs(np.random.default_rng(2), 40)
    cfg = PriorConfig(tempo_weight=0.7, metre_weight=0.3)
    prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=bars, rhythm=RC, config=cfg)
    got = prior.music_rows(music_rhythm=music, beats_per_bar=bars) @ prior.dance_rows(dance_rhythm=dance).T
    delta = np.log2(track_tempos_bpm(music, config=RC))[:, None] - np.log2(track_tempos_bpm(dance, config=RC))[None, :]
    sigma = cfg.sigma_octaves
    h = np.zeros_like(delta)
    for i, b in enumerate(bars):
        for p, r in zip(prior.ratio_weights[metre_class(b)], cfg.ratios):
            h[i] += p * np.exp(-0.5 * ((delta[i] - np.log2(r)) / sigma) ** 2)
    p_triple = prior.dance_triple_probability(dance)
    a = np.where((bars == 3)[:, None], p_triple[None, :], 1.0 - p_triple[None, :])
    constant = np.sqrt(2 * np.pi) * sigma / 8.0  # the Fourier series leaves out its mean
    want = cfg.tempo_weight * (h - constant) + cfg.metre_weight * a
    np.testing.assert_allclose(got, want, atol=0.02)
    # Every true pair outscores the song with every dance danced to the other metre.
    other = (bars == 3)[:, None] != (bars == 3)[None, :]
    assert np.all(np.diag(got) > np.where(other, got, -np.inf).max(axis=1))


def test_join_gives_unit_rows_whose_dot_products_add_the_prior_to_the_cosine():
    rng = np.random.default_rng(3)
    music, dance, bars = _pairs(rng, 10)
    prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=bars, rhythm=RC)
    fm, fd = (rng.normal(size=(10, 8)) for _ in range(2))
    jm = prior.embed("music", fm, rhythm=music, beats_per_bar=bars)
    jd = prior.embed("dance", fd, rhythm=dance)
    assert jm.shape == (10, 8 + prior.extra_dim) and jd.shape == jm.shape
    np.testing.assert_allclose(np.linalg.norm(jm, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(jd, axis=1), 1.0, atol=1e-5)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cosine = unit(fm) @ unit(fd).T
    rows = prior.music_rows(music_rhythm=music, beats_per_bar=bars) @ prior.dance_rows(dance_rhythm=dance).T
    scale = (jm @ jd.T) / (cosine + rows)
    np.testing.assert_allclose(scale, scale[0, 0], rtol=1e-4)  # one positive constant for every pair
    # ... and not a small one: the two sides' tempo rows are balanced, so the joined score is (cosine + prior) / 3.2
    # or less at the default weights, and beat terms and DIS added to it keep their weight next to the cosine.
    assert 1 / 3.5 < scale[0, 0] < 1 / 2
    with pytest.raises(DataError, match="rhythm arrays"):
        prior.embed("dance", fd, rhythm=None)


def test_the_prior_round_trips_and_an_incomplete_one_is_a_checkpoint_error():
    music, dance, bars = _pairs(np.random.default_rng(4), 8)
    prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=bars, rhythm=RC)
    again = MetrePrior.from_dict(prior.to_dict())
    assert again == prior
    broken = prior.to_dict()
    del broken["dance_coef"]
    with pytest.raises(CheckpointError, match="retrain"):
        MetrePrior.from_dict(broken)
    short = prior.to_dict()
    short["ratio_weights"]["triple"] = short["ratio_weights"]["triple"][:3]
    with pytest.raises(CheckpointError, match="do not fit its config"):
        MetrePrior.from_dict(short)
    # A kernel narrow enough to need billions of harmonics is refused when read, before any embedding is made.
    hostile = prior.to_dict()
    hostile["config"]["sigma_octaves"] = 1e-9
    with pytest.raises(CheckpointError, match="sigma_octaves=1e-09 must be in"):
        MetrePrior.from_dict(hostile)
    with pytest.raises(ParameterError, match="1 to 16 positive values"):
        PriorConfig(ratios=tuple(range(1, 40)))


def test_fit_prior_on_needs_rhythm_arrays():
    n = 4
    fs = FeatureSet(
        ids=[str(i) for i in range(n)],
        music=np.zeros((n, 2, 3), np.float32),
        dance=np.zeros((n, 2, 3), np.float32),
        music_beat=np.zeros((n, 2, 2), np.float32),
        dance_beat=np.zeros((n, 2, 2), np.float32),
    )
    with pytest.raises(DataError, match="no-metre-prior"):
        fit_prior_on(fs)


def test_checkpoints_carry_the_prior_and_every_encoder_joins_it(tmp_path):
    """Saved in config.json, loaded by torch and numpy alike; the numpy and torch query encoders give the same
    joined embeddings, of the size the library builds its index for."""
    torch.manual_seed(0)
    small = {"music_dim": 6, "dance_dim": 5, "num_segments": 3, "beat_slots": 4, "embed_dim": 8, "ff_dim": 16}
    net = BeatBlender(BlenderConfig(**small, num_layers=1, pool="mean", metre_prior=True)).eval()
    music, dance, bars = _pairs(np.random.default_rng(5), 12)
    net.prior = fit_metre_prior(music_rhythm=music, dance_rhythm=dance, beats_per_bar=bars, rhythm=RC)
    path = save_checkpoint(tmp_path / "ckpt", model=net, config={})
    loaded, config = load_checkpoint(path)
    assert loaded.prior == net.prior and config["prior"] == net.prior.to_dict()
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(4, 3, 6)).astype(np.float32)
    beats = (rng.random((4, 3, 4)) < 0.3).astype(np.float32)
    via_numpy = NumpyBlender.load(path).encode("music", feats, beats, music[:4], beats_per_bar=bars[:4])
    via_torch = TorchEncoder(loaded).encode("music", feats, beats, music[:4], beats_per_bar=bars[:4])
    np.testing.assert_allclose(via_numpy["fuse"], via_torch["fuse"], rtol=1e-4, atol=2e-5)
    assert via_numpy["fuse"].shape == (4, embedding_dim(loaded)) == (4, net.config.output_dim + net.prior.extra_dim)
    plain = NumpyBlender.load(path)
    plain.prior = None
    assert plain.encode("music", feats, beats, music[:4])["fuse"].shape == (4, net.config.output_dim)
    # A model config that asks for a prior its checkpoint lacks fails at load time, not as a wrong answer.
    net.prior = None
    with pytest.raises(CheckpointError, match="metre prior"):
        load_checkpoint(save_checkpoint(tmp_path / "bare", model=net, config={}))
