"""``beatdance train``: contrastive training with the official hyper-parameters as defaults."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..features.loading import dataset_config, load_features
from ..model.blender import BlenderConfig
from ..train.config import TrainConfig
from ..train.trainer import train
from .app import app


@app.command("train")
def train_command(
    data: Path = typer.Option(..., "--data", help="Feature store from `beatdance prepare`, or a folder in the official BeatDance layout."),
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, history.jsonl, best/, last/."),
    variant: str = typer.Option("temporal", help="'temporal' (attention over segments) or 'official' (attention over the batch, as released)."),
    epochs: int = typer.Option(150, help="Training epochs (official 150)."),
    batch_size: int = typer.Option(32, help="Clips per batch; in-batch negatives (official 32)."),
    lr: float = typer.Option(1e-5, help="AdamW learning rate (official 1e-5)."),
    weight_decay: float = typer.Option(0.2, help="Decoupled weight decay on all parameters (official 0.2)."),
    warmup_fraction: float = typer.Option(0.1, help="Fraction of all steps spent in linear warmup before the cosine decay."),
    grad_clip: float = typer.Option(1.0, help="Gradient-norm clipping."),
    seed: int = typer.Option(24, help="Seed of every RNG (official 24)."),
    beta: float = typer.Option(0.4, help="Weight of the beat-head loss: total = L(fuse) + beta * L(beat)."),
    temperature: float = typer.Option(0.01, help="InfoNCE temperature (official 0.01, i.e. logit scale 100)."),
    learnable_temperature: bool = typer.Option(False, help="Learn the temperature instead of fixing it."),
    evals_per_epoch: int = typer.Option(2, help="Validations per epoch (0 = none; the last epoch is kept)."),
    selection_metric: str = typer.Option("m2d/AVG", help="Model selection metric '<m2d|d2m>/<R@1|...|MedR|MeanR|AVG>'."),
    selection_window: int = typer.Option(5, help="Moving window (in evaluations) of the selection metric."),
    save_every: int = typer.Option(50, help="Also keep a checkpoint every N epochs."),
    train_split: str = typer.Option("train", help="Split to train on."),
    val_split: str = typer.Option("val", help="Split for validation and model selection."),
    segments: int = typer.Option(10, help="Segments per clip (features are mean-pooled into them)."),
    beat_slots: int = typer.Option(10, help="Beat-grid frames per segment."),
    embed_dim: int = typer.Option(256, help="Transformer width d."),
    layers: int = typer.Option(6, help="Layers in each of the four encoders."),
    heads: int = typer.Option(4, help="Attention heads."),
    ff_dim: int = typer.Option(2048, help="Feed-forward width of the encoder layers."),
    dropout_self: float = typer.Option(0.3, help="Dropout of the self-attention encoders."),
    dropout_cross: float = typer.Option(0.6, help="Dropout of the beat-query cross-attention."),
    positional: str = typer.Option("learned", help="Positional encoding of the temporal variant: learned, sinusoidal or none."),
    pool: str = typer.Option("flatten", help="Clip embedding from the segment vectors: flatten (official, time-aligned "
                             "scoring) or mean (for music and dance not beat-locked segment by segment)."),
    device: str = typer.Option("auto", help="'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out after its last finished epoch."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Train the Trans-Temporal Beat Blender with symmetric InfoNCE on a prepared dataset.

    Validation runs --evals-per-epoch times per epoch; the checkpoint with the best moving-window
    --selection-metric is kept in OUT/best. Example:

        beatdance train --data store/ --out runs/a --epochs 20 --lr 1e-4
    """
    train_set = load_features(data, split=train_split, num_segments=segments, slots=beat_slots)
    try:
        val_set = load_features(data, split=val_split, num_segments=segments, slots=beat_slots) if evals_per_epoch else None
    except FileNotFoundError:
        val_set = None
    model_config = BlenderConfig(
        music_dim=train_set.music_dim, dance_dim=train_set.dance_dim, num_segments=segments, beat_slots=beat_slots,
        embed_dim=embed_dim, num_layers=layers, num_heads=heads, ff_dim=ff_dim, dropout_self=dropout_self,
        dropout_cross=dropout_cross, variant=variant, positional=positional, pool=pool,  # type: ignore[arg-type]
    )
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_fraction=warmup_fraction,
        grad_clip=grad_clip, seed=seed, beta=beta, temperature=temperature, learnable_temperature=learnable_temperature,
        evals_per_epoch=evals_per_epoch, selection_metric=selection_metric, selection_window=selection_window,
        save_every=save_every, train_split=train_split, val_split=val_split, device=device,
    )
    result = train(train_set=train_set, val_set=val_set, model_config=model_config, config=config, out=out,
                   data_info=dataset_config(data), resume=resume, show_progress=progress)
    summary = {"run_dir": str(result.run_dir), "best_checkpoint": str(result.best_checkpoint),
               "best_window_score": result.best_score, "selection_metric": selection_metric,
               "last_validation": result.history[-1] if result.history else None}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        last = summary["last_validation"]
        typer.echo(f"trained {variant} model -> {result.best_checkpoint}")
        if last:
            typer.echo(f"last validation: m2d R@1 {last['m2d/R@1']:.2f}  d2m R@1 {last['d2m/R@1']:.2f}  "
                       f"best window {selection_metric} {result.best_score:.3f}")
