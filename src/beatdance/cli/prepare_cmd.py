"""``beatdance prepare``: raw media pairs -> a feature store that `train`, `evaluate` and `index` read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import typer

from ..beats.dance import DanceBeatConfig
from ..beats.music import TRACKERS, MusicBeatConfig, Tracker
from ..features.convert import export_official, import_official
from ..features.store import FeatureStore
from ..pipeline.prepare import PrepareConfig, prepare
from .app import app


@app.command("prepare")
def prepare_command(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Videos with soundtracks, manifest CSVs (music,dance,offset_s), Dance-with-Melody folders, or folders of these.",
    ),
    out: Path = typer.Option(..., "--out", help="Feature store folder (created, or completed when it exists)."),
    window: float = typer.Option(10.0, help="Window length in seconds."),
    hop: float = typer.Option(10.0, help="Seconds between window starts (less than --window overlaps)."),
    music_encoder: str = typer.Option(
        "audio-mel", help="Music encoder: audio-mel (built in) or mert (needs --music-encoder-dir)."
    ),
    dance_encoder: str = typer.Option(
        "pose", help="Dance encoder: pose (built in) or clip (needs --dance-encoder-dir; video only)."
    ),
    music_encoder_dir: Path = typer.Option(None, help="Local folder of the pretrained music encoder's weights."),
    dance_encoder_dir: Path = typer.Option(None, help="Local folder of the pretrained dance encoder's weights."),
    start_bpm: float = typer.Option(
        MusicBeatConfig().start_bpm, help="Tempo prior centre of the librosa beat tracker (BPM)."
    ),
    tracker: str = typer.Option(MusicBeatConfig().tracker, help=f"Music beat tracker: {', '.join(TRACKERS)}."),
    pose_fps: float = typer.Option(15.0, help="Frames per second sampled from videos for pose estimation."),
    workers: int = typer.Option(
        None,
        help="Parallel worker processes (default 1). With --executor ray: the Ray actors and "
        "the CPUs of a local Ray instance (default: one actor per CPU of the cluster; "
        "a local instance gets all usable cores).",
    ),
    executor: str = typer.Option(
        "local",
        help="Where pairs are processed: local (this machine, --workers processes) "
        "or ray (Ray actors; needs Ray, the package's scale extra).",
    ),
    ray_address: str = typer.Option(
        None,
        help="With --executor ray: the Ray cluster to join (HEAD:6379, or auto on a "
        "node of it); the store and inputs must be on a filesystem every node "
        "sees. Without it a local Ray instance starts.",
    ),
    seed: int = typer.Option(0, help="Seed of the train/val/test split (split by pair)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Cut each music/dance pair into aligned windows, extract music beats (--tracker), dance beats
    (kinematic, from MediaPipe pose or motion capture) and per-frame features, and write them to a
    feature store. Re-running skips finished clips; bad inputs are listed with the reason.

        beatdance prepare ../shared/data/dance_with_melody --out dwm_store --workers 2
        beatdance prepare /shared/media --out /shared/store --executor ray --ray-address auto
    """
    music_opts = {"model_dir": str(music_encoder_dir)} if music_encoder_dir else {}
    dance_opts = {"model_dir": str(dance_encoder_dir)} if dance_encoder_dir else {}
    config = PrepareConfig(
        window_s=window,
        hop_s=hop,
        pose_fps=pose_fps,
        music_encoder=music_encoder,
        dance_encoder=dance_encoder,
        music_encoder_options=music_opts,
        dance_encoder_options=dance_opts,
        music_beats=MusicBeatConfig(start_bpm=start_bpm, tracker=cast(Tracker, tracker)),
        dance_beats=DanceBeatConfig(),
    )
    report = prepare(
        inputs=[str(p) for p in inputs],
        out=out,
        config=config,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        seed=seed,
        show_progress=progress,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(
        f"{report.pairs} pairs: {report.clips_written} clips written, {report.clips_existing} already done -> {out}"
    )
    for item in report.skipped:
        typer.echo(f"  skipped {item['input']}: {item['reason']}")


@app.command("export-official")
def export_official_command(
    store: Path = typer.Argument(..., help="Feature store folder."),
    out: Path = typer.Argument(..., help="Folder to write in the official BeatDance layout (.pt files + split lists)."),
) -> None:
    """Export a feature store to the official BeatDance layout (readable by the official code)."""
    export_official(FeatureStore.open(store), out)
    typer.echo(f"exported {store} -> {out}")


@app.command("import-official")
def import_official_command(
    root: Path = typer.Argument(..., help="Folder in the official BeatDance layout."),
    store: Path = typer.Argument(..., help="Feature store folder to create."),
) -> None:
    """Import a dataset in the official BeatDance layout into a feature store (read with weights_only=True)."""
    import_official(root, store)
    typer.echo(f"imported {root} -> {store}")
