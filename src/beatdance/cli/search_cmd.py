"""``beatdance search``: query a library here, or a running ``beatdance serve`` with ``--server``.

Only light modules are imported at the top, so that ``--server`` never loads torch or librosa.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..media.limits import QueryLimits
from .app import app
from .client import print_search, search_server


@app.command("search")
def search_command(
    library: Path = typer.Argument(None, help="Library folder from `beatdance index` (not needed with --server)."),
    music: Path = typer.Option(
        None, "--music", help="Music query file (audio, or a video's soundtrack): finds dances."
    ),
    dance: Path = typer.Option(
        None, "--dance", help="Dance query (video, keypoints, Dance-with-Melody folder): finds music."
    ),
    music_id: str = typer.Option(None, "--music-id", help="Query with the music of a library item."),
    dance_id: str = typer.Option(None, "--dance-id", help="Query with the dance of a library item."),
    start: float = typer.Option(0.0, "--start", help="Query span start in the file, seconds."),
    duration: float = typer.Option(None, "--duration", help="Query span length, seconds (default: to the end)."),
    hop: float = typer.Option(None, "--hop", help="Hop between query windows, seconds (default: half a window)."),
    top: int = typer.Option(10, "--top", help="Matches to list."),
    hubness: str = typer.Option(None, help="Override the library's hubness reducer (none, is, dis)."),
    candidates: int = typer.Option(None, help="Items re-ranked per query (default: the library's, 1000)."),
    server: str = typer.Option(
        None, "--server", help="URL of a running `beatdance serve` to ask instead of loading LIBRARY."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    max_query_seconds: float = typer.Option(
        None, "--max-query-seconds", help=f"Longest query span to read, s (default {QueryLimits.max_seconds:g})."
    ),
    max_video_pixel_frames: float = typer.Option(
        None,
        "--max-video-pixel-frames",
        help=f"Video budget: width × height × frames at the pose rate (default {QueryLimits.max_video_pixel_frames:g}).",
    ),
    max_keypoint_values: int = typer.Option(
        None,
        "--max-keypoint-values",
        help=f"Most numbers in a keypoint file (default {QueryLimits.max_keypoint_values}).",
    ),
) -> None:
    """Search a library with a music or dance file (or a library item). Examples:

    beatdance search lib/ --music song.mp3 --top 10
    beatdance search --server http://127.0.0.1:8000 --dance dancer.mp4
    """
    caps: dict[str, Any] = {
        "max_seconds": max_query_seconds,
        "max_video_pixel_frames": max_video_pixel_frames,
        "max_keypoint_values": max_keypoint_values,
    }
    caps = {k: v for k, v in caps.items() if v is not None}
    if server:
        if hop is not None or candidates is not None or caps:
            raise typer.BadParameter(
                "--hop, --candidates and the --max-* limits are settings of a local search; drop "
                "them with --server (the server's limits are options of `beatdance serve`)."
            )
        result = search_server(
            server=server,
            music=music,
            dance=dance,
            music_id=music_id,
            dance_id=dance_id,
            start_s=start,
            duration_s=duration,
            top=top,
            hubness=hubness,
        )
    else:
        if library is None:
            raise typer.BadParameter("pass a LIBRARY folder, or --server URL of a running `beatdance serve`.")
        from ..library import Library

        lib = Library.open(library)
        result = lib.search(
            music=music,
            dance=dance,
            music_id=music_id,
            dance_id=dance_id,
            start_s=start,
            duration_s=duration,
            hop_s=hop,
            top=top,
            limits=QueryLimits(**caps),
            settings=lib.settings(hubness=hubness, candidates=candidates),
        ).to_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_search(result)
