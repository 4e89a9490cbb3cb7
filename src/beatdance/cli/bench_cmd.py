"""``beatdance bench``: the cross-validated benchmark (baselines, official, default, ablations) on a store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..pipeline.bench import BenchConfig, paired_comparisons, run_bench
from ..pipeline.bench_report import format_breakdown, format_markdown
from ..threads import resolve_threads
from .app import app


@app.command("bench")
def bench_command(
    store: Path = typer.Argument(..., help="Feature store from `beatdance prepare` (groups = source pairs)."),
    out: Path = typer.Option(..., "--out", help="Folder for results.md, results.json and the plots."),
    seeds: int = typer.Option(4, help="Seeds (0..N-1); each reshuffles the folds and the training."),
    folds: int = typer.Option(4, help="Cross-validation folds over pairs."),
    epochs: int = typer.Option(BenchConfig.epochs, help="Training epochs of every trained arm."),
    val_groups: int = typer.Option(3, help="Pairs held out of training per fold (the validation querybank)."),
    positional: str = typer.Option(
        BenchConfig.positional, help="Positional encoding of the temporal arms: sinusoidal, learned or none."
    ),
    pool: str = typer.Option(
        BenchConfig.pool, help="Clip embedding of the temporal arms: mean (over segments) or flatten (official)."
    ),
    rhythm_branch: bool = typer.Option(
        BenchConfig.rhythm_branch, help="The default arm's rhythm branch (off: the default arm is temporal)."
    ),
    device: str = typer.Option("cpu", help="Torch device for training and embedding."),
    workers: int | None = typer.Option(
        None,
        help="Processes running (seed, fold) runs at once, one torch thread each "
        "(default: the cores this process may use).",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of Markdown tables."),
) -> None:
    """Cross-validate every arm by pair and print mean ± std of R@K, MedR, MeanR, pair recall and BS@K.

    No clip of a test pair is trained on. Example:

        beatdance bench dwm_store --out bench_out --seeds 2 --folds 4
    """
    config = BenchConfig(
        seeds=seeds,
        folds=folds,
        epochs=epochs,
        val_groups=val_groups,
        device=device,
        positional=positional,  # type: ignore[arg-type]
        pool=pool,  # type: ignore[arg-type]
        rhythm_branch=rhythm_branch,
    )
    results = run_bench(store=store, out=out, config=config, workers=resolve_threads(workers), show_progress=progress)
    if as_json:
        typer.echo(json.dumps(results["summary"], indent=2))
    else:
        typer.echo(format_markdown(results["summary"]))
        typer.echo(paired_comparisons(results["runs"], config))
        typer.echo(format_breakdown(results["runs"]))
        typer.echo(f"{len(results['runs'])} runs in {results['elapsed_s']:.0f} s; results in {out}")
