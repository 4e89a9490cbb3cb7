"""``beatdance warmup``: compile librosa's numba kernels and build matplotlib's font cache once."""

from __future__ import annotations

import typer

from ..jitcache import cache_dir, ensure_kernels
from .app import app


@app.command("warmup")
def warmup_command() -> None:
    """Compile librosa's numba kernels into one cache folder (NUMBA_CACHE_DIR) and build matplotlib's font cache,
    so that worker processes only load them. Only the hpss option of the music beat settings uses librosa; it
    does this itself when the cache is new, changed or corrupt."""
    ensure_kernels()
    typer.echo(f"librosa's kernels are compiled and verified in {cache_dir()}")
