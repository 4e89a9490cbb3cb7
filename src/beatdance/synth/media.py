"""Synthetic music/dance pairs with ground-truth beats, and corpora of them on disk.

A pair is a song (:mod:`.audio`) and a dance on its beats in the matching style (:mod:`.motion`);
:mod:`.render` draws it as a video. Everything is reproducible from the seed.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import ParameterError
from ..media.types import Motion
from ..util import atomic_write_bytes, atomic_write_json, progress
from .audio import SynthMusic, synthesize_music
from .motion import synthesize_motion
from .render import render_video
from .styles import STYLES, check_bpm, check_meter, check_style

AUDIO_FORMATS = ("wav", "flac", "ogg")


@dataclass
class SynthPair:
    """A synthetic song and the dance to it, with the parameters they were made from."""

    music: SynthMusic
    motion: Motion
    bpm: float
    meter: str
    style: str
    seed: int
    duration_s: float

    def ground_truth(self) -> dict:
        """The beats and parameters as stored in ``pair_XXX.beats.json``."""
        return {
            "bpm": self.bpm,
            "meter": self.meter,
            "style": self.style,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "beat_times_s": self.music.beat_times_s.tolist(),
            "downbeat_times_s": self.music.downbeat_times_s.tolist(),
        }


def synthesize_pair(
    *,
    seed: int,
    bpm: float | None = None,
    meter: str | None = None,
    style: str | None = None,
    duration_s: float = 20.0,
    fps: float = 25,
    sr: int = 22050,
) -> SynthPair:
    """A song and its dance; ``style``, then ``meter`` and ``bpm`` (from the style's ranges) are drawn from ``seed`` when None."""
    rng = np.random.default_rng([seed, 1])
    style = sorted(STYLES)[int(rng.integers(len(STYLES)))] if style is None else style
    spec = check_style(style)
    meter = spec.meters[int(rng.integers(len(spec.meters)))] if meter is None else meter
    check_meter(meter)
    bpm = round(float(rng.uniform(*spec.bpm_range)), 1) if bpm is None else check_bpm(bpm)
    music = synthesize_music(bpm=bpm, meter=meter, style=style, duration_s=duration_s, sr=sr, seed=seed)
    motion = synthesize_motion(
        beat_times_s=music.beat_times_s,
        downbeat_times_s=music.downbeat_times_s,
        style=style,
        duration_s=duration_s,
        fps=fps,
        seed=seed,
    )
    return SynthPair(music=music, motion=motion, bpm=bpm, meter=meter, style=style, seed=seed, duration_s=duration_s)


def _npz_bytes(motion: Motion) -> bytes:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {
        "joints": motion.joints,
        "fps": np.float64(motion.fps),
        "skeleton": np.str_(motion.skeleton),
    }
    if motion.confidence is not None:
        arrays["confidence"] = motion.confidence
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _audio_bytes(music: SynthMusic, *, audio_format: str) -> bytes:
    buf = io.BytesIO()
    sf.write(
        buf, music.audio, music.sr, format=audio_format.upper(), subtype="PCM_16" if audio_format == "wav" else None
    )
    return buf.getvalue()


def write_corpus(
    *,
    out_dir: str | os.PathLike[str],
    num_pairs: int,
    seed: int,
    duration_s: float = 20.0,
    video: bool = True,
    audio_format: str = "wav",
    fps: float = 25,
    width: int = 320,
    height: int = 320,
    show_progress: bool = True,
) -> list[dict]:
    """Write ``num_pairs`` synthetic pairs into ``out_dir`` and return their records (also in ``corpus.json``).

    Per pair: ``pair_XXX.mp4`` (dancing figure with the song) when ``video``, else ``pair_XXX.<audio_format>``;
    always ``pair_XXX.npz`` (ground-truth keypoints: joints, fps, skeleton, confidence) and
    ``pair_XXX.beats.json`` (bpm, meter, style, beat and downbeat times). ``manifest.csv`` pairs music
    and dance (``music,dance,offset_s``) for ``beatdance prepare``. Pair ``i`` uses seed ``seed * 100003 + i``.
    """
    if num_pairs < 1:
        raise ParameterError(f"num_pairs={num_pairs} must be at least 1.")
    if audio_format not in AUDIO_FORMATS:
        raise ParameterError(f"audio_format={audio_format!r} is not supported. Expected one of {AUDIO_FORMATS}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for i in progress(range(num_pairs), desc="synth pairs", enabled=show_progress):
        name = f"pair_{i:03d}"
        pair = synthesize_pair(seed=seed * 100003 + i, duration_s=duration_s, fps=fps)
        record = {
            "id": name,
            **{k: v for k, v in pair.ground_truth().items() if not k.endswith("_times_s")},
            "keypoints": f"{name}.npz",
            "beats": f"{name}.beats.json",
        }
        if video:
            render_video(pair=pair, path=out / f"{name}.mp4", fps=fps, width=width, height=height)
            record.update(video=f"{name}.mp4", music=f"{name}.mp4", dance=f"{name}.mp4")
        else:
            atomic_write_bytes(out / f"{name}.{audio_format}", _audio_bytes(pair.music, audio_format=audio_format))
            record.update(audio=f"{name}.{audio_format}", music=f"{name}.{audio_format}", dance=f"{name}.npz")
        atomic_write_bytes(out / f"{name}.npz", _npz_bytes(pair.motion))
        atomic_write_json(out / f"{name}.beats.json", pair.ground_truth())
        records.append(record)
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(["music", "dance", "offset_s"])
    writer.writerows([r["music"], r["dance"], 0.0] for r in records)
    atomic_write_bytes(out / "manifest.csv", manifest.getvalue().encode())
    atomic_write_json(
        out / "corpus.json",
        {"seed": seed, "num_pairs": num_pairs, "duration_s": duration_s, "video": video, "fps": fps, "pairs": records},
    )
    return records
