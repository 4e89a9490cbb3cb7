"""``beatdance prepare``: media pairs -> aligned windows -> beats + features -> feature store.

For each pair the whole music and the whole dance are analysed once (beats need context), then cut
into windows of ``window_s`` seconds every ``hop_s`` seconds over the span where both exist. A window
whose clip is already in the store is not recomputed, and a pair whose every window is done is not
even decoded, so killing a run and starting it again loses nothing and redoes nothing. Bad inputs are
skipped, recorded in the store's report with the reason, and the batch goes on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np

from ..beats.dance import DanceBeatConfig
from ..beats.music import MusicBeatConfig
from ..beats.rhythm import RhythmConfig
from ..encoders.registry import Encoder
from ..errors import BeatDanceError, DataError, MediaError, ParameterError
from ..features.store import FeatureStore
from ..media.audio import probe_media
from ..util import progress
from .executors import map_unordered
from .extract import (
    DanceTrack,
    MusicTrack,
    RhythmContext,
    WindowSkipped,
    analyse_dance,
    analyse_music,
    dance_window,
    get_encoder,
    music_window,
    rhythm_context,
)
from .inputs import PairSpec, discover_pairs


@dataclass
class PrepareConfig:
    """Every setting that changes what ``prepare`` writes; saved in the store and checked on reuse."""

    window_s: float = 10.0
    hop_s: float = 10.0
    sr: int = 22050
    grid_fps: float = 10.0
    pose_fps: float = 15.0
    max_side: int = 480
    min_person_ratio: float = 0.6
    music_encoder: str = "audio-mel"
    dance_encoder: str = "pose"
    music_encoder_options: dict[str, Any] = field(default_factory=dict)
    dance_encoder_options: dict[str, Any] = field(default_factory=dict)
    music_beats: MusicBeatConfig = field(default_factory=MusicBeatConfig)
    dance_beats: DanceBeatConfig = field(default_factory=DanceBeatConfig)
    rhythm: RhythmConfig | None = field(default_factory=RhythmConfig)

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.hop_s <= 0:
            raise ParameterError(f"window_s={self.window_s} and hop_s={self.hop_s} must be positive seconds.")
        if abs(self.window_s * self.grid_fps - round(self.window_s * self.grid_fps)) > 1e-6:
            raise ParameterError(
                f"window_s * grid_fps = {self.window_s * self.grid_fps} must be a whole number of grid frames."
            )

    def store_config(self) -> dict[str, Any]:
        """The store's config: these settings plus the full config of both encoders."""
        music, dance = _encoders(self)
        cfg = asdict(self)
        cfg["music_beats"] = self.music_beats.to_dict()
        cfg["dance_beats"] = self.dance_beats.to_dict()
        cfg["rhythm"] = None if self.rhythm is None else self.rhythm.to_dict()
        cfg["music_encoder_config"] = music.config()
        cfg["dance_encoder_config"] = dance.config()
        return cfg

    @classmethod
    def from_store_config(cls, cfg: dict[str, Any], *, source: str) -> PrepareConfig:
        """The settings a store (or a library built from one) was prepared with, to extract queries alike."""
        names = {f.name for f in fields(cls)} - {"rhythm"}  # stores from before rhythm features have none
        if not names <= set(cfg):
            raise DataError(
                f"{source} was not made by `beatdance prepare` from media (no extractor settings: missing "
                f"{sorted(names - set(cfg))}), so new media cannot be extracted like it. "
                "Query with clips already in it, or build it from media with `beatdance prepare`."
            )
        kw = {k: cfg[k] for k in names}
        kw["music_beats"] = MusicBeatConfig.from_dict(kw["music_beats"])
        kw["dance_beats"] = DanceBeatConfig(**kw["dance_beats"])
        kw["rhythm"] = RhythmConfig(**cfg["rhythm"]) if cfg.get("rhythm") else None
        return cls(**kw)


def _encoders(cfg: PrepareConfig) -> tuple[Encoder, Encoder]:
    return (
        get_encoder(cfg.music_encoder, cfg.music_encoder_options, modality="music"),
        get_encoder(cfg.dance_encoder, cfg.dance_encoder_options, modality="dance"),
    )


def clip_id(pair_id: str, start_s: float) -> str:
    """Stable id of the window of ``pair_id`` starting at dance time ``start_s``."""
    return f"{pair_id}__{int(round(start_s * 1000)):08d}"


def window_starts(
    *, dance_duration_s: float, music_duration_s: float, offset_s: float, window_s: float, hop_s: float
) -> list[float]:
    """Dance-time starts of the windows lying where both dance and music (shifted by offset) exist."""
    lo = max(0.0, -offset_s)
    hi = min(dance_duration_s, music_duration_s - offset_s)
    if hi - lo < window_s - 1e-6:
        return []
    n = int(np.floor((hi - lo - window_s) / hop_s + 1e-6)) + 1
    return [round(lo + i * hop_s, 6) for i in range(n)]


@dataclass
class PairResult:
    pair_id: str
    written: int = 0
    existing: int = 0
    skipped_windows: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None


def process_pair(spec: PairSpec, *, cfg: PrepareConfig, store_path: str) -> PairResult:
    """Analyse one pair and write its missing windows to the store (runs in a worker process).

    BLAS runs on one thread: its sums then come out the same however many threads a process would get (Ray
    gives an actor one, a pool process the machine's cores), so every executor writes the same bytes."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _extract_pair(spec, cfg=cfg, store_path=store_path)


@dataclass
class _PairContext:
    """A pair's whole-track analyses, computed once and cut into windows."""

    music: MusicTrack
    dance: DanceTrack
    music_rhythm: RhythmContext | None
    dance_rhythm: RhythmContext | None


def _put_window(
    store: FeatureStore,
    spec: PairSpec,
    cfg: PrepareConfig,
    context: _PairContext,
    *,
    start_s: float,
    offset_s: float,
    encoders: tuple[Encoder, Encoder],
) -> str | None:
    """Cut, encode and store the window of the dance at ``start_s`` (music at ``start_s + offset_s``); the reason
    when the window is skipped (e.g. nobody in the picture), else None."""
    music, dance = context.music, context.dance
    music_start_s = start_s + offset_s
    try:
        mw = music_window(
            music,
            start_s=music_start_s,
            window_s=cfg.window_s,
            grid_fps=cfg.grid_fps,
            encoder=encoders[0],
            rhythm=context.music_rhythm,
        )
        dw = dance_window(
            dance,
            start_s=start_s,
            window_s=cfg.window_s,
            grid_fps=cfg.grid_fps,
            encoder=encoders[1],
            min_person_ratio=cfg.min_person_ratio,
            rhythm=context.dance_rhythm,
        )
    except WindowSkipped as why:
        return str(why)
    store.put(
        clip_id(spec.pair_id, start_s),
        music=mw.features,
        dance=dw.features,
        music_beat=mw.beat_grid,
        dance_beat=dw.beat_grid,
        music_beat_times=mw.beat_times_s,
        dance_beat_times=dw.beat_times_s,
        music_rhythm=mw.rhythm,
        dance_rhythm=dw.rhythm,
        meta={
            "group": spec.pair_id,
            "music_file": spec.music,
            "dance_file": spec.dance,
            "dance_kind": spec.dance_kind,
            "start_s": start_s,
            "music_start_s": music_start_s,
            "duration_s": cfg.window_s,
            "music_tempo_bpm": float(music.beats.tempo_bpm),
            "dance_tempo_bpm": float(dance.beats.tempo_bpm),
            "music_beats_per_bar": music.beats.beats_per_bar,
            "music_bar_contrasts": {str(k): v for k, v in music.beats.bar_contrasts.items()},
        },
    )
    return None


def _extract_pair(spec: PairSpec, *, cfg: PrepareConfig, store_path: str) -> PairResult:
    store = FeatureStore.open(store_path)
    result = PairResult(pair_id=spec.pair_id)
    try:
        encoders = _encoders(cfg)
        music_info = probe_media(spec.music)
        if not music_info.has_audio:
            raise MediaError(f"{spec.music}: no audio stream, so there is no music. Pass a file with a soundtrack.")
        dance = analyse_dance(
            spec.dance,
            kind=spec.dance_kind,  # type: ignore[arg-type]
            beat_config=cfg.dance_beats,
            pose_fps=cfg.pose_fps,
            max_side=cfg.max_side,
            min_person_ratio=cfg.min_person_ratio,
        )
        offset = spec.offset_s + dance.music_offset_s
        if music_info.duration_s is None:
            raise MediaError(
                f"{spec.music}: the file does not declare its duration, so its windows cannot be placed. "
                "Re-encode it into a container that does (e.g. WAV, FLAC or MP4)."
            )
        starts = window_starts(
            dance_duration_s=dance.duration_s,
            music_duration_s=music_info.duration_s,
            offset_s=offset,
            window_s=cfg.window_s,
            hop_s=cfg.hop_s,
        )
        if not starts:
            raise MediaError(
                f"{spec.dance}: music and dance overlap for less than one {cfg.window_s:g}-s window "
                f"(dance {dance.duration_s:.1f} s, music {music_info.duration_s:.1f} s, offset {offset:.1f} s). "
                "Use longer media or a shorter --window."
            )
        todo = [s for s in starts if not store.has(clip_id(spec.pair_id, s))]
        result.existing = len(starts) - len(todo)
        if not todo:
            return result
        music = analyse_music(spec.music, sr=cfg.sr, beat_config=cfg.music_beats, min_duration_s=cfg.window_s)
        context = _PairContext(
            music=music,
            dance=dance,
            music_rhythm=rhythm_context(music, cfg.rhythm),
            dance_rhythm=rhythm_context(dance, cfg.rhythm),
        )
        for start in todo:
            skipped = _put_window(store, spec, cfg, context, start_s=start, offset_s=offset, encoders=encoders)
            if skipped is None:
                result.written += 1
            else:
                result.skipped_windows.append((start, skipped))
    except BeatDanceError as exc:
        result.error = str(exc)
    return result


def _lost_pair(spec: PairSpec, reason: str) -> PairResult:
    return PairResult(pair_id=spec.pair_id, error=reason)


@dataclass
class PrepareReport:
    store: str
    pairs: int
    clips_written: int
    clips_existing: int
    skipped: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare(
    *,
    inputs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: PrepareConfig | None = None,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    show_progress: bool = True,
) -> PrepareReport:
    """Build or complete the feature store ``out`` from ``inputs``; returns what was written and skipped.

    ``executor`` and ``workers`` say where pairs are processed (see :func:`.executors.map_unordered`):
    ``"local"`` runs them here (``workers`` None or 1) or in ``workers`` processes, ``"ray"`` on Ray actors
    (the cluster at ``ray_address``, else a local instance); with Ray, ``out`` and the inputs must be at the
    same paths on every node."""
    cfg = config or PrepareConfig()
    pairs, rejected = discover_pairs(list(inputs))
    if not pairs:
        reasons = "; ".join(f"{r.input}: {r.reason}" for r in rejected[:5]) or "the inputs hold no files"
        raise DataError(
            f"no music/dance pairs found in {[str(p) for p in inputs]} ({reasons}). prepare looks for dance videos "
            "with a soundtrack, a manifest CSV (music,dance[,offset_s]), Dance-with-Melody folders, and in folders "
            "a music file and a keypoint file or video of the same name (x.wav + x.npz)."
        )
    runs = map_unordered(
        partial(process_pair, cfg=cfg, store_path=str(out)),
        pairs,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        on_lost=_lost_pair,
    )
    store = FeatureStore.create(out, config=cfg.store_config())
    for r in rejected:
        store.add_skip(input=r.input, reason=r.reason, stage="discover")
    results: list[PairResult] = []
    bar = progress(desc="prepare", total=len(pairs), enabled=show_progress)
    for result in runs:
        results.append(result)
        bar.update(1)
    bar.close()
    by_id = {s.pair_id: s for s in pairs}
    for res in sorted(results, key=lambda r: r.pair_id):
        if res.error:
            store.add_skip(input=by_id[res.pair_id].dance, reason=res.error, stage="extract")
        for start, why in res.skipped_windows:
            store.add_skip(input=f"{by_id[res.pair_id].dance}@{start:g}s", reason=why, stage="window")
    if store.ids():
        store.make_splits(fractions=split_fractions, seed=seed)
    skipped = [{"input": r.input, "reason": r.reason} for r in rejected]
    skipped += [{"input": by_id[r.pair_id].dance, "reason": r.error} for r in results if r.error]
    if not store.ids():
        reasons = "; ".join(f"{item['input']}: {item['reason']}" for item in skipped[:3])
        raise DataError(
            f"prepare wrote no clips to {out}: all {len(pairs)} pairs failed ({reasons}). "
            f"Fix those inputs; {out}/report.jsonl lists every reason."
        )
    return PrepareReport(
        store=str(out),
        pairs=len(pairs),
        clips_written=sum(r.written for r in results),
        clips_existing=sum(r.existing for r in results),
        skipped=skipped,
    )
