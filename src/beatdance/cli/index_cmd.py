"""``beatdance index``: build a library from a feature store, or add to one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..library import LibraryConfig, build_library
from ..retrieval.scale import AUTO_FLAT_MAX_ITEMS
from ..retrieval.search import SearchSettings
from .app import app

_DEFAULT_LIB = LibraryConfig()
_DEFAULT = _DEFAULT_LIB.search


@app.command("index")
def index_command(
    data: Path = typer.Argument(..., help="Feature store from `beatdance prepare`."),
    out: Path = typer.Option(..., "--out", help="Library folder to create (or to add to, with --add)."),
    model: Path = typer.Option(None, "--model", help="Trained run folder or checkpoint (not needed with --add)."),
    add: bool = typer.Option(False, "--add", help="Add the clips of DATA that are not yet in the library OUT."),
    split: str = typer.Option(None, help="Index only this split of the store (default: every clip)."),
    index: str = typer.Option(
        "flat",
        help="Vector index: flat (exact), ivf, hnsw, ivfpq, opq-ivfpq (compressed codes, "
        "exact re-rank) or auto (flat for small libraries, ivfpq above "
        f"{AUTO_FLAT_MAX_ITEMS} items; the choice is printed).",
    ),
    nlist: int = typer.Option(_DEFAULT_LIB.nlist, help="IVF lists (auto: from the library size)."),
    nprobe: int = typer.Option(
        _DEFAULT_LIB.nprobe, help="IVF lists probed per query (0: a quarter of the lists, at least 16)."
    ),
    pq_m: int = typer.Option(_DEFAULT_LIB.pq_m, help="ivfpq/opq-ivfpq: bytes per item code (sub-quantisers)."),
    rerank_factor: int = typer.Option(
        _DEFAULT_LIB.rerank_factor, help="ivfpq/opq-ivfpq/hnsw: candidates re-scored exactly per wanted result."
    ),
    rerank_min: int = typer.Option(
        _DEFAULT_LIB.rerank_min, help="ivfpq/opq-ivfpq: re-score at least this many candidates per query."
    ),
    shards: int = typer.Option(_DEFAULT_LIB.shards, help="Index shards (consecutive rows), searched as one."),
    executor: str = typer.Option(
        "local",
        help="Where the shards are filled: local (this process) or ray (parallel Ray tasks; needs the [scale] extra).",
    ),
    ray_address: str = typer.Option(
        None,
        help="With --executor ray: the Ray cluster to join (HEAD:6379 or auto); "
        "without it a local Ray instance starts.",
    ),
    querybank_size: int = typer.Option(
        _DEFAULT_LIB.querybank_size, help="Bank queries sampled (fixed seed) to fit QB-Norm; 0: all of them."
    ),
    querybank: str = typer.Option("library", help="QB-Norm querybank: 'library' (its own clips) or a split of DATA."),
    hubness: str = typer.Option("dis", help="Default hubness reducer of searches: none, is or dis."),
    beat_weight_head: float = typer.Option(
        _DEFAULT.beat_weight_head, help="Weight of the beat-head cosine in the search score."
    ),
    beat_weight_align: float = typer.Option(
        _DEFAULT.beat_weight_align, help="Weight of the explicit beat-alignment score in the search score."
    ),
    device: str = typer.Option(
        "cpu",
        help="Torch device that embeds the clips: cpu, cuda, cuda:N or auto (CUDA when present); on CUDA the "
        "ivf/ivfpq/opq-ivfpq quantisers also train on that GPU if faiss has GPU support (the output says which).",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Embed every clip of a prepared feature store and write a searchable library. Example:

    beatdance index store/ --model runs/a --out lib/
    """
    from ..train.distributed import resolve_device

    torch_device = str(resolve_device(device))
    config = None
    if not add:
        config = LibraryConfig(
            index=index,  # type: ignore[arg-type]
            nlist=nlist,
            nprobe=nprobe,
            pq_m=pq_m,
            rerank_factor=rerank_factor,
            rerank_min=rerank_min,
            shards=shards,
            querybank=querybank,
            querybank_size=querybank_size,
            search=SearchSettings(
                hubness=hubness,  # type: ignore[arg-type]
                beat_weight_head=beat_weight_head,
                beat_weight_align=beat_weight_align,
            ),
        )
    report = build_library(
        data=data,
        out=out,
        model=model,
        split=split,
        config=config,
        add=add,
        show_progress=progress,
        executor=executor,  # type: ignore[arg-type]
        ray_address=ray_address,
        device=torch_device,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(
            f"library {report.library}: {report.items} items ({report.added} added, {report.already_indexed} "
            f"already there), querybank {report.querybank}, index {report.index}, {report.device}, "
            f"{report.seconds:.1f} s"
        )
