"""Showing search results, and asking a running ``beatdance serve`` for them.

Only typer, rich and httpx are imported here: ``beatdance search --server URL`` loads this module and
nothing of torch or librosa, so a query costs a round trip to the warm service instead of several
seconds of start-up in a fresh process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import BeatDanceError, MediaError, ParameterError


def _span(start: float | None, duration: float | None) -> str:
    return "-" if start is None else f"{start:.1f}-{start + (duration or 0):.1f} s"


def _bpm(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _name(path: str | None) -> str:
    return Path(path).name if path else "-"


def print_search(result: dict[str, Any]) -> None:
    """A ranked table of matches, titled with the query and its best window.

    Takes ``SearchResult.to_dict()`` or the service's JSON (which names items ``id`` and files ``source``).
    """
    q = result["query"]
    source = q.get("clip_id") or _name(q.get("source"))
    target = "dance" if result["direction"] == "m2d" else "music"
    title = (
        f"{q['modality']} query {source} [{_span(q['start_s'], q['duration_s'])}, {_bpm(q['tempo_bpm'])} BPM] -> "
        f"{target} ({result['settings']['hubness']}, {result['seconds'] * 1000:.0f} ms)"
    )
    table = Table(title=title)
    for col in ("#", "item", "source", "span", "score", "similarity", "beat align", "BPM q/item"):
        table.add_column(col, justify="left" if col in ("item", "source") else "right")
    for m in result["matches"]:
        table.add_row(
            str(m["rank"]),
            m["id"],
            _name(m.get("source")),
            _span(m["start_s"], m["duration_s"]),
            f"{m['score']:.4g}",
            f"{m['similarity']:.3f}",
            f"{m['beat_alignment']:.3f}",
            f"{_bpm(m['query_tempo_bpm'])}/{_bpm(m['tempo_bpm'])}",
        )
    Console(width=160).print(table)


def search_server(
    *,
    server: str,
    music: Path | None = None,
    dance: Path | None = None,
    music_id: str | None = None,
    dance_id: str | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    top: int = 10,
    hubness: str | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """The search result (service JSON) for one query sent to ``beatdance serve`` at ``server``."""
    import httpx

    given = {"music": music, "dance": dance, "music_id": music_id, "dance_id": dance_id}
    chosen = [k for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise ParameterError(
            f"pass exactly one query (--music, --dance, --music-id or --dance-id); got {chosen or 'none'}."
        )
    url = server.rstrip("/") + "/api/search"
    extra: dict[str, Any] = {"hubness": hubness} if hubness else {}
    try:
        if music_id or dance_id:
            key = "music_id" if music_id else "dance_id"
            params: dict[str, Any] = {key: given[key], "top": top, **extra}
            response = httpx.get(url, params=params, timeout=timeout_s)
        else:
            path = Path(music or dance)  # type: ignore[arg-type]
            if not path.is_file():
                raise MediaError(f"{path}: no such file. Pass the path of a music or dance file.")
            form = {"modality": "music" if music else "dance", "top": str(top), "start_s": str(start_s), **extra}
            if duration_s is not None:
                form["duration_s"] = str(duration_s)
            with open(path, "rb") as fh:
                response = httpx.post(url, data=form, files={"file": (path.name, fh)}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise BeatDanceError(
            f"cannot reach the beatdance service at {server} ({exc}). Start it with "
            "`beatdance serve LIBRARY` or check --server."
        ) from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise BeatDanceError(f"the service at {server} answered {response.status_code}: {detail}")
    return response.json()
