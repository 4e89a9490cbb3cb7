"""``beatdance serve``: the web page and JSON API over a library (uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..media.limits import QueryLimits
from ..service.pool import PoolSettings
from .app import app

_POOL_HELP = "Extraction worker processes (default: the usable cores less one, at least 1)."


@app.command("serve")
def serve_command(
    library: Path = typer.Argument(..., help="Library folder from `beatdance index`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest query upload accepted, megabytes."),
    cache_dir: Path = typer.Option(
        None, help="Folder for uploads being searched and rendered dances (default: a temporary one)."
    ),
    workers: int = typer.Option(None, "--workers", help=_POOL_HELP),
    queue: int = typer.Option(
        PoolSettings.queue, "--queue", help="Uploads that may wait for a busy worker; more are answered 503."
    ),
    worker_memory_mb: float = typer.Option(
        PoolSettings.memory_mb, "--worker-memory-mb", help="Address-space cap of one worker, MB."
    ),
    worker_timeout_s: float = typer.Option(
        PoolSettings.timeout_s, "--worker-timeout-s", help="Longest one upload may be read, s."
    ),
    max_query_seconds: float = typer.Option(
        QueryLimits.max_seconds, "--max-query-seconds", help="Longest span of an upload that is read, s."
    ),
    max_video_pixel_frames: float = typer.Option(
        QueryLimits.max_video_pixel_frames,
        "--max-video-pixel-frames",
        help="Video budget of an upload: width × height × frames at the pose rate.",
    ),
    max_keypoint_values: int = typer.Option(
        QueryLimits.max_keypoint_values,
        "--max-keypoint-values",
        help="Most numbers an uploaded keypoint file may hold.",
    ),
    device: str = typer.Option("cpu", help="Torch device of the model: cpu, cuda, cuda:N or auto (CUDA when present)."),
) -> None:
    """Serve a search page and a JSON API (schema at /openapi.json) over a library. Example:

        beatdance serve lib/ --port 8000   # then open http://127.0.0.1:8000/

    Uploads are read by worker processes under the --worker-* caps and the --max-* query limits; a library
    rebuilt by `beatdance index --add` is picked up while serving (or at once with POST /api/reload).
    """
    import signal
    import sys

    import torch
    import uvicorn
    from threadpoolctl import threadpool_limits

    from ..service import create_app
    from ..service.pool import default_workers
    from ..train.distributed import resolve_device

    pool = PoolSettings(
        workers=workers or default_workers(), queue=queue, memory_mb=worker_memory_mb, timeout_s=worker_timeout_s
    )
    limits = QueryLimits(
        max_seconds=max_query_seconds,
        max_video_pixel_frames=max_video_pixel_frames,
        max_keypoint_values=max_keypoint_values,
    )
    # One request is small work for the server (the workers read the uploads): one thread per pool for the
    # process's life, as Library.search sets per query, instead of re-setting the pools on every request.
    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    web = create_app(
        library,
        max_upload_mb=max_upload_mb,
        cache_dir=cache_dir,
        pool=pool,
        limits=limits,
        device=str(resolve_device(device)),
    )
    typer.echo(
        f"serving {library} ({len(web.state.service.live.library)} items, {pool.workers} extraction workers) on "
        f"http://{host}:{port}/  (API schema: /openapi.json)"
    )
    # uvicorn shuts down on SIGTERM, then raises the signal again: with the default handler that ends the process
    # at once, skipping the clean-up of the temporary cache folder. Exit normally instead (status 143, as killed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    uvicorn.run(web, host=host, port=port, log_level="info")
