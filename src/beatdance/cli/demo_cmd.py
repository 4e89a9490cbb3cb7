"""``beatdance demo``: the whole pipeline from raw media on built-in synthetic data, offline, in minutes."""

from __future__ import annotations

from pathlib import Path

import typer

from ..demo import DemoConfig, run_demo
from ..threads import limited_threads, resolve_threads
from .app import app
from .evaluate_cmd import print_report

_D = DemoConfig()


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the media, store, run, library and report."),
    pairs: int = typer.Option(_D.pairs, help="Synthetic song + dance pairs."),
    epochs: int = typer.Option(_D.epochs, help="Training epochs."),
    lr: float = typer.Option(_D.lr, help="Learning rate (the default recipe's)."),
    seed: int = typer.Option(_D.seed, help="Seed of the media, the split and the training."),
    workers: int = typer.Option(_D.workers, help="Processes for `prepare`."),
    threads: int | None = typer.Option(
        None, help="Torch, BLAS and OpenMP threads (default: the cores this process may use)."
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Synthesize songs and dances, prepare them, train a model, evaluate it, index a library, search it with
    files, export a beat-synced MP4 of the best match, and write OUT/report.md and OUT/report.html."""
    cfg = DemoConfig(pairs=pairs, epochs=epochs, lr=lr, seed=seed, workers=workers)
    with limited_threads(resolve_threads(threads)):
        summary = run_demo(out=out, config=cfg, show_progress=progress, log=typer.echo)
    print_report(summary["evaluation"])
    typer.echo(f"total {summary['seconds']:.0f} s   report: {out / 'report.md'} and {out / 'report.html'}")
