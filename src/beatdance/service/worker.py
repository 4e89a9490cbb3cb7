"""The child side of a worker pool: one persistent process that reads uploaded query files.

:class:`~beatdance.service.pool.WorkerPool` starts it as ``python -m beatdance.service.worker FD
MEMORY_BYTES ROLE``. Before importing anything heavy it caps its own address space (``RLIMIT_AS``), so a
file that needs more memory fails here and not in the server, and lowers its CPU priority, so the server's
searches come first. It answers jobs on the pipe one at a time, by role:

- ``check``: is the content what its extension says (PyAV probe, keypoint signature), and does its header
  declare more than the query limits allow? Cheap, so a hostile file is refused without waiting behind
  real work;
- ``extract`` (warmed up first with the library's extractor settings): file -> windows (decode, beats,
  encoder features).

A reply is a dict: ``status`` "ok" (with ``windows`` and ``tempo_bpm`` for an extraction) or "error" with
``kind`` and ``message``; and ``rss_bytes``, the worker's memory after the job (the pool retires a worker
that grew too big). After a MemoryError the process reports and exits (the pool starts a fresh one); a
crash ends it too.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MediaError

if TYPE_CHECKING:
    from ..media.audio import MediaInfo

NICE = 10  # below the server, which answers searches by id while extractions run
_KEYPOINT_MAGIC = {".npz": (b"PK\x03\x04",), ".pkl": (b"\x80",)}  # .csv: any UTF-8 text


class UnsupportedUpload(MediaError):
    """An upload whose content is not what its extension says, or has no stream of the needed kind (415)."""


def check_content(path: Path, *, modality: str, shown: str) -> MediaInfo | None:
    """UnsupportedUpload unless the file's content is what its extension says: media PyAV can open with the
    needed stream (its header is returned), or the keypoint format's signature (None)."""
    from ..media.audio import probe_media
    from ..pipeline.inputs import KEYPOINT_EXTS

    ext = path.suffix.lower()
    if ext in KEYPOINT_EXTS:
        with path.open("rb") as fh:
            head = fh.read(4096)
        ok = head.startswith(_KEYPOINT_MAGIC[ext]) if ext in _KEYPOINT_MAGIC else b"\x00" not in head and _decodes(head)
        if not ok:
            raise UnsupportedUpload(
                f"{shown!r} does not hold {ext} keypoints (its content is of another type); "
                "upload the file under its real extension."
            )
        return None
    try:
        info = probe_media(path)
    except MediaError as exc:
        raise UnsupportedUpload(
            f"{shown!r} is not an audio or video file PyAV can open ({exc}); upload a real {ext} file."
        ) from exc
    if not (info.has_audio if modality == "music" else info.has_video):
        stream = "audio" if modality == "music" else "video"
        wanted = "music or a video with a soundtrack" if modality == "music" else "a dance video or keypoints"
        raise UnsupportedUpload(
            f"{shown!r} has no {stream} stream, so it cannot be a {modality} query; upload {wanted}."
        )
    return info


def _decodes(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut by the 4 KiB read is still text
    return True


def check(job: dict[str, Any]) -> dict[str, Any]:
    """Refuse the upload a job names when its content is not what it claims (UnsupportedUpload) or its header
    declares more than the job's query limits allow (LimitError); a keypoint file is loaded, which refuses
    from its header before allocating."""
    from ..media.keypoints import load_keypoints
    from ..media.limits import QueryLimits, span_s

    path, limits = Path(job["path"]), QueryLimits.from_dict(job["limits"])
    info = check_content(path, modality=job["modality"], shown=job["shown"])
    if info is None:
        load_keypoints(path, limits=limits)
        return {}
    span = span_s(start_s=job["start_s"], duration_s=job["duration_s"], file_duration_s=info.duration_s)
    limits.check_seconds(path=path, seconds=span, what=f"the {job['modality']} of the upload")
    if job["modality"] == "dance" and info.width and info.height:
        limits.check_video(path=path, width=info.width, height=info.height, span_s=span, fps=job["pose_fps"])
    return {}


def extract(job: dict[str, Any]) -> dict[str, Any]:
    """The windows and tempo of the upload a job names, read with the library settings it carries."""
    from ..library.query import extract_query_windows
    from ..media.limits import QueryLimits
    from ..pipeline.prepare import PrepareConfig

    config = PrepareConfig.from_store_config(job["store_config"], source="the served library")
    windows, track = extract_query_windows(
        config=config,
        rhythm=job["rhythm"],
        modality=job["modality"],
        path=Path(job["path"]),
        start_s=job["start_s"],
        duration_s=job["duration_s"],
        limits=QueryLimits.from_dict(job["limits"]),
    )
    return {"windows": windows, "tempo_bpm": float(track.beats.tempo_bpm)}


ROLES = {"check": check, "extract": extract}


def _answer(role: str, job: dict[str, Any]) -> dict[str, Any]:
    """The reply to one job; every failure is a reply of its kind (limit, type, media, server, internal)."""
    from ..errors import BeatDanceError, CheckpointError, LimitError

    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (LimitError, "limit"),
        (UnsupportedUpload, "type"),
        (CheckpointError, "server"),
        (BeatDanceError, "media"),
    )
    try:
        out = ROLES[role](job)
    except MemoryError:
        raise
    except BeatDanceError as exc:
        return {"status": "error", "kind": next(k for t, k in kinds if isinstance(exc, t)), "message": str(exc)}
    except Exception as exc:  # untrusted media can fail inside a decoder in ways no check foresees
        return {
            "status": "error",
            "kind": "internal",
            "message": f"{job['shown']!r} could not be read as "
            f"{job['modality']} ({type(exc).__name__}); upload another file.",
        }
    return {"status": "ok", **out}


def rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _warm_up(store_config: dict[str, Any]) -> None:
    """Read a synthetic click track like a query, so the first real upload pays no model load or JIT."""
    import tempfile

    import numpy as np
    import soundfile as sf

    from ..library.query import extract_query_windows
    from ..pipeline.prepare import PrepareConfig

    config = PrepareConfig.from_store_config(store_config, source="the served library")
    y = np.zeros(int(config.window_s * config.sr), dtype=np.float32)
    y[:: config.sr // 2] = 1.0  # a click every 0.5 s
    with tempfile.TemporaryDirectory(prefix="beatdance-warm-") as tmp:
        sf.write(Path(tmp) / "warm.wav", y, config.sr)
        extract_query_windows(config=config, rhythm=True, modality="music", path=Path(tmp) / "warm.wav")


def _trim_heap() -> None:
    """Give freed heap pages back to the system after a job (glibc keeps them otherwise)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def main(fd: int, memory_bytes: int, role: str) -> None:
    """Serve ``role`` jobs on the connection ``fd`` under an address-space cap of ``memory_bytes`` until EOF."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a decoder crashed by a hostile file leaves no core dump
    os.nice(NICE)
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    try:
        store_config = conn.recv()["store_config"]
        if role == "extract":
            _warm_up(store_config)
        conn.send({"status": "ready", "rss_bytes": rss_bytes()})
        while True:
            try:
                job = conn.recv()
            except EOFError:  # the server closed the pipe or died
                return
            try:
                reply = _answer(role, job)
            except MemoryError:
                conn.send(
                    {
                        "status": "error",
                        "kind": "memory",
                        "rss_bytes": rss_bytes(),
                        "message": f"{job['shown']!r} needs more memory than this server allows one query "
                        f"({memory_bytes / 2**20:.0f} MB, serve --worker-memory-mb); upload a shorter or "
                        "smaller file.",
                    }
                )
                return  # a fresh process replaces this one, whose heap may be fragmented
            del job
            _trim_heap()
            conn.send({**reply, "rss_bytes": rss_bytes()})
            del reply
    finally:
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
