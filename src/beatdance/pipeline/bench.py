"""The benchmark protocol: cross-validation over pairs, several seeds, every arm on the same splits.

For each seed the groups (source pairs) are dealt into ``folds`` folds; each fold in turn is the test
set, a few other groups are the validation set (a querybank source) and the rest are trained on, so no
clip of a test pair is ever trained on. Every arm is evaluated on the same test clips in both
directions; metrics are then given as mean ± std over all (seed, fold) runs.

Arms:

* baselines (``pipeline.baselines``): chance; the rhythm heuristic (metre ratios counted on the training
  pairs, then tempo agreement of the track tempos); linear CCA between the pooled features of the two
  sides; where style labels exist, the style oracle (same style first) and style oracle + tempo.
* ``default``: the recipe ``beatdance train`` uses (``train.recipes``): temporal, mean-pooled,
  sinusoidal, with the rhythm branch; and its ablations (no metre loss, no rhythm branch = ``temporal``,
  no beat branch, no trans-temporal encoders, the loss weight of the beat head).
* ``official`` as released, and with mean pooling. All trained arms share one training recipe and size.

Evaluation of the ``official`` variant embeds the dance side in a seeded random order (see
``retrieval.embed``): embedding both sides in the pair order leaks the pairing through its
cross-batch attention. The leaky number is reported too, in its own row, to show the size of the
artefact. Trained arms are also scored with extra beat terms (beat-head cosine, BA) and with the
hubness reducer (DIS) with a querybank from the train split or from the validation split. Where style
labels exist, the report also splits the partner's rank of the main rows into other windows of its pair,
other pairs of its style and other styles (``bench_report.add_breakdown``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ParameterError
from ..features.featureset import FeatureSet
from ..features.folds import Fold, group_folds
from ..model.blender import BlenderConfig, Pool, Positional
from ..model.checkpoint import load_checkpoint
from ..retrieval.embed import embed_featureset, join_prior
from ..retrieval.evaluate import ModalityEmbeddings, evaluate_retrieval
from ..retrieval.search import LIBRARY_SEARCH
from ..train.config import TrainConfig
from ..train.recipes import RECIPES
from ..train.trainer import train
from ..util import atomic_write_bytes, atomic_write_json, progress
from .baselines import cca_embeddings, load_bench_data, random_embeddings, rhythm_heuristic, style_oracle
from .bench_report import (
    DIRECTIONS,
    add_breakdown,
    format_breakdown,
    format_markdown,
    paired_comparison,
    plain_ranks,
    plain_scores,
    results_markdown,
    summarise,
    write_plots,
)

_RECIPE = RECIPES["default"]
DEFAULT_ROW = "default"
RHYTHM_ROW = "rhythm heuristic (ratios from training pairs)"
CCA_ROW = "linear CCA"
ORACLE_ROW = "style oracle"
LIBRARY_QB_ROW = f"{DEFAULT_ROW} + DIS (library qb, own pair left out)"
NO_PRIOR_ROW = f"{DEFAULT_ROW} -metre prior"
BREAKDOWN_ROWS = ("chance", f"{ORACLE_ROW} (reference)", RHYTHM_ROW, DEFAULT_ROW, NO_PRIOR_ROW)
LIBRARY_ROW = (
    f"{DEFAULT_ROW}, library search (DIS library qb + {LIBRARY_SEARCH.beat_weight_head:g} x beat head + "
    f"{LIBRARY_SEARCH.beat_weight_align:g} x BA)"
)


@dataclass
class BenchConfig:
    """Protocol and training settings shared by every arm (sizes suited to a few hundred clips)."""

    folds: int = 4
    seeds: int = 4
    val_groups: int = 3
    epochs: int = _RECIPE.train["epochs"]
    batch_size: int = 32
    lr: float = _RECIPE.train["lr"]
    weight_decay: float = 0.2
    embed_dim: int = _RECIPE.model["embed_dim"]
    num_layers: int = _RECIPE.model["num_layers"]
    num_heads: int = _RECIPE.model["num_heads"]
    ff_dim: int = _RECIPE.model["ff_dim"]
    dropout_self: float = 0.3
    dropout_cross: float = 0.6
    beta: float = 0.4
    metre_weight: float = 1.0
    tempo_stretch_octaves: float = _RECIPE.train.get("tempo_stretch_octaves", 0.0)
    mismatch_octaves: tuple[float, float] | None = _RECIPE.train.get("mismatch_octaves")
    beta_sweep: tuple[float, ...] = (0.0, 0.8)
    head_weights: tuple[float, ...] = (0.5, 1.0)
    align_weight: float = 0.5
    qb_k: int = 1
    qb_beta: float = 20.0
    tempo_sigma_octaves: float = 0.05
    positional: Positional = _RECIPE.model["positional"]
    pool: Pool = _RECIPE.model["pool"]
    rhythm_branch: bool = _RECIPE.model["rhythm_branch"]
    standardise: bool = _RECIPE.model["standardise"]
    metre_prior: bool = _RECIPE.model["metre_prior"]
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ParameterError(f"seeds={self.seeds} must be >= 1.")
        if self.epochs < 1:
            raise ParameterError(f"epochs={self.epochs} must be >= 1.")
        # The temporal arms are built with these two: let BlenderConfig say now if either is unknown.
        BlenderConfig(positional=self.positional, pool=self.pool)
        if not self.tempo_sigma_octaves > 0:
            raise ParameterError(f"tempo_sigma_octaves={self.tempo_sigma_octaves} must be > 0 (e.g. 0.05).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Arm:
    """A trained arm: overrides of the model config, of the loss weight beta and of the metre-loss weight."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    beta: float | None = None
    metre_weight: float | None = None


def trained_arms(cfg: BenchConfig) -> list[Arm]:
    """official (as released, and with the bench's pooling), ``default`` (the bench's positional encoding,
    pooling and rhythm branch), ``temporal`` (the same without the rhythm branch), and the ablations of
    ``default``. All share one training recipe."""
    default = {
        "positional": cfg.positional,
        "pool": cfg.pool,
        "rhythm_branch": cfg.rhythm_branch,
        "metre_prior": cfg.metre_prior,
    }
    arms = [Arm("official", {"variant": "official"})]
    pooled_official = pooled_official_row(cfg)
    if pooled_official is not None:
        arms.append(Arm(pooled_official, {"variant": "official", "pool": cfg.pool}))
    arms += [Arm("temporal", {**default, "rhythm_branch": False, "metre_prior": False}), Arm(DEFAULT_ROW, default)]
    if cfg.rhythm_branch:
        arms.append(Arm(f"{DEFAULT_ROW} -metre loss", default, metre_weight=0.0))
    arms += [
        Arm(f"{DEFAULT_ROW} -beat branch", {**default, "beat_branch": False}, beta=0.0),
        Arm(f"{DEFAULT_ROW} -trans-temporal (MLP)", {**default, "encoder": "mlp"}),
    ]
    arms += [Arm(f"{DEFAULT_ROW} beta={b:g}", default, beta=b) for b in cfg.beta_sweep if b != cfg.beta]
    return arms


def pooled_official_row(cfg: BenchConfig) -> str | None:
    """Name of the ``official`` arm given temporal's pooling; None when that is official's own."""
    return f"official, pool={cfg.pool}" if cfg.pool != BlenderConfig().pool else None


# -- one run -------------------------------------------------------------------------------------


def _train_arm(arm: Arm, cfg: BenchConfig, *, train_set: FeatureSet, seed: int) -> Any:
    model_cfg = BlenderConfig(
        music_dim=train_set.music_dim,
        dance_dim=train_set.dance_dim,
        num_segments=train_set.num_segments,
        beat_slots=train_set.beat_slots,
        embed_dim=cfg.embed_dim,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        ff_dim=cfg.ff_dim,
        dropout_self=cfg.dropout_self,
        dropout_cross=cfg.dropout_cross,
        standardise=cfg.standardise,
        **arm.model,
    )
    train_cfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=seed,
        beta=cfg.beta if arm.beta is None else arm.beta,
        metre_weight=cfg.metre_weight if arm.metre_weight is None else arm.metre_weight,
        tempo_stretch_octaves=cfg.tempo_stretch_octaves,
        mismatch_octaves=cfg.mismatch_octaves,
        evals_per_epoch=0,
        save_every=0,
        device=cfg.device,
    )
    with tempfile.TemporaryDirectory(prefix="beatdance-bench-") as tmp:
        result = train(
            train_set=train_set, val_set=None, model_config=model_cfg, config=train_cfg, out=tmp, show_progress=False
        )
        net, _ = load_checkpoint(result.best_checkpoint, device=cfg.device)
    return net


def run_fold(
    data: FeatureSet, tempos: dict[str, tuple[float, float]], fold: Fold, *, seed: int, cfg: BenchConfig
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Every row's ``evaluate_retrieval`` report on one fold, and the plain ranks of the main rows."""
    train_set, val_set, test_set = (data.subset(ix) for ix in (fold.train, fold.val, fold.test))
    reports: dict[str, dict[str, Any]] = {}
    ranks: dict[str, dict[str, np.ndarray]] = {}
    common: dict[str, Any] = {"bs_ks": (1, 5, 10)}
    run_seed = 1000 * seed + fold.index
    groups = list(test_set.groups or test_set.ids)

    def baseline(row: str, sides: tuple[ModalityEmbeddings, ModalityEmbeddings] | None) -> None:
        if sides is not None:
            reports[row] = evaluate_retrieval(music=sides[0], dance=sides[1], **common)
            scores = plain_scores(*sides)
            ranks[row] = plain_ranks(scores)
            if row in BREAKDOWN_ROWS:
                add_breakdown(reports[row], scores, groups=groups)

    baseline("chance", random_embeddings(test_set, seed=run_seed))
    tempo = rhythm_heuristic(train_set, test_set, tempos, sigma_octaves=cfg.tempo_sigma_octaves)
    baseline(RHYTHM_ROW, tempo)
    baseline(CCA_ROW, cca_embeddings(train_set, test_set))
    baseline(f"{ORACLE_ROW} (reference)", style_oracle(test_set, seed=run_seed))
    baseline(f"{ORACLE_ROW} + tempo (reference)", style_oracle(test_set, seed=run_seed, tempo=tempo))

    for arm in trained_arms(cfg):
        net = _train_arm(arm, cfg, train_set=train_set, seed=seed)
        embed: dict[str, Any] = {"batch_size": cfg.batch_size, "device": cfg.device, "dance_order_seed": run_seed}
        plain_music, plain_dance = embed_featureset(net, test_set, prior=False, **embed)
        music, dance = join_prior(net.prior, test_set, plain_music, plain_dance)
        reports[arm.name] = evaluate_retrieval(music=music, dance=dance, **common)
        if net.prior is not None and arm.name == DEFAULT_ROW:  # the same weights, scored without the prior
            reports[NO_PRIOR_ROW] = evaluate_retrieval(music=plain_music, dance=plain_dance, **common)
            add_breakdown(reports[NO_PRIOR_ROW], plain_scores(plain_music, plain_dance), groups=groups)
        if arm.name not in ("official", "temporal", DEFAULT_ROW):
            continue
        scores = plain_scores(music, dance)
        ranks[arm.name] = plain_ranks(scores)
        if arm.name in BREAKDOWN_ROWS:
            add_breakdown(reports[arm.name], scores, groups=groups)
        if arm.name == "temporal":
            continue
        for bank_name, bank_set in (("train", train_set), ("val", val_set)):
            bank_music, bank_dance = embed_featureset(net, bank_set, **embed)
            reports[f"{arm.name} + DIS ({bank_name} qb)"] = evaluate_retrieval(
                music=music,
                dance=dance,
                bank_music=bank_music,
                bank_dance=bank_dance,
                hubness="dis",
                k=cfg.qb_k,
                beta=cfg.qb_beta,
                **common,
            )
        if arm.name == DEFAULT_ROW:
            reports.update(library_rows(music, dance, cfg=cfg, common=common))
        for w in cfg.head_weights:
            reports[f"{arm.name}, score + {w:g} x beat head"] = evaluate_retrieval(
                music=music, dance=dance, beat_weight_head=w, **common
            )
        if arm.name == "official":
            leaky_music, leaky_dance = embed_featureset(net, test_set, batch_size=cfg.batch_size, device=cfg.device)
            reports["official, pair-ordered batches (LEAKS)"] = evaluate_retrieval(
                music=leaky_music, dance=leaky_dance, **common
            )
            continue
        reports[f"{arm.name}, score + {cfg.align_weight:g} x BA"] = evaluate_retrieval(
            music=music, dance=dance, beat_weight_align=cfg.align_weight, **common
        )
    for report in reports.values():  # MedR as a fraction of the gallery, comparable across folds and datasets
        for direction in DIRECTIONS:
            report[direction]["metrics"]["MedR/N"] = report[direction]["metrics"]["MedR"] / len(test_set)
    return reports, ranks


def library_rows(
    music: ModalityEmbeddings, dance: ModalityEmbeddings, *, cfg: BenchConfig, common: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The querybank a library uses (its own clips of the query modality, which hold every gallery item's
    partner), as a new query meets it: the test gallery's clips minus the query's own pair. Once with
    plain DIS, once with the library's default search settings (``LIBRARY_SEARCH``)."""
    lib = LIBRARY_SEARCH
    bank: dict[str, Any] = {"bank_music": music, "bank_dance": dance, "bank_without_query_group": True}
    return {
        LIBRARY_QB_ROW: evaluate_retrieval(
            music=music, dance=dance, hubness="dis", k=cfg.qb_k, beta=cfg.qb_beta, **bank, **common
        ),
        LIBRARY_ROW: evaluate_retrieval(
            music=music,
            dance=dance,
            hubness=lib.hubness,
            k=lib.k,
            beta=lib.beta,
            beat_weight_head=lib.beat_weight_head,
            beat_weight_align=lib.beat_weight_align,
            sigma_frames=lib.sigma_frames,
            **bank,
            **common,
        ),
    }


# -- the whole protocol --------------------------------------------------------------------------


def _init_worker() -> None:
    # Tiny models: one thread per process is several times faster than two fighting over shared cores.
    torch.set_num_threads(1)


def paired_comparisons(runs: Sequence[dict[str, Any]], cfg: BenchConfig) -> str:
    """The default arm against the rhythm heuristic, linear CCA, itself without the metre prior, temporal (no
    rhythm branch, no prior) and official (as released, and with the default's pooling when that differs);
    the library's default search against the plain default score, the rhythm heuristic and linear CCA."""
    baselines = [RHYTHM_ROW, CCA_ROW, NO_PRIOR_ROW, "temporal", "official", pooled_official_row(cfg)]
    present = runs[0]["reports"] if runs else {}
    tables = [paired_comparison(runs, row=DEFAULT_ROW, baseline=base) for base in baselines if base and base in present]
    tables += [paired_comparison(runs, row=LIBRARY_ROW, baseline=base) for base in (DEFAULT_ROW, RHYTHM_ROW, CCA_ROW)]
    return "\n".join(tables)


def run_bench(
    *,
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: BenchConfig | None = None,
    workers: int = 1,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the protocol on a prepared store; write results.json, results.md and plots to ``out``.

    The (seed, fold) runs go to ``workers`` processes of one torch thread each; every run is seeded on
    its own, so the results do not depend on ``workers``.
    """
    cfg = config or BenchConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data, tempos = load_bench_data(store)
    assert data.groups is not None
    if workers < 1:
        raise ParameterError(f"workers={workers} must be >= 1 (processes running folds at once).")
    tasks = [
        (seed, fold)
        for seed in range(cfg.seeds)
        for fold in group_folds(data.groups, folds=cfg.folds, seed=seed, val_groups=cfg.val_groups)
    ]
    bar = progress(desc="bench runs", total=len(tasks), enabled=show_progress)
    done: dict[tuple[int, int], tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(run_fold, data, tempos, fold, seed=seed, cfg=cfg): (seed, fold.index) for seed, fold in tasks
        }
        for fut in as_completed(futures):
            done[futures[fut]] = fut.result()
            bar.update(1)
    bar.close()
    runs: list[dict[str, Any]] = []
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for seed, fold in tasks:
        reports, ranks = done[seed, fold.index]
        runs.append(
            {
                "seed": seed,
                "fold": fold.index,
                **{
                    f"{part}_groups": sorted({data.groups[i] for i in getattr(fold, part)})
                    for part in ("train", "val", "test")
                },
                "num_train": int(fold.train.size),
                "num_val": int(fold.val.size),
                "num_test": int(fold.test.size),
                "reports": reports,
            }
        )
        for row, by_direction in ranks.items():
            for direction, r in by_direction.items():
                pooled.setdefault(direction, {}).setdefault(row, []).append(r)
    summary = summarise(runs)
    results = {
        "store": str(store),
        "num_clips": len(data),
        "num_groups": len(set(data.groups)),
        "config": cfg.to_dict(),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "summary": summary,
        "runs": runs,
    }
    table = format_markdown(summary) + "\n" + paired_comparisons(runs, cfg) + "\n" + format_breakdown(runs)
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", results_markdown(results, table).encode())
    curve_rows = ("chance", RHYTHM_ROW, CCA_ROW, "official", pooled_official_row(cfg), "temporal", DEFAULT_ROW)
    write_plots(out, summary=summary, pooled=pooled, curve_rows=(*curve_rows, f"{ORACLE_ROW} (reference)"))
    return results
