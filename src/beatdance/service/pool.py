"""Bounded pools of persistent worker processes that read uploaded query files for the server.

Checking a user's file, decoding it, tracking its beats and running the encoders happen in a worker
(:mod:`beatdance.service.worker`), never in the server: a file that needs too much memory hits the
worker's address-space cap, a file that hangs a decoder hits the per-job time limit (the worker is
killed), and a file that crashes a decoder takes only the worker down. Each dead worker is replaced in
the background. Jobs run one per worker; at most ``queue`` more wait, and past that :meth:`submit`
refuses at once (:class:`PoolBusy`, answered 503 with Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..errors import BeatDanceError, CheckpointError, LimitError, MediaError, ParameterError
from ..threads import usable_cores
from .worker import UnsupportedUpload

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[BeatDanceError]] = {
    "limit": LimitError,
    "memory": LimitError,
    "type": UnsupportedUpload,
    "media": MediaError,
    "internal": MediaError,
    "server": CheckpointError,
}
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_workers() -> int:
    """Worker processes for this machine: the usable cores less one for the server (at least 1, at most 4)."""
    return max(1, min(4, usable_cores() - 1))


class PoolBusy(BeatDanceError):
    """Every worker is busy and the queue is full (or none could start): try again in ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class PoolSettings:
    """Size and per-job caps of the pool (the ``serve`` options of the same names)."""

    workers: int = 1
    """Worker processes (``--workers``); each holds its own decoders and encoders."""
    queue: int = 64
    """Jobs that may wait for a worker beyond those running (``--queue``). A waiting job holds no thread, only
    its upload on disk; 64 lets 50 clients that all upload at once wait instead of being refused."""
    memory_mb: float = 3072.0
    """Address space of one worker, megabytes (``--worker-memory-mb``). An extraction worker idles at 1.2 GB of
    address space (0.5 GB resident); reading a 60-s dance video with MediaPipe peaked at 2.2 GB."""
    timeout_s: float = 120.0
    """Longest one job may run before its worker is killed (``--worker-timeout-s``)."""
    start_timeout_s: float = 180.0
    """Longest a worker may take to start and warm up."""

    def __post_init__(self) -> None:
        for name, low in (
            ("workers", 1),
            ("queue", 0),
            ("memory_mb", 256),
            ("timeout_s", 0.01),
            ("start_timeout_s", 1),
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
                raise ParameterError(f"{name}={value!r} must be a number >= {low} (serve --{name.replace('_', '-')}).")


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.proc = proc
        self.conn = conn

    def stop(self) -> int:
        """Kill the process if it still runs, close the pipe, and return its exit status."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.conn.close()
        return self.proc.wait()


class WorkerPool:
    """``settings.workers`` worker processes of ``role`` ("check" or "extract", see beatdance.service.worker)
    for the library whose extractor settings are ``store_config``."""

    def __init__(self, settings: PoolSettings, *, role: str, store_config: dict[str, Any]) -> None:
        self.settings = settings
        self.role = role
        self._store_config = store_config
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._failure: str | None = None
        self._job_s = 1.0  # running mean of a job's seconds, for Retry-After
        self._executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix=f"beatdance-{role}")
        for _ in range(settings.workers):
            self._start_worker()

    @property
    def capacity(self) -> int:
        return self.settings.workers + self.settings.queue

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    @property
    def idle(self) -> int:
        """Workers ready and waiting for a job."""
        return self._idle.qsize()

    def pids(self) -> list[int]:
        """Process ids of the workers started and not yet retired (for monitoring)."""
        with self._lock:
            return sorted(w.proc.pid for w in self._live)

    def wait_ready(self) -> None:
        """Block until one worker is ready; CheckpointError when none could start (e.g. a memory cap too small)."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while self._idle.empty():
            if self._failure is not None:
                raise CheckpointError(self._failure)
            if time.monotonic() > deadline:
                raise CheckpointError(
                    f"no {self.role} worker started in {self.settings.start_timeout_s:g} s; see the server log."
                )
            time.sleep(0.05)

    def busy(self) -> PoolBusy | None:
        """The refusal a new job would get now, or None when it would be queued."""
        if self._closed:
            return PoolBusy("the server is shutting down; try again later.", retry_after_s=5)
        if self._pending < self.capacity:
            return None
        retry = int(min(60, max(1, math.ceil(self._pending / self.settings.workers * self._job_s))))
        return PoolBusy(
            f"all {self.settings.workers} {self.role} workers are busy and {self.settings.queue} uploads are "
            f"waiting (serve --workers/--queue); try again in {retry} s.",
            retry_after_s=retry,
        )

    def submit(self, job: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queue ``job`` (see beatdance.service.worker); PoolBusy when the queue is full. The future's result is
        the worker's reply, its exception the beatdance error to answer with."""
        with self._lock:
            refusal = self.busy()
            if refusal is not None:
                raise refusal
            self._pending += 1
        future = self._executor.submit(self._run, job)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop every worker; queued jobs are cancelled."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for worker in live:
            worker.stop()

    def _start_worker(self, delay_s: float = 0.0) -> None:
        threading.Thread(target=self._launch, args=(delay_s,), daemon=True, name="beatdance-worker-start").start()

    def _launch(self, delay_s: float) -> None:
        """Start one worker, wait for its warm-up, and make it idle; on failure record why and retry later."""
        time.sleep(delay_s)
        ours, theirs = socket.socketpair()
        env = {**os.environ, **dict.fromkeys(_THREAD_ENV, "1"), "MALLOC_ARENA_MAX": "2"}
        memory = int(self.settings.memory_mb * 2**20)
        proc = subprocess.Popen(
            [sys.executable, "-m", "beatdance.service.worker", str(theirs.fileno()), str(memory), self.role],
            pass_fds=(theirs.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        worker = _Worker(proc, Connection(ours.detach()))
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.stop()
            return
        try:
            worker.conn.send({"store_config": self._store_config})
            if not worker.conn.poll(self.settings.start_timeout_s):
                raise TimeoutError
            worker.conn.recv()
        except (EOFError, OSError, TimeoutError):
            status = self._retire(worker)
            if self._closed:
                return
            self._failure = (
                f"a {self.role} worker failed to start (exit status {status}) under "
                f"--worker-memory-mb {self.settings.memory_mb:g}; raise it, or see the server log."
            )
            log.error("%s", self._failure)
            self._start_worker(delay_s=min(60.0, max(1.0, 2 * delay_s)))
            return
        self._failure = None
        self._idle.put(worker)

    def _retire(self, worker: _Worker) -> int:
        """Stop ``worker``, forget it, and return its exit status."""
        status = worker.stop()
        with self._lock:
            self._live.discard(worker)
        return status

    def _replace(self, worker: _Worker) -> int:
        status = self._retire(worker)
        if not self._closed:
            self._start_worker()
        return status

    def _take(self) -> _Worker:
        try:
            return self._idle.get(timeout=self.settings.start_timeout_s)
        except queue.Empty:
            raise PoolBusy(
                f"no {self.role} worker became free in {self.settings.start_timeout_s:g} s"
                f"{f' ({self._failure})' if self._failure else ''}; try again later.",
                retry_after_s=30,
            ) from None

    def _sent(self, job: dict[str, Any]) -> _Worker:
        """A worker that has taken ``job``; one that died while idle (not this job's doing) is replaced first."""
        while True:
            worker = self._take()
            try:
                worker.conn.send(job)
                return worker
            except OSError:
                self._replace(worker)

    def _run(self, job: dict[str, Any]) -> dict[str, Any]:
        worker = self._sent(job)
        t0 = time.monotonic()
        try:
            if not worker.conn.poll(self.settings.timeout_s):
                self._replace(worker)
                raise LimitError(
                    f"{job['shown']!r}: reading it took longer than this server's limit of "
                    f"{self.settings.timeout_s:g} s per query (serve --worker-timeout-s); upload a shorter "
                    "clip or pass a duration."
                )
            reply = worker.conn.recv()
        except (EOFError, OSError):
            raise self._died(job, self._replace(worker)) from None
        self._job_s = 0.8 * self._job_s + 0.2 * (time.monotonic() - t0)
        if reply.get("kind") == "memory" or reply["rss_bytes"] > self.settings.memory_mb * 2**20 / 2:
            self._replace(worker)  # give the memory back: a fresh worker idles small
        else:
            self._idle.put(worker)
        if reply["status"] == "ok":
            return reply
        raise _ERRORS[reply["kind"]](reply["message"])

    def _died(self, job: dict[str, Any], status: int) -> BeatDanceError:
        """The error for a job whose worker died with exit ``status`` (negative: the signal)."""
        cap = f"{self.settings.memory_mb:g} MB"
        if status == -signal.SIGKILL:  # the kernel's out-of-memory killer
            return LimitError(
                f"{job['shown']!r} needs more memory than this server allows one query ({cap}, serve "
                "--worker-memory-mb); upload a shorter or smaller file."
            )
        why = (signal.strsignal(-status) or f"signal {-status}") if status < 0 else f"exit status {status}"
        return MediaError(
            f"{job['shown']!r} could not be read as {job['modality']}: the reader stopped ({why}); the file "
            f"is damaged, or needs more than this server's {cap} per query (serve --worker-memory-mb)."
        )
