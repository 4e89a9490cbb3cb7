"""Music beat trackers at the right metrical level, and the dance's beat-level tempo, against known beats.

    python benchmarks/beat_trackers.py [--num 60] [--seed 0] [--duration 20] [--corpus DIR]
        [--trackers librosa,madmom,madmom-metre] [--waltzes 0] [--json out.json]

Songs: the synthetic pairs of ``beatdance synth --num 60 --seed 0`` (made in memory, or read from a
``--corpus`` folder that command wrote), whose beat grid is exact. For each ``MusicBeatConfig.tracker``
and each style: how many songs get the tempo at the annotated metrical level (within 4 %; else the
ratio is named: half, double, 2/3, ...), and the mean ``mir_eval`` beat F-measure (beats in the first
5 s ignored, mir_eval's default). Then the same trackers on the human-annotated excerpts of
``../shared/data/beat_annotated`` (plus librosa with its own defaults, for reference), the seconds each
tracker takes per 10 s of audio (models loaded beforehand), and the synthetic dances: how often the
dance's beat-level tempo (``DanceBeats.beat_tempo_bpm``) and its dominant period (``bar_tempo_bpm``) are
within 4 % of the song's tempo. ``--waltzes N`` also tracks 40 s of the first N Dance-with-Melody waltzes
(real ballroom recordings, about 84-90 BPM in 3/4) and counts tempi within 78-96 BPM.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import librosa
import mir_eval
import numpy as np

from beatdance.beats.dance import kinematic_beats
from beatdance.beats.music import TRACKERS, MusicBeatConfig, track_music_beats
from beatdance.media.audio import load_audio
from beatdance.media.keypoints import load_keypoints
from beatdance.media.types import Motion
from beatdance.synth.media import synthesize_pair

SHARED = Path(os.environ.get("BEATDANCE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ANNOTATED = {  # name: (audio, beats, mir_eval min_beat_time); the 2.8-s excerpt is too short to trim
    "GTZAN country.00000": ("gtzan/country.00000.wav", "gtzan/gtzan_country_00000.beats", 5.0),
    "madmom sample (2.8 s)": ("madmom_testdata/sample.wav", "madmom_testdata/sample.beats", 0.0),
}
TOLERANCE = 0.04
RATIOS = {"1/3": 1 / 3, "1/2": 0.5, "2/3": 2 / 3, "3/2": 1.5, "2": 2.0, "3": 3.0}


@dataclass
class Song:
    name: str
    style: str
    meter: str
    bpm: float
    y: np.ndarray
    sr: int
    beats_s: np.ndarray
    motion: Motion


def synth_songs(*, num: int, seed: int, duration_s: float, corpus: Path | None) -> list[Song]:
    """The pairs of ``beatdance synth --num num --seed seed`` (seeds as in ``write_corpus``)."""
    if corpus is not None:
        songs = []
        for rec in json.loads((corpus / "corpus.json").read_text())["pairs"][:num]:
            truth = json.loads((corpus / rec["beats"]).read_text())
            y, sr = load_audio(corpus / rec["music"], sr=22050)
            songs.append(
                Song(
                    rec["id"],
                    truth["style"],
                    truth["meter"],
                    float(truth["bpm"]),
                    y,
                    sr,
                    np.asarray(truth["beat_times_s"]),
                    load_keypoints(corpus / rec["keypoints"]),
                )
            )
        return songs
    songs = []
    for i in range(num):
        pair = synthesize_pair(seed=seed * 100003 + i, duration_s=duration_s)
        songs.append(
            Song(
                f"pair_{i:03d}",
                pair.style,
                pair.meter,
                pair.bpm,
                pair.music.audio,
                pair.music.sr,
                pair.music.beat_times_s,
                pair.motion,
            )
        )
    return songs


def level(tempo_bpm: float, truth_bpm: float) -> str:
    """ "right" when within 4 % of the truth, else the simple ratio it is within 4 % of, else "other"."""
    ratio = tempo_bpm / truth_bpm
    if abs(ratio - 1) <= TOLERANCE:
        return "right"
    return next((name for name, r in RATIOS.items() if abs(ratio / r - 1) <= TOLERANCE), "other")


def f_measure(reference: np.ndarray, estimate: np.ndarray, min_beat_time: float = 5.0) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about empty estimates
        return float(mir_eval.beat.evaluate(reference, estimate, min_beat_time=min_beat_time)["F-measure"])


def music_table(songs: list[Song], trackers: list[str]) -> tuple[list[str], dict]:
    lines = [
        "| tracker | style | songs | tempo at the right level | other levels | mean beat F | min beat F |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict = {}
    audio_s = sum(s.y.size / s.sr for s in songs)
    for tracker in trackers:
        config = MusicBeatConfig(tracker=tracker)
        track_music_beats(y=songs[0].y, sr=songs[0].sr, config=config)  # load models, compile kernels
        by_style: dict[str, list[tuple[str, float]]] = defaultdict(list)
        bars: dict[str, Counter] = defaultdict(Counter)
        t0 = time.perf_counter()
        for song in songs:
            beats = track_music_beats(y=song.y, sr=song.sr, config=config)
            by_style[song.style].append((level(beats.tempo_bpm, song.bpm), f_measure(song.beats_s, beats.times_s)))
            bars[song.meter][beats.beats_per_bar] += 1
        seconds_per_10s = 10.0 * (time.perf_counter() - t0) / audio_s
        for style in sorted(by_style) + ["all"]:
            rows = [r for s in sorted(by_style) for r in by_style[s]] if style == "all" else by_style[style]
            levels = defaultdict(int)
            for lv, _ in rows:
                levels[lv] += 1
            others = ", ".join(f"{n} at {lv}" for lv, n in sorted(levels.items()) if lv != "right") or "-"
            fs = [f for _, f in rows]
            lines.append(
                f"| {tracker} | {style} | {len(rows)} | {levels['right']} | {others} | {np.mean(fs):.3f} | "
                f"{np.min(fs):.3f} |"
            )
        summary[tracker] = {
            "right_level": sum(lv == "right" for rows in by_style.values() for lv, _ in rows),
            "songs": len(songs),
            "seconds_per_10s_audio": seconds_per_10s,
            "mean_f_by_style": {s: float(np.mean([f for _, f in r])) for s, r in by_style.items()},
            "beats_per_bar_by_meter": {m: dict(c) for m, c in bars.items()},
        }
    return lines, summary


def metre_table(summary: dict, title: str) -> list[str]:
    """Beats per bar found (0: unknown) for each true metre or style, per tracker that reads downbeats."""
    lines = [f"| tracker | {title} | songs | beats per bar found |", "|---|---|---|---|"]
    for tracker, v in summary.items():
        for key, counts in sorted(v["beats_per_bar_by_meter"].items()):
            if tracker in ("librosa", "madmom") and set(counts) == {0}:
                continue  # no downbeat network
            found = ", ".join(f"{n} x {k or 'unknown'}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"| {tracker} | {key} | {sum(counts.values())} | {found} |")
    return lines


def danced_audio(folder: Path, *, duration_s: float) -> tuple[np.ndarray, int]:
    """The first ``duration_s`` of a Dance-with-Melody song's danced part (where ``prepare`` cuts it), at 22.05 kHz."""
    start_s = json.loads((folder / "config.json").read_text())["start_position"] / 25.0
    return load_audio(folder / "audio.mp3", sr=22050, start_s=start_s, duration_s=duration_s)


def dwm_metre(trackers: list[str], *, duration_s: float = 60.0) -> dict:
    """Beats per bar of every Dance-with-Melody song (its first ``duration_s`` danced), by style letter."""
    summary: dict = {}
    folders = sorted((SHARED / "dance_with_melody").glob("DANCE_*"))
    for tracker in trackers:
        counts: dict[str, Counter] = defaultdict(Counter)
        for folder in folders:
            y, sr = danced_audio(folder, duration_s=duration_s)
            style = folder.name.split("_")[1]
            counts[style][track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker=tracker)).beats_per_bar] += 1
        summary[tracker] = {"beats_per_bar_by_meter": {s: dict(c) for s, c in counts.items()}}
    return summary


def annotated_table(trackers: list[str]) -> tuple[list[str], dict]:
    root = SHARED / "beat_annotated"
    if not root.is_dir():
        return [f"({root} not found: human-annotated excerpts skipped)"], {}
    lines = [
        "| tracker | " + " | ".join(f"{name} F (tempo)" for name in ANNOTATED) + " |",
        "|---|" + "---|" * len(ANNOTATED),
    ]
    summary: dict = {}
    for tracker in ["librosa (library defaults)"] + trackers:
        cells = []
        for name, (wav, ann, min_beat_time) in ANNOTATED.items():
            y, sr = load_audio(root / wav, sr=22050)
            reference = np.loadtxt(root / ann, usecols=0, ndmin=1)
            if tracker in TRACKERS:
                beats = track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker=tracker))
                est, tempo = beats.times_s, beats.tempo_bpm
            else:
                tempo_arr, est = librosa.beat.beat_track(y=y, sr=sr, units="time")
                tempo = float(np.atleast_1d(tempo_arr)[0])
            f = f_measure(reference, est, min_beat_time)
            summary.setdefault(tracker, {})[name] = f
            cells.append(f"{f:.3f} ({tempo:.1f})")
        lines.append(f"| {tracker} | " + " | ".join(cells) + " |")
    return lines, summary


def waltz_table(n: int, trackers: list[str]) -> list[str]:
    root = SHARED / "dance_with_melody"
    folders = sorted(root.glob("DANCE_W_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))[:n]
    if not folders:
        return [f"({root} not found: waltzes skipped)"]
    lines = ["| tracker | waltzes within 78-96 BPM | tempi (BPM) |", "|---|---|---|"]
    clips = [danced_audio(folder, duration_s=40.0) for folder in folders]
    for tracker in trackers:
        tempi = [track_music_beats(y=y, sr=sr, config=MusicBeatConfig(tracker=tracker)).tempo_bpm for y, sr in clips]
        inside = sum(78.0 <= t <= 96.0 for t in tempi)
        lines.append(f"| {tracker} | {inside} / {len(tempi)} | {', '.join(f'{t:.0f}' for t in tempi)} |")
    return lines


def dance_table(songs: list[Song]) -> tuple[list[str], dict]:
    lines = [
        "| style | dances | beat-level tempo within 4 % of the song | dominant period (bar level) within 4 % | "
        "dominant period / song tempo |",
        "|---|---|---|---|---|",
    ]
    by_style: dict[str, list[tuple[bool, bool, float]]] = defaultdict(list)
    for song in songs:
        beats = kinematic_beats(motion=song.motion)
        by_style[song.style].append(
            (
                level(beats.beat_tempo_bpm, song.bpm) == "right",
                level(beats.bar_tempo_bpm, song.bpm) == "right",
                beats.bar_tempo_bpm / song.bpm,
            )
        )
    for style in sorted(by_style) + ["all"]:
        rows = [r for s in sorted(by_style) for r in by_style[s]] if style == "all" else by_style[style]
        ratios = sorted({f"{r:.2f}" for _, _, r in rows})
        lines.append(
            f"| {style} | {len(rows)} | {sum(b for b, _, _ in rows)} | {sum(d for _, d, _ in rows)} | "
            f"{', '.join(ratios) if style != 'all' else ''} |"
        )
    total = [r for rows in by_style.values() for r in rows]
    return lines, {
        "beat_level_right": sum(b for b, _, _ in total),
        "bar_level_right": sum(d for _, d, _ in total),
        "dances": len(total),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=60, help="number of synthetic songs")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed, as in `beatdance synth --seed`")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per song")
    ap.add_argument("--corpus", type=Path, default=None, help="read a `beatdance synth` folder instead of synthesizing")
    ap.add_argument("--trackers", default=",".join(TRACKERS), help="comma-separated MusicBeatConfig.tracker values")
    ap.add_argument("--waltzes", type=int, default=0, help="also track this many Dance-with-Melody waltzes")
    ap.add_argument("--metre-dwm", action="store_true", help="also find the beats per bar of the 32 real songs")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = ap.parse_args()
    trackers = [t for t in args.trackers.split(",") if t]
    t0 = time.perf_counter()
    songs = synth_songs(num=args.num, seed=args.seed, duration_s=args.duration, corpus=args.corpus)
    music_lines, music = music_table(songs, trackers)
    print(f"## Synthetic songs ({len(songs)}, seed {args.seed}): music tempo level and beat F\n")
    print("\n".join(music_lines))
    speeds = ", ".join(f"{t} {v['seconds_per_10s_audio']:.3f}" for t, v in music.items())
    print(f"\nseconds per 10 s of audio: {speeds}")
    annotated_lines, annotated = annotated_table(trackers)
    print("\n## Human-annotated excerpts (../shared/data/beat_annotated): beat F (tempo in BPM)\n")
    print("\n".join(annotated_lines))
    print(f"\n## Synthetic songs ({len(songs)}): beats per bar from the downbeats, by true metre\n")
    print("\n".join(metre_table(music, "metre")))
    dwm = dwm_metre(trackers) if args.metre_dwm else {}
    if dwm:
        print("\n## Dance-with-Melody songs (real; W waltz 3/4, R rumba, C cha-cha, T tango 4/4): beats per bar\n")
        print("\n".join(metre_table(dwm, "style")))
    if args.waltzes:
        print("\n## Dance-with-Melody waltzes (real, about 84-90 BPM): music tempo\n")
        print("\n".join(waltz_table(args.waltzes, trackers)))
    dance_lines, dance = dance_table(songs)
    print(f"\n## Synthetic dances ({len(songs)}): dance tempo against the song's\n")
    print("\n".join(dance_lines))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"music": music, "annotated": annotated, "dance": dance, "dwm_metre": dwm}, indent=2)
        )


if __name__ == "__main__":
    main()
