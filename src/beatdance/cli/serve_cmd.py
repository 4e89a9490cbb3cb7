"""``beatdance serve``: the web page and JSON API over a library (uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app


@app.command("serve")
def serve_command(
    library: Path = typer.Argument(..., help="Library folder from `beatdance index`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest query upload accepted, megabytes."),
    cache_dir: Path = typer.Option(None, help="Folder for uploads being searched and rendered dances (default: a temporary one)."),
) -> None:
    """Serve a search page and a JSON API (schema at /openapi.json) over a library. Example:

        beatdance serve lib/ --port 8000   # then open http://127.0.0.1:8000/
    """
    import signal
    import sys

    import uvicorn

    from ..service import create_app

    web = create_app(library, max_upload_mb=max_upload_mb, cache_dir=cache_dir)
    typer.echo(f"serving {library} ({len(web.state.service.library)} items) on http://{host}:{port}/  (API schema: /openapi.json)")
    # uvicorn shuts down on SIGTERM, then raises the signal again: with the default handler that ends the process
    # at once, skipping the clean-up of the temporary cache folder. Exit normally instead (status 143, as killed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    uvicorn.run(web, host=host, port=port, log_level="info")
