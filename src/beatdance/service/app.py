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
import logging
import mimetypes
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import BeatDanceError, ParameterError
from ..media.limits import QueryLimits
from .gate import UploadGate
from .live import freeze_heap
from .pool import PoolSettings
from .schemas import (
    ERROR_RESPONSES,
    UPLOAD_RESPONSES,
    ItemOut,
    ItemsOut,
    LibraryOut,
    Modality,
    ReloadOut,
    SearchOut,
)
from .state import Service, retry_after, status_of
from .uploads import UPLOAD_EXTS, save_upload, too_large

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_FORM_SLACK_BYTES = 64 * 1024  # multipart framing and form fields on top of the file itself
_MAX_BEAT_S = 3600.0  # a plot of beats past an hour is no window of any library


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
    svc = Service(
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
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=retry_after(exc))

    _add_routes(app, svc)
    return app


def _add_routes(app: FastAPI, svc: Service) -> None:
    _add_library_routes(app, svc)
    _add_search_routes(app, svc)
    _add_media_routes(app, svc)


def _add_library_routes(app: FastAPI, svc: Service) -> None:
    """The page, its static files, and what the library holds (summary, items, reload)."""

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


def _add_search_routes(app: FastAPI, svc: Service) -> None:
    """Search with a library item or with an uploaded file."""

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
            raise HTTPException(status_of(exc), upload.clean(str(exc)), headers=retry_after(exc)) from exc
        finally:
            upload.close()
        return svc.result_out(lib, result, source=upload.shown)


def _add_media_routes(app: FastAPI, svc: Service) -> None:
    """An item's media and the beat plot of a query against an item."""

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
