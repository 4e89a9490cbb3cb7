"""``beatdance export``: an MP4 of a dance with a piece of music shifted onto its beats."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..pipeline.export import export_pair
from .app import app


@app.command("export")
def export_command(
    music: Path = typer.Option(..., "--music", help="Music: an audio file, or a video whose soundtrack is used."),
    dance: Path = typer.Option(
        ..., "--dance", help="Dance: a video, a keypoint file (.npz/.csv/.pkl) or a Dance-with-Melody folder."
    ),
    out: Path = typer.Option(..., "--out", help="The MP4 to write (H.264 + AAC)."),
    music_start: float = typer.Option(0.0, "--music-start", help="Music time (s) to align from, before the shift."),
    dance_start: float = typer.Option(0.0, "--dance-start", help="Dance time (s) where the export begins."),
    duration: float = typer.Option(None, "--duration", help="Seconds to export [default: as long as both last]."),
    max_offset: float = typer.Option(2.0, "--max-offset", help="Largest shift of the music to try, in seconds."),
    fps: float = typer.Option(25.0, "--fps", help="Frame rate of the MP4."),
    plot: Path = typer.Option(None, "--plot", help="Also write a PNG of the beats before and after the shift."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Put MUSIC under DANCE so that the music's beats land on the dance beats.

    The music is shifted by up to --max-offset seconds to maximise beat alignment (BA), cut to the dance
    span and muxed under it. Keypoint and Dance-with-Melody dances are drawn as a stick figure.

    Example:

        beatdance export --music song.mp3 --dance dancer.mp4 --out synced.mp4 --duration 10 --plot beats.png
    """
    report = export_pair(
        music=music,
        dance=dance,
        out=out,
        music_start_s=music_start,
        dance_start_s=dance_start,
        duration_s=duration,
        max_offset_s=max_offset,
        fps=fps,
        plot=plot,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(f"wrote {report.out} ({report.duration_s:.2f} s, {report.dance_kind} dance) in {report.seconds:.1f} s")
    typer.echo(f"music starts at {report.music_start_s + report.offset_s:.3f} s (offset {report.offset_s:+.3f} s)")
    typer.echo(
        f"beat alignment {report.score_before:.3f} -> {report.score_after:.3f}; tempo music "
        f"{report.music_tempo_bpm:.1f} BPM, dance {report.dance_tempo_bpm:.1f} BPM"
    )
    if report.plot:
        typer.echo(f"plot: {report.plot}")
