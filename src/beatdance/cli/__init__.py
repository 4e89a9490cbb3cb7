"""Command-line interface: ``beatdance COMMAND --help`` explains each command."""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import BeatDanceError
from ..jitcache import ensure_kernels
from .app import app

COMMAND_MODULES = ("prepare_cmd", "media_cmd", "train_cmd", "evaluate_cmd", "index_cmd", "search_cmd", "serve_cmd",
                   "export_cmd", "demo_cmd", "bench_cmd", "warmup_cmd")


def load_commands() -> typer.Typer:
    """The application with every command registered (importing a command's module registers it)."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return app


def _remote_search(argv: list[str]) -> bool:
    return argv[:1] == ["search"] and any(a == "--server" or a.startswith("--server=") for a in argv)


def main() -> None:
    """Console entry point: beatdance errors are printed as one clear message with exit status 2.

    ``beatdance search --server URL`` registers only the search command, whose module imports neither
    torch nor librosa, so asking a running service costs a fraction of a second.
    """
    try:
        if _remote_search(sys.argv[1:]):
            importlib.import_module(f"{__name__}.search_cmd")
        else:
            ensure_kernels()
            load_commands()
        app()
    except BeatDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
