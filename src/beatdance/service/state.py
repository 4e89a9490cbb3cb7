"""The state behind ``beatdance serve``'s routes (:class:`Service`): the live library, the worker pool and the
upload gate, and the answers built from them (items, media files, search results, plots)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import HTTPException

from ..errors import BeatDanceError, CheckpointError, LimitError
from ..library import Item, Library, Match, SearchResult
from ..media.drawing import render_skeleton
from ..media.keypoints import load_keypoints
from ..media.limits import QueryLimits
from ..pipeline.inputs import AUDIO_EXTS, VIDEO_EXTS
from ..pipeline.prepare import PrepareConfig
from ..plots import plot_beat_alignment
from ..synth.render import encode_mp4
from ..util import atomic_write_bytes
from .gate import Refusal, Scope
from .live import LiveLibrary
from .pool import PoolBusy, PoolSettings, WorkerPool
from .schemas import (
    ItemSide,
    MatchOut,
    Modality,
    QueryOut,
    SearchOut,
    WindowOut,
)
from .uploads import SAFE_NAME, Upload
from .worker import UnsupportedUpload

_RENDER_FPS = 25.0
_RENDER_SIDE = 360


def _basename(path: str | None) -> str | None:
    return None if path is None else Path(path).name


def status_of(exc: BeatDanceError) -> int:
    """The HTTP status of a beatdance error met while answering a request."""
    if isinstance(exc, PoolBusy):
        return 503
    if isinstance(exc, CheckpointError):
        return 500
    if isinstance(exc, LimitError):
        return 413
    if isinstance(exc, UnsupportedUpload):
        return 415
    return 422


def retry_after(exc: BeatDanceError) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, PoolBusy) else None


class Service:
    """The state behind the routes: the library (swapped on reload), the worker pools, limits and caches."""

    def __init__(
        self,
        library_path: Path,
        *,
        max_upload_mb: float,
        cache_dir: Path | None,
        pool: PoolSettings,
        limits: QueryLimits,
        device: str,
    ) -> None:
        self.live = LiveLibrary(library_path, device=device)
        self.draw_lock = threading.Lock()
        self.max_upload_mb = max_upload_mb
        self.limits = limits
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="beatdance-serve-")  # removed with the service
            cache_dir = Path(self._tmp.name)
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        store_config = self.live.library.store_config
        self.checks = WorkerPool(
            replace(pool, workers=1, queue=pool.workers + pool.queue), role="check", store_config=store_config
        )
        self.extracts = WorkerPool(pool, role="extract", store_config=store_config)
        try:
            self.checks.wait_ready()
            self.extracts.wait_ready()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers and remove the temporary cache folder."""
        self.checks.close()
        self.extracts.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def refuse(self, scope: Scope) -> Refusal | None:
        """503 for an upload search when the check lane could not take it, before its body is read. (A full
        extraction queue is found after the check, so that a hostile file still gets its 4xx at once.)"""
        if scope.get("method") != "POST" or scope.get("path") != "/api/search":
            return None
        busy = self.checks.busy()
        return None if busy is None else Refusal(503, str(busy), {"Retry-After": str(busy.retry_after_s)})

    @staticmethod
    def item(lib: Library, clip_id: str) -> Item:
        if clip_id not in lib:
            raise HTTPException(
                404, f"clip {clip_id!r} is not in the library ({len(lib)} items); GET /api/items lists the ids."
            )
        return lib.item(clip_id)

    @staticmethod
    def window_s(lib: Library) -> float:
        return float(lib.store_config.get("window_s", 0.0))

    def side(self, lib: Library, item: Item, modality: Modality) -> ItemSide:
        """Where ``item``'s ``modality`` plays: the file and span for a media file, 0..duration for a rendered dance."""
        url = f"/api/media/{quote(item.clip_id, safe='')}/{modality}"
        side = item.side(modality)
        duration = float(item.duration_s or self.window_s(lib))
        kind: Literal["audio", "video"]
        if self.is_rendered(item, modality):
            kind, media_start = "video", 0.0
        else:
            kind = "audio" if Path(side.file or "").suffix.lower() in AUDIO_EXTS else "video"
            media_start = float(side.start_s or 0.0)
        return ItemSide(
            source=_basename(side.file),
            start_s=side.start_s,
            duration_s=item.duration_s,
            tempo_bpm=side.tempo_bpm,
            media_url=url,
            media_kind=kind,
            media_start_s=media_start,
            media_end_s=media_start + duration,
        )

    @staticmethod
    def is_rendered(item: Item, modality: Modality) -> bool:
        return modality == "dance" and Path(item.dance_file or "").suffix.lower() not in VIDEO_EXTS

    def media_path(self, lib: Library, item: Item, modality: Modality) -> Path:
        """The file that plays ``item``'s ``modality``: a library file, or the cached stick-figure render."""
        file = item.side(modality).file
        if file is None:
            raise HTTPException(404, f"clip {item.clip_id!r} has no {modality} file recorded in the library.")
        if not self.is_rendered(item, modality):
            if not Path(file).is_file():
                raise HTTPException(
                    410,
                    f"the {modality} file of clip {item.clip_id!r} ({Path(file).name}) is no longer "
                    "on the server's disk; rebuild the library from the media.",
                )
            return Path(file)
        span_s = float(item.duration_s or self.window_s(lib))
        key = hashlib.sha1(repr((file, item.start_s, item.duration_s)).encode()).hexdigest()[:10]
        out = self.cache_dir / f"{SAFE_NAME.sub('_', item.clip_id)}-{key}.mp4"
        with self.draw_lock:
            if not out.is_file():
                motion = load_keypoints(file).slice(start_s=float(item.start_s or 0.0), duration_s=span_s)
                frames = render_skeleton(motion=motion, fps=_RENDER_FPS, width=_RENDER_SIDE, height=_RENDER_SIDE)
                atomic_write_bytes(out, encode_mp4(frames=frames, fps=_RENDER_FPS, audio=None, sr=None))
        return out

    def match_out(self, lib: Library, m: Match, query: dict[str, Any]) -> MatchOut:
        params = {"query_modality": query["modality"], "query_beats": ",".join(f"{t:.3f}" for t in query["beats_s"])}
        return MatchOut(
            **{**m.to_dict(), "source": _basename(m.source)},
            media=self.side(lib, m.item, m.modality),
            plot_url=f"/api/plot/{quote(m.id, safe='')}.png?{urlencode(params)}",
        )

    def result_out(self, lib: Library, result: SearchResult, *, source: str | None) -> SearchOut:
        q = result.query
        query = QueryOut(
            clip_id=q["clip_id"],
            modality=q["modality"],
            source=source,
            start_s=q["start_s"],
            duration_s=q["duration_s"],
            tempo_bpm=q["tempo_bpm"],
            beats_s=q["beats_s"],
        )
        return SearchOut(
            direction=result.direction,
            query=query,
            windows=[WindowOut(**w) for w in result.windows],
            settings=result.settings,
            matches=[self.match_out(lib, m, q) for m in result.matches],
            seconds=result.seconds,
        )

    def job(
        self, lib: Library, upload: Upload, *, modality: Modality, start_s: float, duration_s: float | None
    ) -> dict[str, Any]:
        """What the workers need to check ``upload`` and read it as ``lib`` reads its clips (beatdance.service.worker)."""
        return {
            "path": str(upload.path),
            "shown": upload.shown,
            "modality": modality,
            "start_s": start_s,
            "duration_s": duration_s,
            "store_config": lib.store_config,
            "pose_fps": float(lib.store_config.get("pose_fps", PrepareConfig.pose_fps)),
            "rhythm": lib.model.config.uses_rhythm,
            "limits": self.limits.to_dict(),
        }

    def plot(self, *, lib: Library, item: Item, query_modality: Modality, query_beats_s: list[float]) -> bytes:
        """PNG bytes of the query's beats against the item's beats of the other modality."""
        if query_modality == "music":
            music, dance, title = query_beats_s, item.dance_beats_s, f"query music vs dance of {item.clip_id}"
        else:
            music, dance, title = item.music_beats_s, query_beats_s, f"music of {item.clip_id} vs query dance"
        duration = max([float(item.duration_s or self.window_s(lib)), *music, *dance, 1.0])
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=self.cache_dir)
        os.close(fd)
        try:
            with self.draw_lock:
                plot_beat_alignment(
                    path=tmp,
                    music_beats_s=np.asarray(music),
                    dance_beats_s=np.asarray(dance),
                    duration_s=duration,
                    title=title,
                )
            return Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)
