"""Command-line interface: ``beatdance COMMAND --help`` explains each command."""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import BeatDanceError
from .app import app

# Every command, the module that registers it, and its one-line help for the top-level listing, so that
# `beatdance --help` and `beatdance COMMAND ...` import only what they need (tested to match the modules).
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("prepare_cmd", "Cut music/dance pairs into windows: beats, rhythm and features into a store."),
    "train": ("train_cmd", "Train the Beat Blender (recipe default or official) on a prepared store."),
    "evaluate": ("evaluate_cmd", "R@K, MedR, MeanR and BS@K of a trained model on a split, both ways."),
    "index": ("index_cmd", "Embed a store into a searchable library (FAISS, metadata, querybank)."),
    "search": ("search_cmd", "Search a library with a music or dance file, or a library item."),
    "serve": ("serve_cmd", "Serve a search page and a JSON API over a library."),
    "export": ("export_cmd", "Put music under a dance so that their beats line up (MP4)."),
    "demo": ("demo_cmd", "The whole pipeline on built-in synthetic media, with a report."),
    "bench": ("bench_cmd", "Cross-validated benchmark of every arm and baseline on a store."),
    "beats": ("media_cmd", "Tempo and beat times of music, a video or keypoints."),
    "synth": ("media_cmd", "Synthesize songs with beat-locked dances (and videos)."),
    "export-official": ("prepare_cmd", "Export a store to the official BeatDance layout."),
    "import-official": ("prepare_cmd", "Import the official BeatDance layout into a store."),
    "warmup": ("warmup_cmd", "Compile librosa's kernels once (make install runs it)."),
}
COMMAND_MODULES = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


def load_commands() -> typer.Typer:
    """The application with every command registered (importing a command's module registers it)."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return app


def _remote_search(argv: list[str]) -> bool:
    return argv[:1] == ["search"] and any(a == "--server" or a.startswith("--server=") for a in argv)


def _register_listing() -> None:
    """Stand-ins that carry each command's name and help, for the top-level help and unknown commands."""
    for name, (_, help_text) in COMMANDS.items():
        app.command(name, help=help_text, add_help_option=False)(lambda: None)


def main() -> None:
    """Console entry point: beatdance errors are printed as one clear message with exit status 2.

    Only the module of the command asked for is imported (``beatdance --help`` imports none of them).
    ``beatdance search --server URL`` imports neither torch nor librosa, so asking a running service costs a
    fraction of a second. librosa's kernel cache is checked only where librosa is used (the ``hpss`` option).
    """
    argv = sys.argv[1:]
    try:
        if argv and argv[0] in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[argv[0]][0]}")
        else:
            _register_listing()
        app()
    except BeatDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
