"""Queries of a library: a media file cut into windows extracted as the library's clips were
(:func:`extract_query_windows`), and the records a search returns (:class:`Match`, :class:`SearchResult`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import MediaError
from ..media.limits import QueryLimits
from ..pipeline.extract import (
    WindowSkipped,
    analyse_dance,
    analyse_music,
    check_music_path,
    dance_window,
    get_encoder,
    music_window,
    rhythm_context,
)
from ..pipeline.prepare import PrepareConfig, window_starts
from ..retrieval.scoring import Direction
from .catalog import Item
from .config import Modality

if TYPE_CHECKING:
    from ..encoders.registry import Encoder


@dataclass
class Match:
    """One ranked library item. ``source`` (the media file) and ``start_s`` locate the matched modality's
    media. The same fields, under the same names, are the service's JSON (``beatdance.service.schemas``)."""

    rank: int
    id: str
    group: str
    modality: Modality
    source: str | None
    start_s: float | None
    duration_s: float | None
    score: float
    similarity: float
    beat_alignment: float
    tempo_bpm: float | None
    query_tempo_bpm: float | None
    beats_s: list[float]
    item: Item

    def to_dict(self) -> dict[str, Any]:
        """The match as JSON data, without ``item`` (the library's record, which the fields already give)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "item"}


@dataclass
class SearchResult:
    """The ranked matches of the best query window, and how the query was read."""

    direction: Direction
    query: dict[str, Any]
    windows: list[dict[str, float]]
    settings: dict[str, Any]
    matches: list[Match]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "matches"},
            "matches": [m.to_dict() for m in self.matches],
        }


def _analyse_query(
    *,
    config: PrepareConfig,
    modality: Modality,
    path: str | os.PathLike[str],
    start_s: float,
    duration_s: float | None,
    limits: QueryLimits,
) -> tuple[Any, Encoder]:
    """The query file's whole-span analysis (beats, envelopes, decoded media) and the library's encoder for it."""
    if modality == "music":
        check_music_path(path)
        track: Any = analyse_music(
            path,
            sr=config.sr,
            beat_config=config.music_beats,
            start_s=start_s,
            duration_s=duration_s,
            min_duration_s=config.window_s,
            limits=limits,
        )
        return track, get_encoder(config.music_encoder, config.music_encoder_options, modality="music")
    track = analyse_dance(
        path,
        beat_config=config.dance_beats,
        start_s=start_s,
        duration_s=duration_s,
        pose_fps=config.pose_fps,
        max_side=config.max_side,
        min_person_ratio=config.min_person_ratio,
        limits=limits,
    )
    return track, get_encoder(config.dance_encoder, config.dance_encoder_options, modality="dance")


def extract_query_windows(
    *,
    config: PrepareConfig,
    rhythm: bool,
    modality: Modality,
    path: str | os.PathLike[str],
    start_s: float = 0.0,
    duration_s: float | None = None,
    hop_s: float | None = None,
    limits: QueryLimits | None = None,
) -> tuple[list[Any], Any]:
    """Windows of a query file extracted with a library's extractor settings ``config`` (``rhythm``: the
    model takes rhythm arrays): (windows, track). Needs no model, so a worker process can run it for the model's owner.
    ``limits`` (default ``QueryLimits()``) caps what the file may cost, from its header before decoding and while
    decoding: LimitError names the cap passed and its option."""
    limits = limits or QueryLimits()
    hop = hop_s if hop_s is not None else config.window_s / 2
    track, encoder = _analyse_query(
        config=config, modality=modality, path=path, start_s=start_s, duration_s=duration_s, limits=limits
    )
    starts = window_starts(
        dance_duration_s=track.duration_s,
        music_duration_s=track.duration_s,
        offset_s=0.0,
        window_s=config.window_s,
        hop_s=hop,
    )
    context = rhythm_context(track, config.rhythm) if rhythm and starts else None
    if not starts:
        raise MediaError(
            f"{path}: the query is {track.duration_s:.1f} s long, shorter than the library's "
            f"{config.window_s:g}-s window. Pass a longer clip (or a longer --duration)."
        )
    cut: Callable[..., Any] = partial(
        music_window if modality == "music" else dance_window,
        track,
        window_s=config.window_s,
        grid_fps=config.grid_fps,
        encoder=encoder,
        rhythm=context,
    )
    if modality == "dance":
        cut = partial(cut, min_person_ratio=config.min_person_ratio)
    windows, skipped = [], []
    for s in starts:
        try:
            windows.append(cut(start_s=s))
        except WindowSkipped as why:
            skipped.append(f"{s:g} s: {why}")
    if not windows:
        raise MediaError(
            f"{path}: no usable {config.window_s:g}-s window ({'; '.join(skipped)}). "
            "Pass a clip with audible music / a dancer in view."
        )
    return windows, track
