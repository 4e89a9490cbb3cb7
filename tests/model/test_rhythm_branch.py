"""The rhythm branch: metre shifts, metre targets, training with it on and off, standardisation in the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdance.beats.rhythm import RhythmConfig, peak_tempo_bpm, tempo_bump
from beatdance.errors import ParameterError
from beatdance.features.featureset import FeatureSet
from beatdance.model import BeatBlender, BlenderConfig
from beatdance.model.checkpoint import load_checkpoint
from beatdance.model.loss import ContrastiveLoss
from beatdance.model.rhythm import metre_targets, shift_matrix
from beatdance.retrieval.embed import embed_featureset
from beatdance.retrieval.evaluate import evaluate_retrieval
from beatdance.train.augment import mismatch, stretch_pairs
from beatdance.train.config import TrainConfig
from beatdance.train.trainer import train

BINS = RhythmConfig().num_bins
BPO = RhythmConfig().bins_per_octave
RATIOS = (0.5, 1.0, 2.0, 3.0, 4.0)


def _rhythm(tempi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.stack(
        [np.stack([tempo_bump(tempo_bpm=t), 0.1 * rng.random(BINS), 0.1 * rng.random(BINS)]) for t in tempi]
    ).astype(np.float32)


def _tempo_world(n: int, *, seed: int) -> FeatureSet:
    """Pairs whose only link is tempo: music at T, dance at T/3 (style A) or T/2 (style B), the style visible in
    both sides' features; the content features carry no pair identity."""
    rng = np.random.default_rng(seed)
    style = rng.integers(0, 2, n)
    tempo = rng.uniform(70.0, 140.0, n)
    music = rng.normal(size=(n, 10, 6)).astype(np.float32)
    dance = rng.normal(size=(n, 10, 5)).astype(np.float32)
    music[:, :, 0] += 3.0 * style[:, None]
    dance[:, :, 0] += 3.0 * style[:, None]
    grid = np.zeros((n, 10, 10), np.float32)
    return FeatureSet(
        ids=[f"c{i}" for i in range(n)],
        music=music,
        dance=dance,
        music_beat=grid,
        dance_beat=grid.copy(),
        music_rhythm=_rhythm(tempo, rng),
        dance_rhythm=_rhythm(tempo / np.where(style == 0, 3.0, 2.0), rng),
    )


def _model(**kw) -> BlenderConfig:
    return BlenderConfig(
        music_dim=6,
        dance_dim=5,
        embed_dim=16,
        num_layers=1,
        num_heads=2,
        ff_dim=32,
        pool="mean",
        positional="sinusoidal",
        **kw,
    )


def test_shift_matrix_moves_a_tempo_to_its_metre_level():
    for ratio in RATIOS:
        moved = shift_matrix(bins=BINS, bins_per_octave=BPO, octaves=-np.log2(ratio)).numpy() @ tempo_bump(
            tempo_bpm=87.0
        )
        assert peak_tempo_bpm(moved) == pytest.approx(87.0 / ratio, rel=0.005)


def test_metre_targets_read_the_pair_ratio_and_skip_pairs_without_one():
    rng = np.random.default_rng(0)
    music = torch.from_numpy(_rhythm(np.array([87.0, 90.0, 120.0, 100.0, 100.0]), rng))
    dance = torch.from_numpy(_rhythm(np.array([29.0, 45.0, 30.0, 71.0, 100.0]), rng))
    dance[4, 0] = 0.0  # no dance tempo found
    got = metre_targets(music, dance, ratios=RATIOS, bins_per_octave=BPO)
    assert got.tolist() == [3, 2, 4, -1, -1]  # 3, 2, 4 -> indices of 3.0, 2.0, 4.0; 100/71 is no metre ratio


def test_config_round_trips_and_rejects_bad_ratios():
    cfg = _model(rhythm_branch=True, metre_ratios=(1, 3))
    assert BlenderConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["metre_ratios"] == [1.0, 3.0]
    assert cfg.output_dim == 16 + 2 * BINS
    with pytest.raises(ParameterError, match="metre_ratios"):
        _model(metre_ratios=(0.0, 2.0))
    net = BeatBlender(_model(rhythm_branch=True))
    with pytest.raises(ParameterError, match="rhythm"):
        net.encode_music(torch.zeros(2, 10, 6), torch.zeros(2, 10, 10))


@pytest.mark.parametrize("rhythm_branch", [False, True])
def test_the_rhythm_branch_learns_tempo_and_metre_where_nothing_else_links_the_pairs(tmp_path, rhythm_branch):
    torch.set_num_threads(1)
    train_set, test_set = _tempo_world(256, seed=1), _tempo_world(64, seed=2)
    model = _model(rhythm_branch=rhythm_branch, standardise=True)
    cfg = TrainConfig(epochs=8, batch_size=32, lr=1e-3, evals_per_epoch=0, save_every=0, seed=0, device="cpu")
    result = train(
        train_set=train_set, val_set=None, model_config=model, config=cfg, out=tmp_path / "run", show_progress=False
    )
    net, _ = load_checkpoint(result.best_checkpoint)
    music, dance = embed_featureset(net, test_set, dance_order_seed=0)
    medr = evaluate_retrieval(music=music, dance=dance)["m2d"]["metrics"]["MedR"]
    if rhythm_branch:
        assert medr <= 8  # tempo within 2 % among 64 clips of two styles
        assert sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")) == [
            "best",
            "config.json",
            "history.jsonl",
            "last",
        ]  # (hidden: the version folders best and last link to)
    else:
        assert medr >= 16  # chance is 32: style alone halves it at best


def test_checkpoint_carries_the_standardisation(tmp_path):
    data = _tempo_world(64, seed=3)
    data.music[:] = data.music * 50.0 + 7.0
    cfg = TrainConfig(epochs=1, batch_size=16, evals_per_epoch=0, save_every=0, device="cpu")
    result = train(
        train_set=data,
        val_set=None,
        model_config=_model(standardise=True),
        config=cfg,
        out=tmp_path / "r",
        show_progress=False,
    )
    net, _ = load_checkpoint(result.best_checkpoint)
    flat = data.music.reshape(-1, 6)
    np.testing.assert_allclose(net.music_mean.numpy(), flat.mean(axis=0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(net.music_std.numpy(), flat.std(axis=0), rtol=1e-4)
    with torch.no_grad():  # the embedding of raw features equals that of features z-scored by hand
        raw = net.encode_music(torch.from_numpy(data.music), torch.from_numpy(data.music_beat))["fuse"]
        net.music_mean.zero_()
        net.music_std.fill_(1.0)
        by_hand = (torch.from_numpy(data.music) - torch.from_numpy(flat.mean(axis=0))) / torch.from_numpy(
            flat.std(axis=0)
        )
        again = net.encode_music(by_hand.float(), torch.from_numpy(data.music_beat))["fuse"]
    torch.testing.assert_close(raw, again, rtol=1e-4, atol=1e-4)


def test_augmentation_keeps_pairs_consistent_and_mismatch_moves_one_side():
    rng = np.random.default_rng(4)
    music = torch.from_numpy(_rhythm(np.array([87.0, 120.0]), rng))
    dance = torch.from_numpy(_rhythm(np.array([29.0, 30.0]), rng))
    g = torch.Generator().manual_seed(0)
    m2, d2 = stretch_pairs(music, dance, max_octaves=0.2, bins_per_octave=BPO, generator=g)
    drawn = (torch.rand(2, generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0) * 0.2  # what stretch_pairs drew
    for i in range(2):
        ratio_before = peak_tempo_bpm(music[i, 0].numpy()) / peak_tempo_bpm(dance[i, 0].numpy())
        ratio_after = peak_tempo_bpm(m2[i, 0].numpy()) / peak_tempo_bpm(d2[i, 0].numpy())
        assert ratio_after == pytest.approx(ratio_before, rel=0.01)  # still the same metre ratio
        moved = np.log2(peak_tempo_bpm(m2[i, 0].numpy()) / peak_tempo_bpm(music[i, 0].numpy()))
        assert moved == pytest.approx(float(drawn[i]), abs=0.005)
    off = mismatch(dance, min_octaves=0.05, max_octaves=0.1, bins_per_octave=BPO, generator=g)
    for i in range(2):
        moved = abs(np.log2(peak_tempo_bpm(off[i, 0].numpy()) / peak_tempo_bpm(dance[i, 0].numpy())))
        assert 0.045 <= moved <= 0.105


def test_mismatched_dances_are_negatives_of_the_music_rows_only():
    sims = torch.eye(3)
    plain = ContrastiveLoss()({"music_fuse": sims, "dance_fuse": sims, "music_beat": sims, "dance_beat": sims})[0]
    harder = ContrastiveLoss()(
        {
            "music_fuse": sims,
            "dance_fuse": sims,
            "music_beat": sims,
            "dance_beat": sims,
            "dance_fuse_mismatch": sims.clone(),
        }
    )[0]
    # each music row gains one negative as similar as its positive: its CE becomes log 2 (scale 100, others ~0)
    assert float(harder - plain) == pytest.approx(0.5 * np.log(2.0), abs=1e-3)
