"""The benchmark protocol on a tiny synthetic store: split by pair, no leakage, seeds honoured, outputs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import beatdance.cli.bench_cmd  # noqa: F401  (registers the command)
from beatdance.cli.app import app
from beatdance.errors import ParameterError
from beatdance.features.folds import group_folds
from beatdance.features.store import FeatureStore
from beatdance.model import BeatBlender, BlenderConfig
from beatdance.pipeline.bench import (BenchConfig, load_bench_data, run_bench, run_fold, tempo_embeddings,
                                      with_tempo_prior,
                                      trained_arms)
from beatdance.retrieval.embed import embed_featureset
from beatdance.retrieval.evaluate import ModalityEmbeddings
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features

GROUPS = 6
CLIPS_PER_GROUP = 3
TINY = dict(folds=2, seeds=2, val_groups=1, epochs=1, batch_size=8, embed_dim=8, num_layers=1, num_heads=2, ff_dim=16,
            beta_sweep=(0.0,), head_weights=(1.0,))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """18 clips of 6 pairs (3 windows each) with per-frame features, beat grids and beat times."""
    n = GROUPS * CLIPS_PER_GROUP
    split = generate_synthetic_features(SynthFeatureConfig(num_train=n, num_val=2, num_test=2, music_dim=12,
                                                           dance_dim=8, seed=3))["train"]
    store = FeatureStore.create(tmp_path_factory.mktemp("bench") / "store", config={"origin": "test", "grid_fps": 10.0})
    for i, clip_id in enumerate(split.ids):
        group = f"pair{i // CLIPS_PER_GROUP}"
        store.put(clip_id, music=split.music[i], dance=split.dance[i], music_beat=split.music_beat[i],
                  dance_beat=split.dance_beat[i], music_beat_times=np.flatnonzero(split.music_beat[i]) / 10.0,
                  dance_beat_times=np.flatnonzero(split.dance_beat[i]) / 10.0, meta={"group": group})
    return store.path


@pytest.fixture(scope="module")
def bench_results(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    return out, run_bench(store=tiny_store, out=out, config=BenchConfig(**TINY), workers=2, show_progress=False)


def test_group_folds_partition_pairs_and_never_mix_splits():
    groups = [f"g{i % 7}" for i in range(30)]
    folds = group_folds(groups, folds=3, seed=5, val_groups=2)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(30))  # every clip is tested exactly once
    for f in folds:
        parts = [{groups[i] for i in ix} for ix in (f.train, f.val, f.test)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(parts[1]) == 2 and len(f.train) + len(f.val) + len(f.test) == 30
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in group_folds(groups, folds=3, seed=5, val_groups=2)]
    assert [f.test.tolist() for f in folds] != [f.test.tolist() for f in group_folds(groups, folds=3, seed=6, val_groups=2)]
    with pytest.raises(ParameterError, match="folds"):
        group_folds(groups, folds=8, seed=0)


@pytest.mark.slow
def test_bench_splits_by_pair_without_leakage(bench_results):
    _, results = bench_results
    assert len(results["runs"]) == TINY["seeds"] * TINY["folds"]
    for run in results["runs"]:
        assert not set(run["test_groups"]) & set(run["train_groups"])
        assert not set(run["val_groups"]) & (set(run["train_groups"]) | set(run["test_groups"]))
        assert run["num_test"] == CLIPS_PER_GROUP * len(run["test_groups"])
        for report in run["reports"].values():
            assert report["m2d"]["num_queries"] == run["num_test"]  # the gallery is the test fold only
    for seed in range(TINY["seeds"]):
        tested = [g for run in results["runs"] if run["seed"] == seed for g in run["test_groups"]]
        assert sorted(tested) == [f"pair{i}" for i in range(GROUPS)]


@pytest.mark.slow
def test_bench_reports_every_arm_and_renders_markdown(bench_results):
    out, results = bench_results
    saved = json.loads((out / "results.json").read_text())
    rows = set(saved["summary"])
    expected = {"chance", "rhythm: tempo", "rhythm: tempo + BA", "official, pair-ordered batches (LEAKS)",
                "official + DIS (train qb)", "official + DIS (val qb)", "temporal + DIS (train qb)",
                "temporal + DIS (val qb)", "temporal, score + 1 x beat head"}
    assert expected | {a.name for a in trained_arms(BenchConfig(**TINY))} <= rows
    stat = saved["summary"]["temporal"]["d2m"]["R@1"]
    assert set(stat) == {"mean", "std"} and 0.0 <= stat["mean"] <= 100.0
    md = (out / "results.md").read_text()
    assert "| temporal -beat branch |" in md and "dance -> music (d2m)" in md and " ± " in md
    assert "better)" in md and "temporal - official, paired" in md and "temporal - official, pool=mean, paired" in md
    assert all((out / f"{kind}_{d}.png").stat().st_size > 0 for kind in ("recall", "ranks") for d in ("m2d", "d2m"))


@pytest.mark.slow
def test_bench_same_seed_same_results_other_seed_differs(tiny_store, bench_results):
    _, results = bench_results
    cfg = BenchConfig(**TINY)
    data, tempos = load_bench_data(tiny_store)
    first = results["runs"][0]
    fold = group_folds(data.groups, folds=cfg.folds, seed=first["seed"], val_groups=cfg.val_groups)[first["fold"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the bench's worker processes
    try:
        again, _ = run_fold(data, tempos, fold, seed=first["seed"], cfg=cfg)
        other, _ = run_fold(data, tempos, fold, seed=first["seed"] + 1, cfg=cfg)
    finally:
        torch.set_num_threads(threads)
    assert json.dumps(again, sort_keys=True) == json.dumps(first["reports"], sort_keys=True)
    assert other["temporal"] != first["reports"]["temporal"]
    assert other["chance"] != first["reports"]["chance"]


def test_tempo_kernel_accepts_metre_ratios_and_rejects_other_tempi():
    music = tempo_embeddings(np.array([90.0]), music=True)
    dance = tempo_embeddings(np.array([90.0, 45.0, 30.0, 180.0, 22.5, 120.0, 70.0, np.nan]), music=False)
    s = (music @ dance.T)[0]
    assert np.allclose(s[:5], s[0], rtol=0.02)  # same tempo, half, third, double, quarter
    assert s[5] < 0.2 * s[0] and s[6] < 0.2 * s[0] and s[7] == 0.0
    x = np.random.default_rng(0).normal(size=(8, 4))
    learned = ModalityEmbeddings(fuse=x / np.linalg.norm(x, axis=1, keepdims=True), beat_head=None,
                                 beat_grid=np.zeros((8, 100)), ids=[str(i) for i in range(8)])
    tempo = replace(learned, fuse=dance)
    fused = with_tempo_prior(learned, tempo, weight=0.5)  # unit rows, also for the clip without a tempo
    np.testing.assert_allclose(fused.fuse[7, :4], learned.fuse[7], rtol=1e-5)
    np.testing.assert_allclose(fused.fuse[:7] @ fused.fuse[:7].T,
                               0.5 * learned.fuse[:7] @ learned.fuse[:7].T + 0.5 * dance[:7] @ dance[:7].T, atol=1e-5)


def test_dance_order_seed_removes_the_official_batch_dependence_of_the_pairing(tiny_store):
    data, _ = load_bench_data(tiny_store)
    for variant in ("official", "temporal"):
        net = BeatBlender(BlenderConfig(music_dim=data.music_dim, dance_dim=data.dance_dim, embed_dim=8, num_layers=1,
                                        num_heads=2, ff_dim=16, variant=variant))  # type: ignore[arg-type]
        _, paired = embed_featureset(net, data, batch_size=4)
        _, shuffled = embed_featureset(net, data, batch_size=4, dance_order_seed=1)
        assert shuffled.ids == paired.ids
        same = np.allclose(paired.fuse, shuffled.fuse, atol=1e-5)
        assert same == (variant == "temporal")  # official embeddings depend on the batch companions


@pytest.mark.slow
def test_bench_command_prints_tables(tiny_store, tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["bench", str(tiny_store), "--out", str(tmp_path / "b"), "--seeds", "1",
                                      "--folds", "2", "--epochs", "1", "--val-groups", "1", "--no-progress",
                                      "--pool", "flatten", "--positional", "learned"])
    assert result.exit_code == 0, result.output
    assert "| chance |" in result.output and "| official, pool=" not in result.output
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (saved["config"]["pool"], saved["config"]["positional"]) == ("flatten", "learned")


def test_temporal_arms_carry_the_bench_recipe_and_default_rows_show_its_effect():
    arms = {a.name: a for a in trained_arms(BenchConfig(positional="sinusoidal", pool="mean"))}
    assert arms["official"].model == {"variant": "official"}
    assert arms["official, pool=mean"].model == {"variant": "official", "pool": "mean"}
    assert arms["temporal, pool=flatten"].model == {"positional": "sinusoidal", "pool": "flatten"}
    assert arms["temporal, positional=learned"].model == {"positional": "learned", "pool": "mean"}
    for name in ("temporal", "temporal -beat branch", "temporal -trans-temporal (MLP)", "temporal beta=0"):
        assert arms[name].model["pool"] == "mean" and arms[name].model["positional"] == "sinusoidal"
    plain = {a.name for a in trained_arms(BenchConfig(positional="learned", pool="flatten"))}
    assert not any("pool=" in n or "positional=" in n for n in plain)
    with pytest.raises(ParameterError, match="pool"):
        BenchConfig(pool="max")
