"""The Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="beatdance",
    help=(
        "Beat-aware music <-> dance retrieval (BeatDance, ICMR 2024), offline on CPU.\n\n"
        "Typical flow: [bold]prepare[/bold] media into a feature store, [bold]train[/bold] a model, "
        "[bold]evaluate[/bold] it (R@K, MedR, MeanR, BS@K, with or without the hubness reducer), then "
        "[bold]index[/bold] a library and [bold]search[/bold] it. [bold]demo[/bold] runs it all on synthetic data."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _commands() -> None:
    """Always a group of commands, even when only one is registered (``search --server`` loads just that one)."""
