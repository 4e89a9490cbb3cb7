"""`beatdance serve` under hostile input and load, on a real uvicorn server on loopback: bodies refused as they
arrive, worker processes stopped by their memory cap, crashed, hung or saturated while searches by id keep
answering, and a library grown by `index --add` picked up while serving."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import load_benchmark, serving

from beatdance.library import LibraryConfig, build_library
from beatdance.media.limits import QueryLimits
from beatdance.service import create_app
from beatdance.service.pool import PoolSettings, WorkerPool

MB = 1 << 20
TIMEOUT_S = 12.0  # the test server's per-job limit


def _hostile() -> Any:
    """benchmarks/hostile.py, whose raw HTTP client sends what httpx cannot (a streamed body cut short)."""
    return load_benchmark("hostile")


hostile = _hostile()


class _BodyCounter:
    """ASGI wrapper counting the request-body bytes the server hands to the app (what it has read of them)."""

    def __init__(self, app: Any) -> None:
        self.app, self.bytes = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            self.bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture(scope="module")
def server(small_store, small_model, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A server with a 1-MB upload limit, one extraction worker, a queue of one, a 12-s job limit and keypoint
    files uncapped (so that only the worker's 2-GB memory cap stops a big one), over a library of the store's
    train split (the other clips are added by the tests)."""
    library = tmp_path_factory.mktemp("grow") / "lib"
    build_library(
        data=small_store, model=small_model, out=library, split="train", config=LibraryConfig(), show_progress=False
    )
    app = create_app(
        library,
        max_upload_mb=1,
        cache_dir=tmp_path_factory.mktemp("hard-cache"),
        pool=PoolSettings(workers=1, queue=1, memory_mb=2048, timeout_s=TIMEOUT_S, start_timeout_s=120),
        limits=QueryLimits(max_keypoint_values=10**12),
    )
    counter = _BodyCounter(app)
    with serving(counter) as url:
        yield SimpleNamespace(
            url=url, port=int(url.rsplit(":", 1)[1]), svc=app.state.service, counter=counter, library=library
        )


def _post(server: SimpleNamespace, path: Path, modality: str, timeout_s: float = 120) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(
            f"{server.url}/api/search",
            files={"file": (path.name, fh)},
            data={"modality": modality, "top": "3"},
            timeout=timeout_s,
        )


def _wait_idle(pool: WorkerPool, timeout_s: float = 120) -> int:
    """The pid of a ready worker of ``pool`` (waiting while a replacement warms up)."""
    deadline = time.monotonic() + timeout_s
    while pool.idle < pool.settings.workers or pool.pending:
        assert time.monotonic() < deadline, "no worker became ready"
        time.sleep(0.1)
    return pool.pids()[0]


def _wait_pending(pool: WorkerPool, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.pending < n:
        assert time.monotonic() < deadline, f"{n} jobs never reached the pool"
        time.sleep(0.05)


class _Searches(threading.Thread):
    """Searches by library id, one after another, until stopped: their statuses and latencies."""

    def __init__(self, server: SimpleNamespace) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/api/search"
        self.ids = [it["id"] for it in httpx.get(f"{server.url}/api/items").json()["items"]]
        self.results: list[tuple[int, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.halt.is_set():
                t0 = time.monotonic()
                r = client.get(self.url, params={"music_id": self.ids[len(self.results) % len(self.ids)], "top": 5})
                self.results.append((r.status_code, time.monotonic() - t0))
                time.sleep(0.02)

    def stop(self) -> list[tuple[int, float]]:
        self.halt.set()
        self.join(timeout=30)
        return self.results


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(result=fn()), daemon=True)
    thread.start()
    return thread, out


def npz_declaring(path: Path, *, frames: int, joints: int = 17) -> Path:
    """A keypoint .npz whose ``joints`` header declares (frames, joints, 2) float32 but holds 1 KB of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False, "shape": (frames, joints, 2)})
    fps = io.BytesIO()
    np.save(fps, np.float32(30.0))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("joints.npy", header.getvalue() + bytes(1024))
        zf.writestr("fps.npy", fps.getvalue())
    return path


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server):
    """Content-Length over the limit: 413 at once, naming the limit and the option, and the connection closes."""
    before = server.counter.bytes
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/search HTTP/1.1\r\nHost: test\r\nContent-Length: 104857600\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        status, body = hostile.read_response(sock, deadline=t0 + 10)
        assert sock.recv(1) == b"", "the server closes the connection instead of reading the body"
    detail = json.loads(body)["detail"]
    assert status == 413 and "1 MB upload limit" in detail and "beatdance serve --max-upload-mb" in detail
    assert time.monotonic() - t0 < 5 and server.counter.bytes == before


def test_a_streamed_body_is_cut_off_at_the_limit(server):
    """A chunked body of 256 MB: 413 once 1 MB has arrived; the server read little more, the client sent little more."""
    before = server.counter.bytes
    res = hostile.stream_upload(host="127.0.0.1", port=server.port, total_bytes=256 * MB, chunk_bytes=256 * 1024)
    assert res.status == 413 and "--max-upload-mb" in json.loads(res.body)["detail"]
    read = server.counter.bytes - before
    assert 1 * MB < read <= 1 * MB + 64 * 1024 + 512 * 1024, read
    assert res.sent_bytes < 32 * MB and res.seconds < 10
    assert httpx.get(f"{server.url}/api/library").status_code == 200


def test_memory_cap_stops_a_worker_while_searches_by_id_answer(server, small_corpus, tmp_path):
    """A keypoint file declaring a 3.8-GB array (the keypoint cap lifted) hits the 2-GB worker cap: 413 naming the
    file and the option, the worker is replaced, and searches by id answered all along."""
    _wait_idle(server.svc.checks)
    old = server.svc.checks.pids()
    searches = _Searches(server)
    searches.start()
    r = _post(server, npz_declaring(tmp_path / "liar.npz", frames=30_000_000), "dance")
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "'liar.npz' needs more memory" in detail and "--worker-memory-mb" in detail and str(tmp_path) not in detail
    good = _post(server, small_corpus / "pair_002.npz", "dance")  # waits for the fresh worker
    results = searches.stop()
    assert good.status_code == 200, good.text
    assert server.svc.checks.pids() != old, "the worker that ran out of memory was replaced"
    assert results and all(status == 200 for status, _ in results)
    assert max(seconds for _, seconds in results) < 2.0


def test_an_upload_over_the_query_limits_is_413_and_its_span_is_what_counts(server, tmp_path):
    """A 121-s song passes the 120-s query limit (LimitError -> 413, naming the limit and the option) unless the
    query reads a shorter span of it."""
    import soundfile as sf

    sr = 8000
    y = np.zeros(121 * sr, dtype=np.float32)
    y[:: sr // 2] = 0.8  # a click every 0.5 s
    song = tmp_path / "long song.flac"  # clicks compress well: under the test server's 1-MB upload limit
    sf.write(song, y, sr)
    r = _post(server, song, "music")
    assert r.status_code == 413, r.text
    assert "lasts 121.0 s, over the query limit max_seconds=120" in r.json()["detail"]
    assert "--max-query-seconds" in r.json()["detail"] and str(tmp_path) not in r.json()["detail"]
    with song.open("rb") as fh:
        part = httpx.post(
            f"{server.url}/api/search",
            files={"file": (song.name, fh)},
            timeout=120,
            data={"modality": "music", "start_s": "30", "duration_s": "20"},
        )
    assert part.status_code == 200, part.text
    assert part.json()["query"]["start_s"] >= 30


@pytest.mark.slow
def test_saturation_503_and_a_crashed_worker(server, small_corpus):
    """With the one extraction worker stopped, one upload runs and one waits: the next gets 503 with Retry-After.
    The stopped worker then dies of a segfault: its upload gets 422, the waiting one runs on a fresh worker,
    and searches by id answered throughout."""
    pid = _wait_idle(server.svc.extracts)
    wav = small_corpus / "pair_001.wav"
    os.kill(pid, signal.SIGSTOP)
    searches = _Searches(server)
    searches.start()
    try:
        first, first_out = _in_thread(lambda: _post(server, wav, "music"))
        _wait_pending(server.svc.extracts, 1)
        second, second_out = _in_thread(lambda: _post(server, wav, "music"))
        _wait_pending(server.svc.extracts, 2)
        busy = _post(server, wav, "music")
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
        assert "--workers/--queue" in busy.json()["detail"]
        os.kill(pid, signal.SIGSEGV)
    finally:
        os.kill(pid, signal.SIGCONT)
    first.join(60)
    crashed = first_out["result"]
    assert crashed.status_code == 422 and "'pair_001.wav' could not be read" in crashed.json()["detail"]
    assert "Segmentation fault" in crashed.json()["detail"]
    second.join(120)
    assert second_out["result"].status_code == 200, second_out["result"].text
    results = searches.stop()
    assert results and all(status == 200 for status, _ in results) and max(s for _, s in results) < 2.0


@pytest.mark.slow
def test_a_hung_worker_is_killed_at_the_time_limit(server, small_corpus):
    pid = _wait_idle(server.svc.extracts)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    r = _post(server, small_corpus / "pair_001.wav", "music")
    assert r.status_code == 413 and f"limit of {TIMEOUT_S:g} s per query" in r.json()["detail"]
    assert "--worker-timeout-s" in r.json()["detail"]
    assert TIMEOUT_S <= time.monotonic() - t0 < TIMEOUT_S + 10
    assert pid not in server.svc.extracts.pids()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.slow
def test_a_worker_that_died_idle_costs_no_upload(server, small_corpus):
    """An idle worker killed from outside (the kernel's out-of-memory killer, say): the next upload runs on a
    fresh one instead of being answered for a death it did not cause."""
    pid = _wait_idle(server.svc.extracts)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # dead, not yet reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = _post(server, small_corpus / "pair_001.wav", "music")
    assert r.status_code == 200, r.text
    assert pid not in server.svc.extracts.pids()


@pytest.mark.slow
def test_reload_after_index_add(server, small_store):
    """POST /api/reload swaps in a library grown by --add; without it, the next requests a second later do."""
    summary = httpx.get(f"{server.url}/api/library").json()
    assert summary["items"] == 6
    build_library(data=small_store, out=server.library, split="val", add=True, show_progress=False)
    assert httpx.post(f"{server.url}/api/reload").json() == {"reloaded": True, "path": str(server.library), "items": 9}
    assert httpx.post(f"{server.url}/api/reload").json()["reloaded"] is False
    val_id = (small_store / "splits" / "val.txt").read_text().split()[0]
    assert httpx.get(f"{server.url}/api/search", params={"music_id": val_id}).status_code == 200
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "beatdance.cli",
            "index",
            str(small_store),
            "--out",
            str(server.library),
            "--add",
            "--no-progress",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/api/library").json()["items"] != 12:
        assert time.monotonic() < deadline, "the server did not pick up the grown library"
        time.sleep(0.3)
    assert httpx.get(f"{server.url}/api/items", params={"limit": 1000}).json()["total"] == 12
