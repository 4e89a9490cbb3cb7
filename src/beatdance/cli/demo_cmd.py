"""``beatdance demo``: the whole pipeline on built-in synthetic data, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import typer

from ..pipeline.demo import run_feature_demo
from .app import app
from .evaluate_cmd import print_report


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the data, runs and report."),
    epochs: int = typer.Option(4, help="Training epochs per variant."),
    lr: float = typer.Option(1e-4, help="Learning rate (higher than the official 1e-5 so a short CPU run learns)."),
    seed: int = typer.Option(0, help="Seed of the data and the training."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Generate a synthetic dataset, train the temporal and official variants, and print their test
    metrics with and without the hubness reducer (chance R@1 is printed for comparison)."""
    summary = run_feature_demo(out=out, epochs=epochs, lr=lr, seed=seed, show_progress=progress, log=typer.echo)
    for report in summary["reports"].values():
        print_report(report)
    typer.echo(f"chance R@1 = {summary['chance_R@1']:.2f}%   total {summary['seconds']:.0f} s   report: {out / 'demo_report.json'}")
