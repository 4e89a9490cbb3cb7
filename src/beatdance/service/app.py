"""The web service of ``beatdance serve``: a JSON API over one library and a page to search it.

How it stays up under hostile input and load:

- every request body passes an :class:`~.gate.UploadGate`, which refuses an oversized upload as it
  arrives (413), before Starlette would spool it;
- an upload is saved by size and extension only. Worker processes (:class:`~.pool.WorkerPool`) do the
  rest under a memory cap, a time limit and the :class:`~beatdance.media.limits.QueryLimits`: one checks
  its content and what its header declares (fast, so a hostile file never waits behind real work), then
  another reads it (decoding, beats, encoders). The server embeds the windows and ranks them, so it never
  decodes a user's file. A full queue is answered 503 with Retry-After;
- searches take no lock: an opened library is read-only, and a changed library folder (``index --add``)
  is opened beside it and swapped in as one reference (:class:`~.live.LiveLibrary`). Only drawing
  stick-figure videos and plots is serialised (matplotlib is not thread-safe).

Only files recorded in the library are ever served. Bad input never gives a 500: beatdance errors map to
4xx with the beatdance message (LimitError 413, wrong content 415, unreadable media 422).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import BeatDanceError, CheckpointError, LimitError, ParameterError
from ..library import Item, Library, Match, SearchResult
from ..media.keypoints import load_keypoints
from ..media.limits import QueryLimits
from ..pipeline.export import render_skeleton
from ..pipeline.inputs import AUDIO_EXTS, VIDEO_EXTS
from ..pipeline.prepare import PrepareConfig
from ..plots import plot_beat_alignment
from ..synth.render import encode_mp4
from ..util import atomic_write_bytes
from .gate import Refusal, Scope, UploadGate
from .live import LiveLibrary, freeze_heap
from .pool import PoolBusy, PoolSettings, WorkerPool
from .schemas import (
    ERROR_RESPONSES,
    UPLOAD_RESPONSES,
    ItemOut,
    ItemSide,
    ItemsOut,
    LibraryOut,
    MatchOut,
    Modality,
    QueryOut,
    ReloadOut,
    SearchOut,
    WindowOut,
)
from .uploads import SAFE_NAME, UPLOAD_EXTS, Upload, save_upload, too_large
from .worker import UnsupportedUpload

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_FORM_SLACK_BYTES = 64 * 1024  # multipart framing and form fields on top of the file itself
_RENDER_FPS = 25.0
_RENDER_SIDE = 360
_MAX_BEAT_S = 3600.0  # a plot of beats past an hour is no window of any library


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


def _retry_after(exc: BeatDanceError) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, PoolBusy) else None


class _Service:
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
            "rhythm_branch": lib.model.config.rhythm_branch,
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


def _parse_beats(text: str) -> list[float]:
    try:
        beats = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise HTTPException(
            422, f"query_beats={text[:80]!r} is not a comma-separated list of seconds, e.g. 0.5,1.02,1.51."
        ) from exc
    if not all(np.isfinite(beats)) or len(beats) > 10_000:
        raise HTTPException(422, "query_beats must hold at most 10000 finite times in seconds.")
    if beats and not 0.0 <= min(beats) <= max(beats) <= _MAX_BEAT_S:
        raise HTTPException(
            422,
            f"query_beats must lie in 0..{_MAX_BEAT_S:g} s from the window start; got {min(beats):g}..{max(beats):g}.",
        )
    return beats


def create_app(
    library_path: str | os.PathLike[str],
    *,
    max_upload_mb: float = 50.0,
    cache_dir: str | os.PathLike[str] | None = None,
    pool: PoolSettings | None = None,
    limits: QueryLimits | None = None,
    device: str = "cpu",
) -> FastAPI:
    """The FastAPI app serving library ``library_path`` (opened now; a bad library raises CheckpointError).

    ``max_upload_mb`` limits uploads; ``cache_dir`` holds uploads while they are searched and the rendered
    stick-figure videos (default: a new temporary folder). ``pool`` sizes the extraction workers (started now
    with one more that checks uploads first; stopped by the app's lifespan or ``app.state.service.close()``);
    ``limits`` caps each query; ``device`` runs the model (query embedding) there, e.g. "cuda".
    """
    if not max_upload_mb > 0:
        raise ParameterError(f"max_upload_mb={max_upload_mb} must be a positive number of megabytes, e.g. 50.")
    svc = _Service(
        Path(library_path),
        max_upload_mb=max_upload_mb,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        pool=pool or PoolSettings(),
        limits=limits or QueryLimits(),
        device=device,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        freeze_heap()
        yield
        svc.close()

    app = FastAPI(
        title="beatdance",
        version="1",
        docs_url=None,
        redoc_url=None,  # both pages load from a CDN
        description="Beat-aware music <-> dance retrieval over one beatdance library.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.add_middleware(
        UploadGate,
        max_body_bytes=int(max_upload_mb * 2**20) + _FORM_SLACK_BYTES,
        too_large=too_large(max_upload_mb),
        refuse=svc.refuse,
    )

    @app.exception_handler(BeatDanceError)
    async def beatdance_error(request: Request, exc: BeatDanceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=_retry_after(exc))

    _add_routes(app, svc)
    return app


def _add_routes(app: FastAPI, svc: _Service) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/library", response_model=LibraryOut, summary="Library summary")
    def library_summary() -> LibraryOut:
        lib = svc.live.current()
        kinds: dict[str, int] = {}
        for it in lib.items:
            kinds[it.dance_kind or "unknown"] = kinds.get(it.dance_kind or "unknown", 0) + 1
        return LibraryOut(
            path=str(lib.path),
            items=len(lib),
            model_variant=lib.model.config.variant,
            embed_dim=lib.model.config.embed_dim,
            window_s=svc.window_s(lib),
            index=lib.config.index,
            querybank=lib.config.querybank,
            dance_kinds=kinds,
            settings=lib.config.search.to_dict(),
            max_upload_mb=svc.max_upload_mb,
            upload_extensions={m: sorted(e) for m, e in UPLOAD_EXTS.items()},
            query_limits=svc.limits.to_dict(),
        )

    @app.get("/api/items", response_model=ItemsOut, summary="List library items")
    def list_items(
        modality: Modality | None = Query(None, description="Describe only this modality of each item."),
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
    ) -> ItemsOut:
        lib = svc.live.current()
        sides: tuple[Modality, ...] = (modality,) if modality else ("music", "dance")
        out = [
            ItemOut(id=it.clip_id, group=it.grp, dance_kind=it.dance_kind, **{m: svc.side(lib, it, m) for m in sides})
            for it in lib.items[offset : offset + limit]
        ]
        return ItemsOut(total=len(lib), offset=offset, limit=limit, items=out)

    @app.post("/api/reload", response_model=ReloadOut, summary="Open the library folder again if it changed")
    def reload_library() -> ReloadOut:
        reloaded = svc.live.reload()
        return ReloadOut(reloaded=reloaded, path=str(svc.live.path), items=len(svc.live.library))

    @app.get("/api/search", response_model=SearchOut, responses=ERROR_RESPONSES, summary="Search with a library item")
    def search_by_id(
        music_id: str | None = Query(None, description="Query with this item's music: finds dances."),
        dance_id: str | None = Query(None, description="Query with this item's dance: finds music."),
        top: int = Query(10, ge=1, le=1000),
        hubness: Literal["none", "is", "dis"] | None = Query(None),
    ) -> SearchOut:
        if (music_id is None) == (dance_id is None):
            raise HTTPException(422, "pass exactly one of music_id or dance_id, e.g. /api/search?music_id=ID&top=10.")
        lib = svc.live.current()
        svc.item(lib, music_id or dance_id or "")
        result = lib.search(
            music_id=music_id, dance_id=dance_id, top=top, settings=lib.settings(hubness=hubness), threads=None
        )
        return svc.result_out(lib, result, source=None)

    @app.post(
        "/api/search", response_model=SearchOut, responses=UPLOAD_RESPONSES, summary="Search with an uploaded file"
    )
    async def search_by_upload(
        file: UploadFile = File(..., description="Music (audio/video) or dance (video/keypoints)."),
        modality: Modality = Form(..., description="What the file is: music or dance."),
        top: int = Form(10, ge=1, le=1000),
        start_s: float = Form(0.0, ge=0.0),
        duration_s: float | None = Form(None, gt=0.0),
        hubness: Literal["none", "is", "dis"] | None = Form(None),
    ) -> SearchOut:
        lib = svc.live.current()
        settings = lib.settings(hubness=hubness)
        upload = await save_upload(file, modality=modality, folder=svc.cache_dir, max_upload_mb=svc.max_upload_mb)
        try:
            job = svc.job(lib, upload, modality=modality, start_s=start_s, duration_s=duration_s)
            await asyncio.wrap_future(svc.checks.submit(job))
            read = await asyncio.wrap_future(svc.extracts.submit(job))
            result = await run_in_threadpool(
                partial(
                    lib.search_windows,
                    modality=modality,
                    windows=read["windows"],
                    tempo_bpm=read["tempo_bpm"],
                    file=str(upload.path),
                    start_s=start_s,
                    top=top,
                    settings=settings,
                    threads=None,
                )
            )
        except BeatDanceError as exc:
            raise HTTPException(status_of(exc), upload.clean(str(exc)), headers=_retry_after(exc)) from exc
        finally:
            upload.close()
        return svc.result_out(lib, result, source=upload.shown)

    @app.get(
        "/api/media/{clip_id}/{modality}",
        responses={**ERROR_RESPONSES, 200: {"content": {"audio/*": {}, "video/mp4": {}}}},
        response_class=FileResponse,
        summary="Stream an item's media",
    )
    def media(clip_id: str, modality: Modality) -> FileResponse:
        lib = svc.live.current()
        path = svc.media_path(lib, svc.item(lib, clip_id), modality)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind, filename=path.name, content_disposition_type="inline")

    @app.get(
        "/api/plot/{clip_id}.png",
        responses={**ERROR_RESPONSES, 200: {"content": {"image/png": {}}}},
        response_class=Response,
        summary="Beat plot of a query against an item",
    )
    def plot(
        clip_id: str,
        query_modality: Modality = Query(..., description="The query's modality."),
        query_beats: str | None = Query(
            None, description="The query's beats, seconds from its window start, comma-separated."
        ),
        query_id: str | None = Query(None, description="Use the beats of this item's query_modality instead."),
    ) -> Response:
        lib = svc.live.current()
        item = svc.item(lib, clip_id)
        if (query_beats is None) == (query_id is None):
            raise HTTPException(422, "pass exactly one of query_beats (e.g. 0.5,1.0) or query_id.")
        if query_id is not None:
            beats = svc.item(lib, query_id).side(query_modality).beats_s
        else:
            beats = _parse_beats(query_beats or "")
        png = svc.plot(lib=lib, item=item, query_modality=query_modality, query_beats_s=beats)
        return Response(png, media_type="image/png")
