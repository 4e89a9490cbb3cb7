"""``beatdance train``: contrastive training; settings from a named recipe (``train.recipes``), each overridable.
Under ``torchrun --nproc_per_node=N -m beatdance train ...`` it is one rank of a data-parallel run
(``train.distributed``): rank 0 writes the run folder and prints the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..features.loading import dataset_config, load_features
from ..threads import limited_threads, resolve_threads, usable_cores
from ..train.distributed import DistEnv, threads_per_process
from ..train.recipes import get_recipe
from ..train.trainer import train
from .app import app

_FROM_RECIPE = "(default: from --recipe)"


@app.command("train")
def train_command(
    data: Path = typer.Option(
        ..., "--data", help="Feature store from `beatdance prepare`, or a folder in the official BeatDance layout."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, history.jsonl, best/, last/."),
    recipe: str = typer.Option(
        "default",
        help="'default' (the bench winner: small temporal model with the rhythm "
        "branch, about a minute on 2 cores) or 'official' (the paper's GPU recipe: hours on a "
        "CPU). Every option below left unset comes from it.",
    ),
    variant: str | None = typer.Option(
        None,
        help=f"'temporal' (attention over segments) or 'official' (attention over the batch, as released) {_FROM_RECIPE}.",
    ),
    epochs: int | None = typer.Option(None, help=f"Training epochs {_FROM_RECIPE}."),
    batch_size: int | None = typer.Option(
        None, help=f"Clips per batch and process; the negatives are the global batch (processes x this) {_FROM_RECIPE}."
    ),
    lr: float | None = typer.Option(None, help=f"AdamW learning rate {_FROM_RECIPE}."),
    weight_decay: float | None = typer.Option(None, help=f"Decoupled weight decay {_FROM_RECIPE}."),
    warmup_fraction: float | None = typer.Option(
        None, help=f"Fraction of all steps spent in linear warmup {_FROM_RECIPE}."
    ),
    grad_clip: float | None = typer.Option(None, help=f"Gradient-norm clipping {_FROM_RECIPE}."),
    seed: int | None = typer.Option(None, help=f"Seed of every RNG {_FROM_RECIPE}."),
    beta: float | None = typer.Option(
        None, help=f"Weight of the beat-head loss: total = L(fuse) + beta * L(beat) {_FROM_RECIPE}."
    ),
    metre_weight: float | None = typer.Option(
        None, help=f"Weight of the rhythm branch's metre-gate loss {_FROM_RECIPE}."
    ),
    temperature: float | None = typer.Option(None, help=f"InfoNCE temperature {_FROM_RECIPE}."),
    learnable_temperature: bool | None = typer.Option(
        None, help=f"Learn the temperature instead of fixing it {_FROM_RECIPE}."
    ),
    evals_per_epoch: int | None = typer.Option(
        None, help=f"Validations per epoch (0 = none; the last epoch is kept) {_FROM_RECIPE}."
    ),
    selection_metric: str | None = typer.Option(
        None, help=f"Model selection metric '<m2d|d2m>/<R@1|...|MedR|MeanR|AVG>' {_FROM_RECIPE}."
    ),
    selection_window: int | None = typer.Option(
        None, help=f"Moving window (in evaluations) of the selection metric {_FROM_RECIPE}."
    ),
    save_every: int | None = typer.Option(
        None, help=f"Also keep a checkpoint every N epochs (0: best/ and last/ only) {_FROM_RECIPE}."
    ),
    train_split: str = typer.Option("train", help="Split to train on."),
    val_split: str = typer.Option("val", help="Split for validation and model selection."),
    segments: int = typer.Option(10, help="Segments per clip (features are mean-pooled into them)."),
    beat_slots: int = typer.Option(10, help="Beat-grid frames per segment."),
    embed_dim: int | None = typer.Option(None, help=f"Transformer width d {_FROM_RECIPE}."),
    layers: int | None = typer.Option(None, help=f"Layers in each of the four encoders {_FROM_RECIPE}."),
    heads: int | None = typer.Option(None, help=f"Attention heads {_FROM_RECIPE}."),
    ff_dim: int | None = typer.Option(None, help=f"Feed-forward width of the encoder layers {_FROM_RECIPE}."),
    dropout_self: float | None = typer.Option(None, help=f"Dropout of the self-attention encoders {_FROM_RECIPE}."),
    dropout_cross: float | None = typer.Option(None, help=f"Dropout of the beat-query cross-attention {_FROM_RECIPE}."),
    positional: str | None = typer.Option(
        None, help=f"Positional encoding of the temporal variant: learned, sinusoidal or none {_FROM_RECIPE}."
    ),
    pool: str | None = typer.Option(
        None,
        help="Clip embedding from the segment vectors: flatten (official, time-aligned "
        f"scoring) or mean (music and dance not beat-locked segment by segment) {_FROM_RECIPE}.",
    ),
    rhythm_branch: bool | None = typer.Option(
        None, help=f"The rhythm branch (tempo agreement under learned metre ratios) {_FROM_RECIPE}."
    ),
    standardise: bool | None = typer.Option(
        None, help=f"Z-score features by training statistics, kept in the checkpoint {_FROM_RECIPE}."
    ),
    metre_prior: bool | None = typer.Option(
        None,
        help="Join the metre prior to the embeddings: tempo ratios per song metre and the dance's metre, "
        f"counted on the training pairs and kept in the checkpoint {_FROM_RECIPE}.",
    ),
    device: str | None = typer.Option(
        None,
        help="'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'; under torchrun "
        f"CUDA means each process's cuda:LOCAL_RANK {_FROM_RECIPE}.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out after its last finished epoch."),
    threads: int | None = typer.Option(
        None,
        help="Torch, BLAS and OpenMP threads (default: the cores this process may "
        "use, shared among the processes torchrun started on this host).",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Train the Trans-Temporal Beat Blender with symmetric InfoNCE on a prepared dataset.

    Every setting comes from --recipe unless given. With validation (--evals-per-epoch > 0) the checkpoint
    with the best moving-window --selection-metric is kept in OUT/best; without, the last epoch. Example:

        beatdance train --data store/ --out runs/a
    """
    train_set = load_features(data, split=train_split, num_segments=segments, slots=beat_slots)
    env = DistEnv.from_environ()
    notes = []
    wanted = get_recipe(recipe).model
    if not train_set.has_rhythm and (
        (rhythm_branch is None and wanted.get("rhythm_branch")) or (metre_prior is None and wanted.get("metre_prior"))
    ):
        notes.append(
            f"{data} has no rhythm arrays (prepared by an older beatdance, or the official layout), so the "
            "rhythm branch and the metre prior are off. Re-run `beatdance prepare` to get them."
        )
        rhythm_branch = False if rhythm_branch is None else rhythm_branch
        metre_prior = False if metre_prior is None else metre_prior
    if not as_json and env.is_main:
        for note in notes:
            typer.echo(f"note: {note}", err=True)
    model_config, config = get_recipe(recipe).configs(
        model={
            "music_dim": train_set.music_dim,
            "dance_dim": train_set.dance_dim,
            "num_segments": segments,
            "beat_slots": beat_slots,
            "embed_dim": embed_dim,
            "num_layers": layers,
            "num_heads": heads,
            "ff_dim": ff_dim,
            "dropout_self": dropout_self,
            "dropout_cross": dropout_cross,
            "variant": variant,
            "positional": positional,
            "pool": pool,
            "rhythm_branch": rhythm_branch,
            "standardise": standardise,
            "metre_prior": metre_prior,
        },
        train={
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "warmup_fraction": warmup_fraction,
            "grad_clip": grad_clip,
            "seed": seed,
            "beta": beta,
            "metre_weight": metre_weight,
            "temperature": temperature,
            "learnable_temperature": learnable_temperature,
            "evals_per_epoch": evals_per_epoch,
            "selection_metric": selection_metric,
            "selection_window": selection_window,
            "save_every": save_every,
            "train_split": train_split,
            "val_split": val_split,
            "device": device,
        },
    )
    try:
        val_set = (
            load_features(data, split=val_split, num_segments=segments, slots=beat_slots)
            if config.evals_per_epoch
            else None
        )
    except FileNotFoundError:
        val_set = None
    cores = resolve_threads(threads) if threads is not None else threads_per_process(usable_cores(), env=env)
    with limited_threads(cores):
        result = train(
            train_set=train_set,
            val_set=val_set,
            model_config=model_config,
            config=config,
            out=out,
            data_info=dataset_config(data),
            resume=resume,
            show_progress=progress,
            env=env,
        )
    if not env.is_main:
        return
    summary = {
        "run_dir": str(result.run_dir),
        "best_checkpoint": str(result.best_checkpoint),
        "best_window_score": result.best_score,
        "selection_metric": config.selection_metric,
        "recipe": recipe,
        "notes": notes,
        "last_validation": result.history[-1] if result.history else None,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        last: dict[str, Any] = summary["last_validation"]  # type: ignore[assignment]
        typer.echo(f"trained a {model_config.variant} model ({recipe} recipe) -> {result.best_checkpoint}")
        if last:
            typer.echo(
                f"last validation: m2d R@1 {last['m2d/R@1']:.2f}  d2m R@1 {last['d2m/R@1']:.2f}  "
                f"best window {config.selection_metric} {result.best_score:.3f}"
            )
