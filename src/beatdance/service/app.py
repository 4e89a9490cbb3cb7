"""The web service of ``beatdance serve``: a JSON API over one library and a page to search it.

The library is opened once when the app is created; searches and renders run one at a time under a lock
(torch and the encoders already use every core). Uploads are streamed to a private temporary folder,
checked by size, extension and content (a PyAV probe, or the keypoint format's signature), and deleted
after the search. Only files recorded in the library are ever served; keypoint and Dance-with-Melody
dances are drawn as stick-figure MP4s of the item's span and cached. Bad input never gives a 500:
beatdance errors map to 4xx in an exception handler, with the beatdance message.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..errors import BeatDanceError, CheckpointError, MediaError, ParameterError
from ..jitcache import ensure_kernels
from ..library import Item, Library, Match, SearchResult
from ..media.audio import probe_media
from ..media.keypoints import load_keypoints
from ..pipeline.export import render_skeleton
from ..pipeline.inputs import AUDIO_EXTS, KEYPOINT_EXTS, VIDEO_EXTS
from ..plots import plot_beat_alignment
from ..synth.render import encode_mp4
from ..util import atomic_write_bytes

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
Modality = Literal["music", "dance"]
_UPLOAD_EXTS: dict[str, set[str]] = {"music": AUDIO_EXTS | VIDEO_EXTS, "dance": VIDEO_EXTS | KEYPOINT_EXTS}
_KEYPOINT_MAGIC = {".npz": (b"PK\x03\x04",), ".pkl": (b"\x80",)}  # .csv: any UTF-8 text
_CHUNK = 1 << 20
_RENDER_FPS = 25.0
_RENDER_SIDE = 360
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ItemSide(BaseModel):
    """One modality of a library item: its file (basename), span in that file and tempo."""

    source: str | None
    start_s: float | None
    duration_s: float | None
    tempo_bpm: float | None
    media_url: str
    media_kind: Literal["audio", "video"]
    media_start_s: float
    media_end_s: float


class ItemOut(BaseModel):
    id: str
    group: str
    dance_kind: str | None
    music: ItemSide | None = None
    dance: ItemSide | None = None


class ItemsOut(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ItemOut]


class LibraryOut(BaseModel):
    path: str
    items: int
    model_variant: str
    embed_dim: int
    window_s: float
    index: str
    querybank: str
    dance_kinds: dict[str, int]
    settings: dict[str, Any]
    max_upload_mb: float
    upload_extensions: dict[str, list[str]]


class QueryOut(BaseModel):
    clip_id: str | None
    modality: Modality
    source: str | None
    start_s: float
    duration_s: float | None
    tempo_bpm: float | None
    beats_s: list[float]


class WindowOut(BaseModel):
    start_s: float
    best_combined: float


class MatchOut(BaseModel):
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
    media: ItemSide
    plot_url: str


class SearchOut(BaseModel):
    direction: str
    query: QueryOut
    windows: list[WindowOut]
    settings: dict[str, Any]
    matches: list[MatchOut]
    seconds: float


class ErrorOut(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 413, 415, 422)}


@dataclass
class _Upload:
    """An upload saved under ``folder`` (deleted by :meth:`close`) as ``path``, named like the client's file."""

    folder: Path
    path: Path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def clean(self, message: str) -> str:
        """``message`` with the temporary folder removed, so it names the file as the client sent it."""
        return message.replace(f"{self.folder}{os.sep}", "")


def _basename(path: str | None) -> str | None:
    return None if path is None else Path(path).name


class _Service:
    """The state behind the routes: the library, the lock, the upload limits and the render cache."""

    def __init__(self, library_path: Path, *, max_upload_mb: float, cache_dir: Path | None) -> None:
        self.library = Library.open(library_path)
        ensure_kernels()
        self.library.warm_up()
        self.lock = threading.Lock()
        self.max_upload_bytes = int(max_upload_mb * (1 << 20))
        self.max_upload_mb = max_upload_mb
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="beatdance-serve-")  # removed with the service
            cache_dir = Path(self._tmp.name)
        self.cache_dir = cache_dir
        self.window_s = float(self.library.store_config.get("window_s", 0.0))

    def item(self, clip_id: str) -> Item:
        if clip_id not in self.library:
            raise HTTPException(404, f"clip {clip_id!r} is not in the library ({len(self.library)} items); "
                                     "GET /api/items lists the ids.")
        return self.library.item(clip_id)

    def side(self, item: Item, modality: Modality) -> ItemSide:
        """Where ``item``'s ``modality`` plays: the file and span for a media file, 0..duration for a rendered dance."""
        url = f"/api/media/{quote(item.clip_id, safe='')}/{modality}"
        side = item.side(modality)
        duration = float(item.duration_s or self.window_s)
        if self.is_rendered(item, modality):
            kind, media_start = "video", 0.0
        else:
            kind = "audio" if Path(side.file or "").suffix.lower() in AUDIO_EXTS else "video"
            media_start = float(side.start_s or 0.0)
        return ItemSide(source=_basename(side.file), start_s=side.start_s, duration_s=item.duration_s,
                        tempo_bpm=side.tempo_bpm, media_url=url, media_kind=kind, media_start_s=media_start,
                        media_end_s=media_start + duration)

    @staticmethod
    def is_rendered(item: Item, modality: Modality) -> bool:
        return modality == "dance" and Path(item.dance_file or "").suffix.lower() not in VIDEO_EXTS

    def media_path(self, item: Item, modality: Modality) -> Path:
        """The file that plays ``item``'s ``modality``: a library file, or the cached stick-figure render."""
        file = item.side(modality).file
        if file is None:
            raise HTTPException(404, f"clip {item.clip_id!r} has no {modality} file recorded in the library.")
        if not self.is_rendered(item, modality):
            if not Path(file).is_file():
                raise HTTPException(410, f"the {modality} file of clip {item.clip_id!r} ({Path(file).name}) is no longer "
                                         "on the server's disk; rebuild the library from the media.")
            return Path(file)
        key = hashlib.sha1(repr((file, item.start_s, item.duration_s)).encode()).hexdigest()[:10]
        out = self.cache_dir / f"{_SAFE_NAME.sub('_', item.clip_id)}-{key}.mp4"
        with self.lock:
            if not out.is_file():
                motion = load_keypoints(file).slice(start_s=float(item.start_s or 0.0),
                                                    duration_s=float(item.duration_s or self.window_s))
                frames = render_skeleton(motion=motion, fps=_RENDER_FPS, width=_RENDER_SIDE, height=_RENDER_SIDE)
                atomic_write_bytes(out, encode_mp4(frames=frames, fps=_RENDER_FPS, audio=None, sr=None))
        return out

    def match_out(self, m: Match, query: dict[str, Any]) -> MatchOut:
        params = {"query_modality": query["modality"], "query_beats": ",".join(f"{t:.3f}" for t in query["beats_s"])}
        return MatchOut(rank=m.rank, id=m.clip_id, group=m.group, modality=m.modality, source=_basename(m.file),
                        start_s=m.start_s, duration_s=m.duration_s, score=m.score, similarity=m.similarity,
                        beat_alignment=m.beat_alignment, tempo_bpm=m.tempo_bpm, query_tempo_bpm=m.query_tempo_bpm,
                        beats_s=m.beats_s, media=self.side(m.item, m.modality),
                        plot_url=f"/api/plot/{quote(m.clip_id, safe='')}.png?{urlencode(params)}")

    def result_out(self, result: SearchResult, *, source: str | None) -> SearchOut:
        q = result.query
        query = QueryOut(clip_id=q["clip_id"], modality=q["modality"], source=source, start_s=q["start_s"],
                         duration_s=q["duration_s"], tempo_bpm=q["tempo_bpm"], beats_s=q["beats_s"])
        return SearchOut(direction=result.direction, query=query, windows=[WindowOut(**w) for w in result.windows],
                         settings=result.settings, matches=[self.match_out(m, q) for m in result.matches],
                         seconds=result.seconds)

    async def save_upload(self, upload: UploadFile, modality: Modality) -> _Upload:
        """Stream ``upload`` to a new temporary folder, enforcing the size and extension limits (413, 415)."""
        name = _SAFE_NAME.sub("_", Path(upload.filename or "").name).lstrip(".")
        ext = Path(name).suffix.lower()
        allowed = _UPLOAD_EXTS[modality]
        if ext not in allowed:
            raise HTTPException(415, f"{upload.filename!r}: {ext or 'no extension'} is not a {modality} format this "
                                     f"service accepts; upload one of {', '.join(sorted(allowed))}.")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.cache_dir))
        saved = _Upload(folder=folder, path=folder / name)
        size = 0
        try:
            with open(saved.path, "wb") as fh:
                while chunk := await upload.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise HTTPException(413, f"{upload.filename!r} is larger than this service's {self.max_upload_mb:g} MB "
                                                 "upload limit; upload a shorter clip (or start the server with a "
                                                 "larger --max-upload-mb).")
                    fh.write(chunk)
            if size == 0:
                raise HTTPException(422, f"{upload.filename!r} is empty; upload a {modality} file.")
            self.check_content(saved.path, modality=modality, shown=upload.filename or name)
        except HTTPException as exc:
            saved.close()
            raise HTTPException(exc.status_code, saved.clean(str(exc.detail))) from exc
        except BaseException:
            saved.close()
            raise
        return saved

    @staticmethod
    def check_content(path: Path, *, modality: Modality, shown: str) -> None:
        """415 unless the file's content is what its extension says: media PyAV can open with the needed
        stream, or the keypoint format's signature."""
        ext = path.suffix.lower()
        if ext in KEYPOINT_EXTS:
            with path.open("rb") as fh:
                head = fh.read(4096)
            if ext in _KEYPOINT_MAGIC:
                ok = head.startswith(_KEYPOINT_MAGIC[ext])
            else:
                ok = b"\x00" not in head and _decodes(head)
            if not ok:
                raise HTTPException(415, f"{shown!r} does not hold {ext} keypoints (its content is of another type); "
                                         "upload the file under its real extension.")
            return
        try:
            info = probe_media(path)
        except MediaError as exc:
            raise HTTPException(415, f"{shown!r} is not an audio or video file PyAV can open ({exc}); upload a "
                                     f"real {ext} file.") from exc
        needed = info.has_audio if modality == "music" else info.has_video
        if not needed:
            stream = "audio" if modality == "music" else "video"
            raise HTTPException(415, f"{shown!r} has no {stream} stream, so it cannot be a {modality} query; upload "
                                     f"{'music or a video with a soundtrack' if modality == 'music' else 'a dance video or keypoints'}.")

    def search(self, **kwargs: Any) -> SearchResult:
        with self.lock:
            return self.library.search(**kwargs)

    def plot(self, *, item: Item, query_modality: Modality, query_beats_s: list[float]) -> bytes:
        """PNG bytes of the query's beats against the item's beats of the other modality."""
        if query_modality == "music":
            music, dance, title = query_beats_s, item.dance_beats_s, f"query music vs dance of {item.clip_id}"
        else:
            music, dance, title = item.music_beats_s, query_beats_s, f"music of {item.clip_id} vs query dance"
        duration = max([float(item.duration_s or self.window_s), *music, *dance, 1.0])
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=self.cache_dir)
        os.close(fd)
        try:
            plot_beat_alignment(path=tmp, music_beats_s=np.asarray(music), dance_beats_s=np.asarray(dance),
                                duration_s=duration, title=title)
            return Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)


def _decodes(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut by the 4 KiB read is still text
    return True


_MAX_BEAT_S = 3600.0  # a plot of beats past an hour is no window of any library


def _parse_beats(text: str) -> list[float]:
    try:
        beats = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise HTTPException(422, f"query_beats={text[:80]!r} is not a comma-separated list of seconds, "
                                 "e.g. 0.5,1.02,1.51.") from exc
    if not all(np.isfinite(beats)) or len(beats) > 10_000:
        raise HTTPException(422, "query_beats must hold at most 10000 finite times in seconds.")
    if beats and not 0.0 <= min(beats) <= max(beats) <= _MAX_BEAT_S:
        raise HTTPException(422, f"query_beats must lie in 0..{_MAX_BEAT_S:g} s from the window start; got "
                                 f"{min(beats):g}..{max(beats):g}.")
    return beats


def create_app(library_path: str | os.PathLike[str], *, max_upload_mb: float = 50.0,
               cache_dir: str | os.PathLike[str] | None = None) -> FastAPI:
    """The FastAPI app serving library ``library_path`` (opened now; a bad library raises CheckpointError).

    ``max_upload_mb`` limits uploads; ``cache_dir`` holds uploads while they are searched and the rendered
    stick-figure videos (default: a new temporary folder).
    """
    if not max_upload_mb > 0:
        raise ParameterError(f"max_upload_mb={max_upload_mb} must be a positive number of megabytes, e.g. 50.")
    svc = _Service(Path(library_path), max_upload_mb=max_upload_mb,
                   cache_dir=None if cache_dir is None else Path(cache_dir))
    svc.cache_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="beatdance", version="1", docs_url=None, redoc_url=None,  # both pages load from a CDN
                  description="Beat-aware music <-> dance retrieval over one beatdance library.")
    app.state.service = svc

    @app.exception_handler(BeatDanceError)
    async def beatdance_error(request: Request, exc: BeatDanceError) -> JSONResponse:
        status = 500 if isinstance(exc, CheckpointError) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/library", response_model=LibraryOut, summary="Library summary")
    def library_summary() -> LibraryOut:
        lib = svc.library
        kinds: dict[str, int] = {}
        for it in lib.items:
            kinds[it.dance_kind or "unknown"] = kinds.get(it.dance_kind or "unknown", 0) + 1
        return LibraryOut(path=str(lib.path), items=len(lib), model_variant=lib.model.config.variant,
                          embed_dim=lib.model.config.embed_dim, window_s=svc.window_s, index=lib.config.index,
                          querybank=lib.config.querybank, dance_kinds=kinds, settings=lib.config.search.to_dict(),
                          max_upload_mb=svc.max_upload_mb,
                          upload_extensions={m: sorted(e) for m, e in _UPLOAD_EXTS.items()})

    @app.get("/api/items", response_model=ItemsOut, summary="List library items")
    def list_items(modality: Modality | None = Query(None, description="Describe only this modality of each item."),
                   offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)) -> ItemsOut:
        chosen = svc.library.items[offset:offset + limit]
        sides: tuple[Modality, ...] = (modality,) if modality else ("music", "dance")
        out = [ItemOut(id=it.clip_id, group=it.grp, dance_kind=it.dance_kind, **{m: svc.side(it, m) for m in sides})
               for it in chosen]
        return ItemsOut(total=len(svc.library), offset=offset, limit=limit, items=out)

    @app.get("/api/search", response_model=SearchOut, responses=_ERRORS, summary="Search with a library item")
    def search_by_id(music_id: str | None = Query(None, description="Query with this item's music: finds dances."),
                     dance_id: str | None = Query(None, description="Query with this item's dance: finds music."),
                     top: int = Query(10, ge=1, le=1000),
                     hubness: Literal["none", "is", "dis"] | None = Query(None)) -> SearchOut:
        if (music_id is None) == (dance_id is None):
            raise HTTPException(422, "pass exactly one of music_id or dance_id, e.g. /api/search?music_id=ID&top=10.")
        svc.item(music_id or dance_id or "")
        result = svc.search(music_id=music_id, dance_id=dance_id, top=top, settings=svc.library.settings(hubness=hubness))
        return svc.result_out(result, source=None)

    @app.post("/api/search", response_model=SearchOut, responses=_ERRORS, summary="Search with an uploaded file")
    async def search_by_upload(file: UploadFile = File(..., description="Music (audio/video) or dance (video/keypoints)."),
                               modality: Modality = Form(..., description="What the file is: music or dance."),
                               top: int = Form(10, ge=1, le=1000), start_s: float = Form(0.0, ge=0.0),
                               duration_s: float | None = Form(None, gt=0.0),
                               hubness: Literal["none", "is", "dis"] | None = Form(None)) -> SearchOut:
        upload = await svc.save_upload(file, modality)
        try:
            result = await run_in_threadpool(svc.search, **{modality: upload.path}, start_s=start_s, duration_s=duration_s,
                                          top=top, settings=svc.library.settings(hubness=hubness))
        except BeatDanceError as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise HTTPException(422, upload.clean(str(exc))) from exc
        except Exception as exc:  # untrusted media can fail inside a decoder in ways no check foresees
            log.exception("search with upload %s failed", file.filename)
            raise HTTPException(422, f"{file.filename!r} could not be read as {modality} ({type(exc).__name__}); "
                                     "upload another file.") from exc
        finally:
            upload.close()
        return svc.result_out(result, source=file.filename)

    @app.get("/api/media/{clip_id}/{modality}", responses={**_ERRORS, 200: {"content": {"audio/*": {}, "video/mp4": {}}}},
             response_class=FileResponse, summary="Stream an item's media")
    def media(clip_id: str, modality: Modality) -> FileResponse:
        item = svc.item(clip_id)
        path = svc.media_path(item, modality)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind, filename=path.name, content_disposition_type="inline")

    @app.get("/api/plot/{clip_id}.png", responses={**_ERRORS, 200: {"content": {"image/png": {}}}},
             response_class=Response, summary="Beat plot of a query against an item")
    def plot(clip_id: str, query_modality: Modality = Query(..., description="The query's modality."),
             query_beats: str | None = Query(None, description="The query's beats, seconds from its window start, comma-separated."),
             query_id: str | None = Query(None, description="Use the beats of this item's query_modality instead.")) -> Response:
        item = svc.item(clip_id)
        if (query_beats is None) == (query_id is None):
            raise HTTPException(422, "pass exactly one of query_beats (e.g. 0.5,1.0) or query_id.")
        if query_id is not None:
            beats = svc.item(query_id).side(query_modality).beats_s
        else:
            beats = _parse_beats(query_beats or "")
        with svc.lock:
            png = svc.plot(item=item, query_modality=query_modality, query_beats_s=beats)
        return Response(png, media_type="image/png")

    return app

