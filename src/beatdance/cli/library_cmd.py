"""``beatdance index`` and ``beatdance search``: build a library from a feature store and query it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..library import Library, LibraryConfig, SearchResult, build_library
from ..retrieval.search import SearchSettings
from .app import app

_DEFAULT = LibraryConfig().search


@app.command("index")
def index_command(
    data: Path = typer.Argument(..., help="Feature store from `beatdance prepare`."),
    out: Path = typer.Option(..., "--out", help="Library folder to create (or to add to, with --add)."),
    model: Path = typer.Option(None, "--model", help="Trained run folder or checkpoint (not needed with --add)."),
    add: bool = typer.Option(False, "--add", help="Add the clips of DATA that are not yet in the library OUT."),
    split: str = typer.Option(None, help="Index only this split of the store (default: every clip)."),
    index: str = typer.Option("flat", help="Vector index: flat (exact inner product), ivf or hnsw."),
    nlist: int = typer.Option(256, help="IVF lists."),
    nprobe: int = typer.Option(16, help="IVF lists probed per query."),
    querybank: str = typer.Option("library", help="QB-Norm querybank: 'library' (its own clips) or a split of DATA."),
    hubness: str = typer.Option("dis", help="Default hubness reducer of searches: none, is or dis."),
    beat_weight_head: float = typer.Option(_DEFAULT.beat_weight_head, help="Weight of the beat-head cosine in the search score."),
    beat_weight_align: float = typer.Option(_DEFAULT.beat_weight_align, help="Weight of the explicit beat-alignment score in the search score."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Embed every clip of a prepared feature store and write a searchable library. Example:

        beatdance index store/ --model runs/a --out lib/
    """
    config = None
    if not add:
        config = LibraryConfig(index=index, nlist=nlist, nprobe=nprobe, querybank=querybank,  # type: ignore[arg-type]
                               search=SearchSettings(hubness=hubness, beat_weight_head=beat_weight_head,  # type: ignore[arg-type]
                                                     beat_weight_align=beat_weight_align))
    report = build_library(data=data, out=out, model=model, split=split, config=config, add=add, show_progress=progress)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(f"library {report.library}: {report.items} items ({report.added} added, {report.already_indexed} "
                   f"already there), querybank {report.querybank}, {report.seconds:.1f} s")


def _span(start: float | None, duration: float | None) -> str:
    if start is None:
        return "-"
    return f"{start:.1f}-{start + (duration or 0):.1f} s"


def _bpm(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def print_result(result: SearchResult) -> None:
    """A ranked table of matches, titled with the query and its best window."""
    q = result.query
    source = q["clip_id"] or Path(str(q["file"])).name
    title = (f"{q['modality']} query {source} [{_span(q['start_s'], q['duration_s'])}, {_bpm(q['tempo_bpm'])} BPM] -> "
             f"{'dance' if result.direction == 'm2d' else 'music'} ({result.settings['hubness']}, {result.seconds * 1000:.0f} ms)")
    table = Table(title=title)
    for col in ("#", "item", "source", "span", "score", "similarity", "beat align", "BPM q/item"):
        table.add_column(col, justify="right" if col not in ("item", "source") else "left")
    for m in result.matches:
        table.add_row(str(m.rank), m.clip_id, Path(m.file).name if m.file else "-", _span(m.start_s, m.duration_s),
                      f"{m.score:.4g}", f"{m.similarity:.3f}", f"{m.beat_alignment:.3f}",
                      f"{_bpm(m.query_tempo_bpm)}/{_bpm(m.tempo_bpm)}")
    Console(width=160).print(table)


@app.command("search")
def search_command(
    library: Path = typer.Argument(..., help="Library folder from `beatdance index`."),
    music: Path = typer.Option(None, "--music", help="Music query file (audio, or a video's soundtrack): finds dances."),
    dance: Path = typer.Option(None, "--dance", help="Dance query (video, keypoints, Dance-with-Melody folder): finds music."),
    music_id: str = typer.Option(None, "--music-id", help="Query with the music of a library item."),
    dance_id: str = typer.Option(None, "--dance-id", help="Query with the dance of a library item."),
    start: float = typer.Option(0.0, "--start", help="Query span start in the file, seconds."),
    duration: float = typer.Option(None, "--duration", help="Query span length, seconds (default: to the end)."),
    hop: float = typer.Option(None, "--hop", help="Hop between query windows, seconds (default: half a window)."),
    top: int = typer.Option(10, "--top", help="Matches to list."),
    hubness: str = typer.Option(None, help="Override the library's hubness reducer (none, is, dis)."),
    candidates: int = typer.Option(None, help="Items re-ranked per query (default: the library's, 1000)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search a library with a music or dance file (or a library item). Example:

        beatdance search lib/ --music song.mp3 --top 10
    """
    lib = Library.open(library)
    result = lib.search(music=music, dance=dance, music_id=music_id, dance_id=dance_id, start_s=start, duration_s=duration,
                        hop_s=hop, top=top, settings=lib.settings(hubness=hubness, candidates=candidates))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_result(result)
