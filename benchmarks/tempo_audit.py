"""How far tempo and metre can identify a dance's partner on a prepared store: a ceiling for the rhythm cues.

    python benchmarks/tempo_audit.py [--store bench_out/store] [--energy] [--json out.json]

For every pair of the store (``make bench`` prepares the Dance-with-Melody one): the music's track tempo and
metre, the dance's dominant tempo as ``prepare`` stored it and as re-measured on its track tempogram (the
peak near that tempo, and the peak near the music-to-dance ratio times it, divided by the ratio), the
nearest ratio in ``PriorConfig.ratios`` and the deviation of dance tempo x ratio from the music tempo in
percent, for each estimate. When the estimates agree, the deviation is the pair's own (the dancer moves at
another speed than the recording), not a measurement error, and no tempo precision removes it.

Then, per style (from ``DANCE_<style>_<n>`` names; one class otherwise), how well tempo alone picks the
partner among the songs of the dance's style: the dance tempo times the style's most common ratio among
the *other* pairs of the style predicts the song's tempo, and the songs are ranked by distance to it in
log tempo. The partner's mean rank is printed beside chance.

``--energy`` adds, per pair, the Spearman correlation over its windows between the music's loudness (RMS,
dB) and the dance's mean joint speed: whether the windows of one pair could be told apart by how hard
the music and the dancer go at the same time (it decodes every window's audio: about a minute).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from beatdance.beats.dance import kinematic_beats
from beatdance.beats.rhythm import RhythmConfig, bin_tempo_bpm, tempo_axis_bpm
from beatdance.features.store import FeatureStore
from beatdance.media.audio import load_audio
from beatdance.media.keypoints import load_keypoints
from beatdance.media.limits import QueryLimits
from beatdance.model.prior import PriorConfig
from beatdance.pipeline.baselines import style_labels

REPO = Path(__file__).resolve().parents[1]
SEARCH_OCTAVES = 0.06  # a re-measured peak is searched this close to the expected tempo


def peak_near(tempogram: np.ndarray, *, bpm: float, rhythm: RhythmConfig) -> float:
    """Tempo of the highest bin of ``tempogram`` within ``SEARCH_OCTAVES`` of ``bpm``, refined by a parabola
    (``bin_tempo_bpm``); NaN when no bin is that close."""
    near = np.flatnonzero(np.abs(np.log2(tempo_axis_bpm(rhythm) / bpm)) <= SEARCH_OCTAVES)
    if near.size == 0:
        return float("nan")
    return bin_tempo_bpm(tempogram, int(near[np.argmax(tempogram[near])]), config=rhythm)


def pair_rows(store: FeatureStore) -> list[dict[str, Any]]:
    """One row per pair: tempos, metre, nearest ratio and the deviation of each dance-tempo estimate."""
    rhythm = RhythmConfig(**store.config.get("rhythm", {}))
    first: dict[str, str] = {}  # group -> its first clip, the only one read whole
    for clip_id in store.ids():
        first.setdefault(str(store.meta(clip_id).get("group", clip_id)), clip_id)
    styles = style_labels(sorted(first)) or ["all"] * len(first)
    rows = []
    for (group, clip_id), style in zip(sorted(first.items()), styles):
        record = store.get(clip_id)
        music_bpm, dance_bpm = float(record.meta["music_tempo_bpm"]), float(record.meta["dance_tempo_bpm"])
        ratio = min(PriorConfig.ratios, key=lambda r: abs(np.log2(music_bpm / dance_bpm / r)))
        tempogram = np.asarray(record.dance_rhythm)[1]
        estimates = {
            "stored": dance_bpm,
            "tempogram": peak_near(tempogram, bpm=dance_bpm, rhythm=rhythm),
            "tempogram x ratio": peak_near(tempogram, bpm=dance_bpm * ratio, rhythm=rhythm) / ratio,
        }
        rows.append(
            {
                "pair": group,
                "style": style,
                "music_bpm": music_bpm,
                "beats_per_bar": int(record.meta.get("music_beats_per_bar", 0) or 0),
                "ratio": ratio,
                "dance_bpm": estimates,
                "deviation_pct": {k: 100.0 * (v * ratio / music_bpm - 1.0) for k, v in estimates.items()},
            }
        )
    return rows


def tempo_ranks(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per style: the partner's mean 1-based rank among the style's songs when ranked by log-tempo distance to
    the stored dance tempo x the most common ratio of the style's other pairs, chance ((n + 1) / 2), and how
    many of the style's songs lie within 1 % of a song's tempo (itself included, mean over songs): songs no
    tempo reading can tell apart."""
    by_style: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_style[row["style"]].append(row)
    out = {}
    for style, members in sorted(by_style.items()):
        if len(members) < 2:
            continue
        music = np.log2([m["music_bpm"] for m in members])
        ranks = []
        for i, row in enumerate(members):
            others = Counter(m["ratio"] for j, m in enumerate(members) if j != i)
            predicted = np.log2(row["dance_bpm"]["stored"] * others.most_common(1)[0][0])
            distance = np.abs(music - predicted)
            ranks.append(1 + int((distance < distance[i]).sum()))
        close = (np.abs(music[:, None] - music[None, :]) <= np.log2(1.01)).sum(axis=1)
        out[style] = {
            "pairs": len(members),
            "mean_rank": float(np.mean(ranks)),
            "chance": (len(members) + 1) / 2,
            "songs_within_1pct": float(np.mean(close)),
        }
    return out


def energy_correlations(store: FeatureStore) -> dict[str, float]:
    """Per pair: Spearman correlation over its windows of music RMS (dB) and the dance's mean joint speed. The
    media files the store names are read within the query limits (``QueryLimits``), like any other input."""
    limits = QueryLimits()
    windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for clip_id in store.ids():
        meta = store.meta(clip_id)
        windows[str(meta.get("group", clip_id))].append(meta)
    out = {}
    for group, metas in sorted(windows.items()):
        if len(metas) < 3:
            continue
        beats = kinematic_beats(motion=load_keypoints(metas[0]["dance_file"], limits=limits))
        envelope, fps = np.asarray(beats.speed_envelope), beats.envelope_fps
        loudness, speed = [], []
        for meta in metas:
            duration = float(meta["duration_s"])
            start = float(meta["music_start_s"])
            y, _ = load_audio(meta["music_file"], sr=11025, start_s=start, duration_s=duration, limits=limits)
            loudness.append(10.0 * np.log10(float(np.mean(y.astype(np.float64) ** 2)) + 1e-12))
            a = int(round(float(meta["start_s"]) * fps))
            speed.append(float(np.mean(envelope[a : a + int(round(duration * fps))])))
        out[group] = float(spearmanr(loudness, speed).statistic)
    return out


def _print_tables(rows: list[dict[str, Any]], ranks: dict[str, dict[str, float]], energy: dict[str, float]) -> None:
    kinds = list(rows[0]["deviation_pct"])
    print("| pair | music BPM | beats/bar | ratio | dance BPM | " + " | ".join(f"dev % ({k})" for k in kinds) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(kinds))
    for row in rows:
        devs = " | ".join(f"{row['deviation_pct'][k]:+.1f}" for k in kinds)
        print(
            f"| {row['pair']} | {row['music_bpm']:.1f} | {row['beats_per_bar']} | {row['ratio']:g} | "
            f"{row['dance_bpm']['stored']:.1f} | {devs} |"
        )
    print(
        "\n| style | pairs | RMS deviation % (" + ", ".join(kinds) + ") | partner's mean rank by tempo | chance "
        "| songs within 1 % of a song's tempo |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for style, stat in ranks.items():
        devs = [[r["deviation_pct"][k] for r in rows if r["style"] == style] for k in kinds]
        rms = ", ".join(f"{np.sqrt(np.nanmean(np.square(d))):.1f}" for d in devs)
        print(
            f"| {style} | {stat['pairs']} | {rms} | {stat['mean_rank']:.2f} | {stat['chance']:.1f} "
            f"| {stat['songs_within_1pct']:.1f} |"
        )
    if energy:
        values = np.array(list(energy.values()))
        print(
            f"\nWithin-pair Spearman(music RMS, dance speed) over windows: mean {np.nanmean(values):+.2f}, "
            f"median {np.nanmedian(values):+.2f}, {int((values > 0).sum())} of {values.size} pairs positive."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=REPO / "bench_out" / "store")
    parser.add_argument("--energy", action="store_true", help="also the within-pair loudness/speed correlation")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here as JSON")
    args = parser.parse_args()
    if not (args.store / "store.json").is_file():
        print(f"no feature store at {args.store}: run `make bench` (it prepares one) or pass --store.")
        return 1
    store = FeatureStore.open(args.store)
    rows = pair_rows(store)
    ranks = tempo_ranks(rows)
    energy = energy_correlations(store) if args.energy else {}
    _print_tables(rows, ranks, energy)
    if args.json is not None:
        args.json.write_text(json.dumps({"pairs": rows, "tempo_ranks": ranks, "energy": energy}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
