"""Command-line interface: ``beatdance COMMAND --help`` explains each command."""

from __future__ import annotations

import sys

from ..errors import BeatDanceError
from . import demo_cmd, evaluate_cmd, export_cmd, library_cmd, media_cmd, prepare_cmd, serve_cmd, train_cmd  # noqa: F401  (registers the commands)
from .app import app


def main() -> None:
    """Console entry point: beatdance errors are printed as one clear message with exit status 2."""
    try:
        app()
    except BeatDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
