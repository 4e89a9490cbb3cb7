"""``beatdance beats`` (tempo and beat times of a file) and ``beatdance synth`` (synthetic media)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import typer

from ..beats.dance import kinematic_beats
from ..beats.music import TRACKERS, MusicBeatConfig, Tracker, track_music_beats
from ..media.audio import load_audio, probe_media
from ..media.keypoints import load_keypoints
from ..media.pose import PoseEstimator
from ..media.video import read_video_frames
from ..pipeline.inputs import AUDIO_EXTS, KEYPOINT_EXTS, VIDEO_EXTS, is_dwm_folder
from ..plots import plot_beats
from ..synth.media import write_corpus
from .app import app


@app.command("beats")
def beats_command(
    file: Path = typer.Argument(
        ..., help="Music file, video (soundtrack and dance), keypoint file or Dance-with-Melody folder."
    ),
    pose_fps: float = typer.Option(15.0, help="Frames per second sampled from a video for pose estimation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG plot of the envelope(s) and beats (one per stream)."),
    tracker: str = typer.Option(MusicBeatConfig().tracker, help=f"Music beat tracker: {', '.join(TRACKERS)}."),
) -> None:
    """Print the tempo and beat times of a music file, a video's soundtrack and dance, or a keypoint file.

    A dance's tempo is given at two levels: the beat level (its step rate) and its dominant period
    (often one bar; the number stored with prepared features as the dance tempo). Music gets its beats
    per bar from madmom's downbeat network (the default tracker) and the bar-level tempo from them."""
    music_config = MusicBeatConfig(tracker=cast(Tracker, tracker))  # checked by MusicBeatConfig
    out: dict[str, dict] = {}
    ext = file.suffix.lower()
    if is_dwm_folder(file) or ext in KEYPOINT_EXTS:
        motion = load_keypoints(file)
        out["dance"] = {"beats": kinematic_beats(motion=motion)}
    elif ext in AUDIO_EXTS | VIDEO_EXTS:
        info = probe_media(file)
        if info.has_audio:
            y, sr = load_audio(file)
            out["music"] = {"beats": track_music_beats(y=y, sr=sr, config=music_config)}
        if info.has_video and ext in VIDEO_EXTS:
            frames, fps = read_video_frames(file, fps=pose_fps, max_side=480)
            with PoseEstimator() as est:
                out["dance"] = {"beats": kinematic_beats(motion=est.process(frames=frames, fps=fps, source=str(file)))}
    else:
        raise typer.BadParameter(
            f"{file}: unknown format {ext!r}; pass audio, video, keypoints or a Dance-with-Melody folder."
        )
    result: dict[str, dict[str, Any]] = {
        name: {
            "tempo_bpm": float(v["beats"].tempo_bpm),
            "beat_times_s": [round(float(t), 3) for t in v["beats"].times_s],
        }
        for name, v in out.items()
    }
    if "music" in result:
        music = out["music"]["beats"]
        result["music"].update(
            tracker=tracker,
            beats_per_bar=music.beats_per_bar,
            bar_tempo_bpm=float(music.bar_tempo_bpm),
            bar_contrasts={str(k): round(v, 3) for k, v in music.bar_contrasts.items()},
        )
    if "dance" in result:
        result["dance"].update(
            beat_tempo_bpm=float(out["dance"]["beats"].beat_tempo_bpm),
            bar_tempo_bpm=float(out["dance"]["beats"].bar_tempo_bpm),
        )
    if plot:
        for name, v in out.items():
            b = v["beats"]
            target = plot if len(out) == 1 else plot.with_name(f"{plot.stem}_{name}{plot.suffix}")
            env = getattr(b, "onset_envelope", None)
            if env is None:
                env = b.speed_envelope
            plot_beats(
                path=target,
                envelope=env,
                envelope_fps=b.envelope_fps,
                beat_times_s=b.times_s,
                tempo_bpm=b.tempo_bpm,
                title=f"{file.name}: {name} beats",
            )
            result[name]["plot"] = str(target)
    if as_json:
        typer.echo(json.dumps({"file": str(file), **result}, indent=2))
        return
    for name, r in result.items():
        times = ", ".join(f"{t:.2f}" for t in r["beat_times_s"][:16])
        more = " ..." if len(r["beat_times_s"]) > 16 else ""
        if name == "dance":
            beat = f"{r['beat_tempo_bpm']:.1f} BPM" if r["beat_tempo_bpm"] > 0 else "none found"
            tempo = f"beat level {beat}, dominant period (bar level) {r['bar_tempo_bpm']:.1f} BPM"
        else:
            tempo = f"beat level {r['tempo_bpm']:.1f} BPM ({r['tracker']} tracker), {_metre_text(r)}"
        typer.echo(f"{name}: {tempo}, {len(r['beat_times_s'])} beats at {times}{more} s")
        if "plot" in r:
            typer.echo(f"{name} plot written to {r['plot']}")


def _metre_text(music: dict[str, Any]) -> str:
    """The music's beats per bar and bar-level tempo, or why the metre is unknown."""
    if music["beats_per_bar"]:
        return f"{music['beats_per_bar']} beats per bar (bar level {music['bar_tempo_bpm']:.1f} BPM)"
    if music["tracker"] in ("checked", "madmom-metre"):
        return "metre unknown (the downbeats show no bars)"
    return "metre unknown (it needs the madmom-metre or checked tracker)"


@app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder for the corpus."),
    num: int = typer.Option(8, help="Number of music/dance pairs."),
    duration: float = typer.Option(20.0, help="Seconds per pair."),
    video: bool = typer.Option(True, help="Render MP4s with the audio muxed (else WAV + keypoint NPZ)."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Synthesize music (drums + tonal parts, 70-180 BPM, several metres and styles) with dances whose
    moves land on the beats, optionally rendered to MP4, plus ground-truth beats and a manifest."""
    items = write_corpus(out_dir=out, num_pairs=num, seed=seed, duration_s=duration, video=video)
    typer.echo(f"{len(items)} pairs -> {out} (corpus.json, manifest.csv, *.beats.json)")
