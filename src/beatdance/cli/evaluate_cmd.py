"""``beatdance evaluate``: R@K, MedR, MeanR, AVG and BS@K in both directions, with or without QB-Norm."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..retrieval.evaluate import format_table
from ..retrieval.protocol import evaluate_model
from ..util import atomic_write_json
from .app import app


def print_report(report: dict) -> None:
    """Print one table per hubness setting of an ``evaluate_model`` report."""
    for name, result in report["results"].items():
        title = f"{report['variant']} on {report['split']} ({report['num_clips']} clips), hubness={name}"
        if report["settings"]["dance_order"].startswith("pair order"):
            title += " [pair-ordered batches: LEAKS the pairing for the official variant]"
        typer.echo(format_table(result, title=title))


@app.command("evaluate")
def evaluate_command(
    model: Path = typer.Option(
        ..., "--model", help="Run folder of `beatdance train` (uses best/) or a checkpoint folder."
    ),
    data: Path = typer.Option(..., "--data", help="Feature store or official-layout folder."),
    split: str = typer.Option("test", help="Split to evaluate."),
    hubness: str = typer.Option(
        "none", help="Hubness reducer: none, is (inverted softmax) or dis (dynamic inverted softmax)."
    ),
    querybank: str = typer.Option("train", help="Split whose clips form the QB-Norm querybank."),
    k: int = typer.Option(1, help="DIS activation set: gallery items in the top-k of any querybank query."),
    qb_beta: float = typer.Option(20.0, help="QB-Norm inverse temperature."),
    beat_weight_head: float = typer.Option(
        0.0, help="Weight of the beat-head cosine similarity added to the fused one."
    ),
    beat_weight_align: float = typer.Option(
        0.0, help="Weight of the explicit beat-alignment score added to the fused one."
    ),
    batch_size: int = typer.Option(32, help="Embedding batch size (matters for the official variant, official 32)."),
    chunk_size: int = typer.Option(1024, help="Query rows scored at a time (memory bound for large galleries)."),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda, cuda:N or auto (CUDA when present)."),
    dance_order_seed: int = typer.Option(0, help="Seed of the random order the dance side is embedded in."),
    pair_ordered_batches: bool = typer.Option(
        False,
        "--pair-ordered-batches",
        help="Embed both sides in pair order, "
        "as the official code does: leaks the pairing for the official variant "
        "(its attention runs across the batch). For reproducing published numbers only.",
    ),
    json_out: str = typer.Option(None, "--json", help="Write the full report as JSON to this file ('-' for stdout)."),
) -> None:
    """Evaluate a trained model on a split: music->dance (m2d) and dance->music (d2m).

    The table always shows the plain ranking; with --hubness is|dis it also shows the
    beat-enhanced hubness reducer. Example:

        beatdance evaluate --model runs/a --data store/ --hubness dis --json report.json
    """
    if hubness not in ("none", "is", "dis"):
        raise typer.BadParameter(f"--hubness {hubness!r}; expected none, is or dis.")
    report = evaluate_model(
        model=model,
        data=data,
        split=split,
        hubness=hubness,  # type: ignore[arg-type]
        querybank_split=querybank,
        k=k,
        beta=qb_beta,
        beat_weight_head=beat_weight_head,
        beat_weight_align=beat_weight_align,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        dance_order_seed=dance_order_seed,
        pair_ordered_batches=pair_ordered_batches,
    )
    if json_out == "-":
        typer.echo(json.dumps(report, indent=2))
        return
    print_report(report)
    if json_out:
        atomic_write_json(json_out, report)
        typer.echo(f"report written to {json_out}")
