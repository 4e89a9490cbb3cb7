"""The benchmark protocol on a tiny synthetic store: split by pair, no leakage, seeds honoured, outputs."""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from conftest import cosine_scores, pessimistic_ranks, put_split_clip, recall_table

import beatdance.cli.bench_cmd  # noqa: F401  (registers the command)
import beatdance.pipeline.bench as bench_mod
import beatdance.pipeline.bench_report as bench_report_mod
from beatdance.beats.rhythm import RhythmConfig, tempo_bump
from beatdance.cli.app import app
from beatdance.errors import ParameterError
from beatdance.features.folds import group_folds
from beatdance.features.store import FeatureStore
from beatdance.model import BeatBlender, BlenderConfig
from beatdance.pipeline.baselines import metre_weights, tempo_embeddings
from beatdance.pipeline.bench import (
    CCA_ROW,
    LIBRARY_QB_ROW,
    LIBRARY_ROW,
    NO_PRIOR_ROW,
    RHYTHM_ROW,
    BenchConfig,
    load_bench_data,
    run_bench,
    run_fold,
    trained_arms,
)
from beatdance.pipeline.bench_report import add_breakdown, format_breakdown, plain_scores
from beatdance.retrieval.embed import embed_featureset
from beatdance.retrieval.evaluate import ModalityEmbeddings
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features

GROUPS = 6
CLIPS_PER_GROUP = 3
TINY = dict(
    folds=2,
    seeds=2,
    val_groups=1,
    epochs=1,
    batch_size=8,
    embed_dim=8,
    num_layers=1,
    num_heads=2,
    ff_dim=16,
    beta_sweep=(0.0,),
    head_weights=(1.0,),
)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """18 clips of 6 pairs (3 windows each) with per-frame features, beat grids, beat times, track tempos and
    rhythm arrays (each pair's dance at half its music's tempo)."""
    n = GROUPS * CLIPS_PER_GROUP
    split = generate_synthetic_features(
        SynthFeatureConfig(num_train=n, num_val=2, num_test=2, music_dim=12, dance_dim=8, seed=3)
    )["train"]
    store = FeatureStore.create(tmp_path_factory.mktemp("bench") / "store", config={"origin": "test", "grid_fps": 10.0})
    rng = np.random.default_rng(0)
    for i, clip_id in enumerate(split.ids):
        group = f"pair{i // CLIPS_PER_GROUP}"
        bpm = 80.0 + 8.0 * (i // CLIPS_PER_GROUP)
        rhythm = {
            name: np.stack(
                [tempo_bump(tempo_bpm=t), rng.random(RhythmConfig().num_bins), rng.random(RhythmConfig().num_bins)]
            )
            for name, t in (("music", bpm), ("dance", bpm / 2))
        }
        put_split_clip(
            store,
            clip_id,
            split,
            i,
            music_rhythm=rhythm["music"],
            dance_rhythm=rhythm["dance"],
            meta={"group": group, "music_tempo_bpm": bpm, "dance_tempo_bpm": bpm / 2},
        )
    return store.path


class _InlineExecutor(Executor):
    """Stands in for the bench's process pool: runs each (seed, fold) task here, in one torch thread as a worker
    does, so that spies on ``train`` and ``evaluate_retrieval`` see every call (``bench`` CLI tests use the pool)."""

    def __init__(self, *, max_workers: int, initializer, mp_context) -> None:
        self._threads = torch.get_num_threads()
        initializer()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        torch.set_num_threads(self._threads)


@dataclass
class _Spy:
    """What the bench's run_fold handed to train() and to evaluate_retrieval(), per (seed, fold)."""

    trained: dict[tuple[int, int], list[list[str]]] = field(default_factory=dict)  # clip ids of each train() call
    evaluated: dict[int, tuple[tuple[int, int], dict]] = field(default_factory=dict)  # id(report) -> (run, its inputs)


def _two_styles(groups: list[str]) -> list[str]:
    """Style labels for the tiny store's pairs 0-2 and 3-5, given to the rank breakdown only."""
    return ["A" if g < "pair3" else "B" for g in groups]


@pytest.fixture(scope="module")
def bench_results(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    spy, run = _Spy(), {}
    real_run_fold, real_train, real_evaluate = bench_mod.run_fold, bench_mod.train, bench_mod.evaluate_retrieval

    def run_fold(data, tempos, fold, *, seed, cfg):
        run["key"] = (seed, fold.index)
        return real_run_fold(data, tempos, fold, seed=seed, cfg=cfg)

    def train(*, train_set, **kwargs):
        spy.trained.setdefault(run["key"], []).append(list(train_set.ids))
        return real_train(train_set=train_set, **kwargs)

    def evaluate_retrieval(**kwargs):
        report = real_evaluate(**kwargs)
        spy.evaluated[id(report)] = (run["key"], kwargs)
        return report

    with pytest.MonkeyPatch.context() as mp:
        for name, value in (
            ("ProcessPoolExecutor", _InlineExecutor),
            ("run_fold", run_fold),
            ("train", train),
            ("evaluate_retrieval", evaluate_retrieval),
        ):
            mp.setattr(bench_mod, name, value)
        # Style labels for the rank breakdown only (the style oracle rows still see none): pairs 0-2 and 3-5.
        mp.setattr(bench_report_mod, "style_labels", _two_styles)
        results = run_bench(store=tiny_store, out=out, config=BenchConfig(**TINY), workers=2, show_progress=False)
    return out, results, spy


def test_group_folds_partition_pairs_and_never_mix_splits():
    groups = [f"g{i % 7}" for i in range(30)]
    folds = group_folds(groups, folds=3, seed=5, val_groups=2)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(30))  # every clip is tested exactly once
    for f in folds:
        parts = [{groups[i] for i in ix} for ix in (f.train, f.val, f.test)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(parts[1]) == 2 and len(f.train) + len(f.val) + len(f.test) == 30
    assert [f.test.tolist() for f in folds] == [
        f.test.tolist() for f in group_folds(groups, folds=3, seed=5, val_groups=2)
    ]
    assert [f.test.tolist() for f in folds] != [
        f.test.tolist() for f in group_folds(groups, folds=3, seed=6, val_groups=2)
    ]
    with pytest.raises(ParameterError, match="folds"):
        group_folds(groups, folds=8, seed=0)


@pytest.mark.slow
def test_bench_splits_by_pair_without_leakage(tiny_store, bench_results):
    """The clips every train() call received share no pair with the clips evaluated in that run (its test fold) or
    with its querybank from the validation groups; the groups the bench reports are those it used."""
    _, results, spy = bench_results
    data, _ = load_bench_data(tiny_store)
    group_of = dict(zip(data.ids, data.groups))

    def groups(ids) -> set[str]:
        return {group_of[i] for i in ids}

    arms = len(trained_arms(BenchConfig(**TINY)))
    assert len(results["runs"]) == TINY["seeds"] * TINY["folds"] and len(spy.trained) == len(results["runs"])
    tested_per_seed: dict[int, list[str]] = {}
    for run in results["runs"]:
        key = (run["seed"], run["fold"])
        trained = spy.trained[key]
        assert len(trained) == arms and all(ids == trained[0] for ids in trained)  # every arm, the same clips
        inputs = [kw for k, kw in spy.evaluated.values() if k == key]
        tested = {i for kw in inputs for i in kw["music"].ids + kw["dance"].ids}
        banks = [
            kw["bank_music"].ids
            for kw in inputs
            if kw.get("bank_music") is not None and not kw.get("bank_without_query_group")
        ]
        library_banks = [kw["bank_music"].ids for kw in inputs if kw.get("bank_without_query_group")]
        assert not groups(trained[0]) & groups(tested)
        assert sorted(groups(trained[0])) == run["train_groups"] and sorted(groups(tested)) == run["test_groups"]
        assert len(trained[0]) == run["num_train"] and len(tested) == run["num_test"]
        val = frozenset(i for i in data.ids if group_of[i] in run["val_groups"])
        assert {frozenset(b) for b in banks} == {frozenset(trained[0]), val}  # querybanks: the train or val clips
        # the library-style querybank: the test gallery's own clips, each query's own pair left out
        assert library_banks and {frozenset(b) for b in library_banks} == {frozenset(tested)}
        assert not set(run["val_groups"]) & (groups(trained[0]) | groups(tested))
        for report in run["reports"].values():
            assert report["m2d"]["num_queries"] == len(tested)  # the gallery is the test fold only
        tested_per_seed.setdefault(run["seed"], []).extend(tested)
    for tested in tested_per_seed.values():  # each seed's folds test every clip exactly once
        assert sorted(tested) == sorted(data.ids)


@pytest.mark.slow
def test_bench_reports_every_arm_and_renders_markdown(bench_results):
    out, results, spy = bench_results
    saved = json.loads((out / "results.json").read_text())
    rows = set(saved["summary"])
    expected = {
        "chance",
        RHYTHM_ROW,
        CCA_ROW,
        "official, pair-ordered batches (LEAKS)",
        "official + DIS (train qb)",
        "official + DIS (val qb)",
        "default + DIS (train qb)",
        "default + DIS (val qb)",
        "default, score + 1 x beat head",
        "default -metre loss",
        "temporal",
        LIBRARY_QB_ROW,
        LIBRARY_ROW,
        NO_PRIOR_ROW,
    }
    assert expected | {a.name for a in trained_arms(BenchConfig(**TINY))} <= rows
    assert not any(row.startswith("style oracle") for row in rows)  # no style labels in these pair names
    # Every plain row (cosine of the embeddings, nothing added) against ranks counted here from its embeddings.
    plain = 0
    for run in results["runs"]:
        for row, report in run["reports"].items():
            _, kw = spy.evaluated[id(report)]
            if set(kw) - {"music", "dance", "bs_ks"} or row == CCA_ROW:  # CCA on 12 clips: ties at float precision
                continue
            plain += 1
            for direction, (query, gallery) in (("m2d", ("music", "dance")), ("d2m", ("dance", "music"))):
                want = recall_table(pessimistic_ranks(cosine_scores(kw[query].fuse, kw[gallery].fuse)))
                got = {k: report[direction]["metrics"][k] for k in want}
                assert got == pytest.approx(want), (row, direction)
    assert plain >= len(results["runs"]) * 6
    # The summary and the Markdown table are the mean and sample std of the runs.
    for row in ("chance", "temporal", "official", RHYTHM_ROW):
        for direction in ("m2d", "d2m"):
            values = [run["reports"][row][direction]["metrics"]["R@1"] for run in results["runs"]]
            stat = saved["summary"][row][direction]["R@1"]
            assert stat == pytest.approx({"mean": np.mean(values), "std": np.std(values, ddof=1)})
    md = (out / "results.md").read_text()
    for row in ("default", "default -beat branch"):
        cells = [
            f"{saved['summary'][row][d]['R@1']['mean']:.1f} ± {saved['summary'][row][d]['R@1']['std']:.1f}"
            for d in ("m2d", "d2m")
        ]
        lines = [line.split(" | ") for line in md.splitlines() if line.startswith(f"| {row} |")]
        assert [
            cell[1] for cell in lines if cell[1] not in ("m2d", "d2m")
        ] == cells  # R@1 is the first column, m2d table first
    assert "dance -> music (d2m)" in md and "better)" in md
    assert "default - official, paired" in md and "default - official, pool=mean, paired" in md
    assert f"default - {RHYTHM_ROW}, paired" in md and f"default - {CCA_ROW}, paired" in md
    assert f"default - {NO_PRIOR_ROW}, paired" in md
    # The breakdown of the main rows adds up to their mean pessimistic rank (MeanR - 1).
    for run in results["runs"]:
        for row in ("chance", RHYTHM_ROW, "default", NO_PRIOR_ROW):
            for direction in ("m2d", "d2m"):
                report = run["reports"][row][direction]
                parts = report["breakdown"]
                total = parts["own"] + parts["same_class"] + parts["other_class"]
                assert total == pytest.approx(report["metrics"]["MeanR"] - 1), (row, direction)
    assert "Where the partner's rank comes from" in md and "| default -metre prior | d2m |" in md
    medr_n = [run["reports"]["default"]["m2d"]["metrics"]["MedR/N"] for run in results["runs"]]
    assert medr_n == [run["reports"]["default"]["m2d"]["metrics"]["MedR"] / run["num_test"] for run in results["runs"]]
    assert all((out / f"{kind}_{d}.png").stat().st_size > 0 for kind in ("recall", "ranks") for d in ("m2d", "d2m"))


@pytest.mark.slow
def test_bench_same_seed_same_results_other_seed_differs(tiny_store, bench_results, monkeypatch):
    _, results, _ = bench_results
    monkeypatch.setattr(bench_report_mod, "style_labels", _two_styles)  # as in the bench_results run
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
    weighted = tempo_embeddings(np.array([90.0]), music=True, weights=np.array([0.0, 0.0, 0.0, 1.0, 0.0]))
    w = (weighted @ dance.T)[0]
    assert w[2] > 5 * max(w[0], w[1], w[3], w[4])  # only "dance at a third of the music" counts


def test_metre_weights_count_the_training_ratios():
    weights = metre_weights(np.array([87.0, 90.0, 120.0, 100.0]), np.array([29.0, 30.0, 30.0, 71.0]))
    # add-one smoothed counts of the ratios 0.5, 1, 2, 3, 4: two waltzes (3), one cha-cha (4), one off every ratio
    np.testing.assert_allclose(weights, np.array([1, 1, 1, 3, 2]) / 8.0)


def _sides(groups: list[str], music: np.ndarray, dance: np.ndarray) -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    ids = [f"clip{i}" for i in range(len(groups))]
    grid = np.zeros((len(groups), 10), dtype=np.float32)
    return tuple(  # type: ignore[return-value]
        ModalityEmbeddings(fuse=x.astype(np.float32), beat_head=None, beat_grid=grid, ids=ids, groups=groups)
        for x in (music, dance)
    )


def test_breakdown_of_the_partners_rank_per_style_in_report_and_table():
    # Two windows of each of three pairs, two waltzes and a rumba; the scores know the style and nothing else.
    groups = ["DANCE_W_1", "DANCE_W_1", "DANCE_W_2", "DANCE_W_2", "DANCE_R_1", "DANCE_R_1"]
    style = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2)
    music, dance = _sides(groups, style, style)
    report: dict = {"m2d": {}, "d2m": {}}
    add_breakdown(report, plain_scores(music, dance), groups=groups)
    for direction in ("m2d", "d2m"):
        # all ties: every other clip of the query's style is at or above the partner, no clip of the other style
        got = report[direction]["breakdown"]
        assert got["own"] == 1.0 and got["other_class"] == 0.0
        assert got["same_class"] == pytest.approx(4 * 2 / 6)  # each waltz window has 2 of the other waltz
        assert got["chance_other_class"] == pytest.approx((4 * 2 + 2 * 4) / 6 / 2)
    unlabelled: dict = {"m2d": {}, "d2m": {}}
    unnamed = [f"pair{g[-1]}" for g in groups]
    add_breakdown(unlabelled, plain_scores(*_sides(unnamed, style, style)), groups=unnamed)
    assert unlabelled == {"m2d": {}, "d2m": {}}  # no style labels: no breakdown
    runs = [{"reports": {"default": report, "chance": {"m2d": {}, "d2m": {}}}}] * 2
    table = format_breakdown(runs)
    lines = [line for line in table.splitlines() if line.startswith("| default |")]
    assert lines == [
        "| default | m2d | 1.0 (0.5) | 1.3 (0.7) | 0.0 (1.3) |",
        "| default | d2m | 1.0 (0.5) | 1.3 (0.7) | 0.0 (1.3) |",
    ]
    assert "| chance |" not in table and format_breakdown([{"reports": {"chance": {"m2d": {}}}}]) == ""


def test_dance_order_seed_removes_the_official_batch_dependence_of_the_pairing(tiny_store):
    data, _ = load_bench_data(tiny_store)
    for variant in ("official", "temporal"):
        net = BeatBlender(
            BlenderConfig(
                music_dim=data.music_dim,
                dance_dim=data.dance_dim,
                embed_dim=8,
                num_layers=1,
                num_heads=2,
                ff_dim=16,
                variant=variant,
            )
        )  # type: ignore[arg-type]
        _, paired = embed_featureset(net, data, batch_size=4)
        _, shuffled = embed_featureset(net, data, batch_size=4, dance_order_seed=1)
        assert shuffled.ids == paired.ids
        same = np.allclose(paired.fuse, shuffled.fuse, atol=1e-5)
        assert same == (variant == "temporal")  # official embeddings depend on the batch companions


@pytest.mark.slow
def test_bench_command_prints_tables(tiny_store, tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app,
        [
            "bench",
            str(tiny_store),
            "--out",
            str(tmp_path / "b"),
            "--seeds",
            "1",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--val-groups",
            "1",
            "--no-progress",
            "--pool",
            "flatten",
            "--positional",
            "learned",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| chance |" in result.output and "| official, pool=" not in result.output
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (saved["config"]["pool"], saved["config"]["positional"]) == ("flatten", "learned")


def test_arms_carry_the_default_recipe_and_its_ablations():
    arms = {a.name: a for a in trained_arms(BenchConfig(positional="sinusoidal", pool="mean"))}
    recipe = {"positional": "sinusoidal", "pool": "mean", "rhythm_branch": True, "metre_prior": True}
    assert arms["official"].model == {"variant": "official"}
    assert arms["official, pool=mean"].model == {"variant": "official", "pool": "mean"}
    assert arms["default"].model == recipe
    assert arms["temporal"].model == {**recipe, "rhythm_branch": False, "metre_prior": False}
    assert arms["default -metre loss"].model == recipe and arms["default -metre loss"].metre_weight == 0.0
    assert arms["default -beat branch"].model == {**recipe, "beat_branch": False}
    assert arms["default -trans-temporal (MLP)"].model == {**recipe, "encoder": "mlp"}
    assert arms["default beta=0"].beta == 0.0
    plain = {a.name for a in trained_arms(BenchConfig(positional="learned", pool="flatten", rhythm_branch=False))}
    assert not any("pool=" in n or "metre" in n for n in plain)
    with pytest.raises(ParameterError, match="pool"):
        BenchConfig(pool="max")
