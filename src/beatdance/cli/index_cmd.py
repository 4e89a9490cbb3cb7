"""``beatdance index``: build a library from a feature store, or add to one."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from ..library import LibraryConfig, build_library
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
