"""Load and hostile-input test of `beatdance serve` on loopback (issue 11).

    python benchmarks/load_test.py [--clients 50] [--seconds 60] [--items 1000] [--workers N]
                                   [--mix search_id=0.4,items=0.4,upload=0.2] [--out bench_out/load_test]
                                   [--json out.json]

Starts `beatdance serve` in its own process on a library of --items synthetic items (built once, as in
benchmarks/search_speed.py) and runs --clients concurrent clients for --seconds, each sending one request
after another: 40 % searches by library id, 40 % GET /api/items, 20 % uploads of a 10-s WAV. A client
that gets 503 waits the Retry-After it was given. During the run it sends the hostile files it makes
itself, one at a time:

- ``hour.flac``: one hour of clicks at 8 kHz (a few MB that declare an hour of audio);
- ``bomb.npz``: a keypoint file whose ``joints`` array inflates to ~2 GB (a zip member of zeros, deflated);
- ``static.mp4``: four minutes of one still frame (PyAV);
- a 1-GB body streamed with chunked transfer encoding (the client stops when the server answers).

(made by benchmarks/hostile.py).

It reports the status counts and p50/p95/p99 latency per kind, each hostile request's answer and time,
the bytes the client had sent of the 1-GB body when the answer came (an upper bound on what the server
read), and the resident memory of the server (main process, and with its worker processes) sampled every
0.25 s, as a table (and with --json as JSON), with the issue's targets checked.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MIX = {"search_id": 0.4, "items": 0.4, "upload": 0.2}
MB = 1024 * 1024


# --- the server ------------------------------------------------------------------------------------------


def bench_module(name: str) -> Any:
    """benchmarks/NAME.py, loaded by path (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hostile_files = bench_module("hostile")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    library: Path, *, port: int, extra: list[str], log_path: Path, timeout_s: float = 180.0
) -> subprocess.Popen[bytes]:
    """`beatdance serve library` on loopback, once it answers /api/library; its output goes to ``log_path``."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "beatdance.cli", "serve", str(library), "--port", str(port), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log_path}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/library", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the server did not start in {timeout_s:g} s; see {log_path}")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def private_bytes(pid: int) -> int:
    """Anonymous resident memory of process ``pid`` (its heap; not the library files it maps), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


class MemorySampler(threading.Thread):
    """Samples the server's resident memory (main process, and with its workers) every ``every_s``."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def sample(self) -> tuple[int, int]:
        main = rss_bytes(self.pid)
        return main, main + sum(rss_bytes(c) for c in children(self.pid))

    def private(self) -> int:
        """Anonymous resident memory of the main process and its workers together."""
        return sum(private_bytes(p) for p in (self.pid, *children(self.pid)))

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), *self.sample()))
            self.stop.wait(self.every_s)


# --- the clients ---------------------------------------------------------------------------------------
# A lean HTTP/1.1 client on asyncio streams (keep-alive, Content-Length bodies only, which is all the
# service sends): on a 2-core machine httpx's own cost per request would be part of what is measured.


def multipart(fields: dict[str, str], *, name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with ``fields`` and one file part, and its Content-Type."""
    boundary = "beatdance-load-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection to the server, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        try:
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            status_line, _, rest = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
            headers = dict(line.decode().lower().split(": ", 1) for line in rest.strip().split(b"\r\n") if line)
            data = await reader.readexactly(int(headers.get("content-length", 0)))
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise
        if headers.get("connection") == "close":
            self.close()
        return int(status_line.split()[1]), headers, data

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass
class Record:
    kind: str
    status: int
    seconds: float
    detail: str = ""


async def _one(
    client: Client, kind: str, *, ids: list[str], upload: tuple[bytes, str], rng: random.Random
) -> tuple[int, dict[str, str], bytes]:
    if kind == "search_id":
        key = rng.choice(("music_id", "dance_id"))
        return await client.request("GET", f"/api/search?{key}={rng.choice(ids)}&top=10")
    if kind == "items":
        return await client.request("GET", f"/api/items?offset={rng.randrange(0, max(1, len(ids) - 100))}&limit=100")
    return await client.request("POST", "/api/search", body=upload[0], content_type=upload[1])


async def run_client(
    client: Client,
    *,
    until: float,
    ids: list[str],
    upload: tuple[bytes, str],
    mix: dict[str, float],
    seed: int,
    out: list[Record],
) -> None:
    """Send requests of ``mix`` (kind: share) one after another until ``until``; wait Retry-After after a 503."""
    rng = random.Random(seed)
    kinds, weights = list(mix), list(mix.values())
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        t0 = time.monotonic()
        headers: dict[str, str] = {}
        try:
            status, headers, body = await _one(client, kind, ids=ids, upload=upload, rng=rng)
            detail = "" if status == 200 else body.decode(errors="replace")[:200]
        except (OSError, asyncio.IncompleteReadError) as exc:
            status, detail = 0, f"{type(exc).__name__}: {exc}"
        out.append(Record(kind, status, time.monotonic() - t0, detail))
        if status == 503:
            await asyncio.sleep(min(float(headers.get("retry-after", 1)), max(0.0, until - time.monotonic())))
    client.close()


async def send_hostile(
    port: int,
    files: dict[str, tuple[Path, str]],
    *,
    start_at: float,
    gap_s: float,
    out: list[Record],
    sent: dict[str, int],
) -> None:
    """The hostile uploads, one every ``gap_s`` from ``start_at``, and the streamed 1-GB body last."""
    for name, (path, modality) in files.items():
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        body, content_type = multipart({"modality": modality}, name=path.name, data=path.read_bytes())
        client = Client("127.0.0.1", port)
        t0 = time.monotonic()
        status, _, answer = await client.request("POST", "/api/search", body=body, content_type=content_type)
        out.append(Record(name, status, time.monotonic() - t0, answer.decode(errors="replace")[:300]))
        client.close()
        start_at += gap_s
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    res = await asyncio.to_thread(hostile_files.stream_upload, host="127.0.0.1", port=port, total_bytes=1024 * MB)
    out.append(Record("1 GB chunked body", res.status or 0, res.seconds, res.body.decode(errors="replace")[:300]))
    sent["1 GB chunked body"] = res.sent_bytes


async def run_load(
    *,
    port: int,
    clients: int,
    seconds: float,
    mix: dict[str, float],
    wav: bytes,
    hostile: dict[str, tuple[Path, str]],
    seed: int,
) -> tuple[list[Record], list[Record], dict[str, int]]:
    first = Client("127.0.0.1", port)
    _, _, body = await first.request("GET", "/api/items?limit=1000")
    first.close()
    ids = [it["id"] for it in json.loads(body)["items"]]
    upload = multipart({"modality": "music", "top": "10"}, name="query.wav", data=wav)
    until = time.monotonic() + seconds
    records: list[Record] = []
    hostile_records: list[Record] = []
    sent: dict[str, int] = {}
    tasks = [
        run_client(Client("127.0.0.1", port), until=until, ids=ids, upload=upload, mix=mix, seed=seed + i, out=records)
        for i in range(clients)
    ]
    await asyncio.gather(
        *tasks,
        send_hostile(
            port,
            hostile,
            start_at=time.monotonic() + seconds * 0.2,
            gap_s=seconds * 0.6 / (len(hostile) + 1),
            out=hostile_records,
            sent=sent,
        ),
    )
    return records, hostile_records, sent


# --- the report ------------------------------------------------------------------------------------------


def summarize(records: list[Record]) -> list[dict[str, Any]]:
    rows = []
    for kind in MIX:
        mine = [r for r in records if r.kind == kind]
        if not mine:
            continue
        ms = np.array([r.seconds for r in mine]) * 1e3
        statuses: dict[str, int] = {}
        for r in mine:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        rows.append(
            {
                "kind": kind,
                "requests": len(mine),
                "statuses": dict(sorted(statuses.items())),
                **{f"p{q} ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)},
            }
        )
    return rows


def check_targets(
    rows: list[dict[str, Any]], hostile: list[Record], sent: dict[str, int], memory: dict[str, float]
) -> dict[str, bool]:
    statuses = [int(s) for row in rows for s in row["statuses"] for _ in range(row["statuses"][s])]
    search = next((row for row in rows if row["kind"] == "search_id"), None)
    return {
        "no 5xx (and no failed connection)": all(0 < s < 500 for s in statuses + [r.status for r in hostile]),
        "each hostile file answered 4xx in <= 5 s": all(400 <= r.status < 500 and r.seconds <= 5 for r in hostile),
        "1-GB body refused before 100 MB was sent": sent.get("1 GB chunked body", 1 << 40) < 100 * MB,
        "server RSS (with workers) <= 2 GB throughout": memory["max total MB"] <= 2048,
        "server heap (anonymous RSS, with workers) back within 20 % of start after": memory["end private MB"]
        <= 1.2 * memory["start private MB"],
        "search-by-id p95 <= 250 ms": search is not None and search["p95 ms"] <= 250,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{report['clients']} clients for {report['seconds']:g} s, {report['items']} items, "
        f"{report['worker processes']} worker processes (1 checks uploads, the others read them); the server's "
        f"main process used {report['server main CPU s']} CPU s (this script {report['load test CPU s']}); "
        f"load average {report['load average'][0]} at "
        f"start, {report['load average'][1]} at the end ({os.cpu_count()} cores)\n"
    )
    print("| kind | requests | statuses | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|")
    for row in report["rows"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
        print(
            f"| {row['kind']} | {row['requests']} | {statuses} | {row['p50 ms']} | {row['p95 ms']} | {row['p99 ms']} |"
        )
    print("\n| hostile request | status | seconds | answer |\n|---|---|---|---|")
    for r in report["hostile"]:
        print(f"| {r['kind']} | {r['status']} | {r['seconds']:.2f} | {r['detail'][:110]} |")
    for name, n in report["sent_bytes"].items():
        print(f"\n{name}: the client had sent {n / MB:.1f} MB when the answer came")
    mem = report["memory"]
    print(
        f"\nserver RSS, MB: main {mem['start main MB']:.0f} at start, max {mem['max main MB']:.0f}, "
        f"{mem['end main MB']:.0f} after; with workers {mem['start total MB']:.0f} at start, "
        f"max {mem['max total MB']:.0f}, {mem['end total MB']:.0f} after; of which anonymous (the heap, not the "
        f"memory-mapped library files), with workers: {mem['start private MB']:.0f} at start, "
        f"{mem['end private MB']:.0f} after"
    )
    print("\n| target | met |\n|---|---|")
    for name, ok in report["targets"].items():
        print(f"| {name} | {'yes' if ok else 'NO'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--mix",
        default=",".join(f"{k}={v:g}" for k, v in MIX.items()),
        help="Shares of the request kinds (default: %(default)s).",
    )
    parser.add_argument("--workers", type=int, default=None, help="serve --workers (default: the server's)")
    parser.add_argument("--settle-s", type=float, default=5.0, help="Wait after the run before the last RSS sample.")
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "load_test")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (1 <= args.clients <= 500 and 1 <= args.seconds <= 600):
        raise SystemExit("--clients must be 1..500 and --seconds 1..600.")
    mix = {k: float(v) for k, v in (part.split("=") for part in args.mix.split(","))}
    if not set(mix) <= set(MIX):
        raise SystemExit(f"--mix kinds must be among {', '.join(MIX)}.")
    args.out.mkdir(parents=True, exist_ok=True)
    speed = bench_module("search_speed")
    library = speed.ensure_e2e_library(args.out / f"items-{args.items}", n=args.items, seed=0)
    wav = speed.write_query_wav(args.out / "query.wav", duration_s=10.0, seed=1).read_bytes()
    hostile_dir = Path(tempfile.mkdtemp(prefix="hostile-", dir=args.out))
    hostile = {
        "1-h click FLAC": (hostile_files.write_click_flac(hostile_dir / "hour.flac", seconds=3600), "music"),
        "2-GB npz bomb": (
            hostile_files.write_npz_bomb(hostile_dir / "bomb.npz", inflated_bytes=2 * 1024 * MB),
            "dance",
        ),
        "4-min static MP4": (hostile_files.write_static_mp4(hostile_dir / "static.mp4", seconds=240), "dance"),
    }
    port = free_port()
    extra = ["--workers", str(args.workers)] if args.workers else []
    proc = start_server(library, port=port, extra=extra, log_path=args.out / "server.log")
    try:
        sampler = MemorySampler(proc.pid)
        time.sleep(1.0)
        start_main, start_total = sampler.sample()
        start_private = sampler.private()
        workers = len(children(proc.pid))
        sampler.start()
        cpu0, load0 = cpu_seconds(proc.pid), os.getloadavg()[0]
        own0 = time.process_time()
        records, hostile_records, sent = asyncio.run(
            run_load(port=port, clients=args.clients, seconds=args.seconds, mix=mix, wav=wav, hostile=hostile, seed=0)
        )
        cpu, own, load = cpu_seconds(proc.pid) - cpu0, time.process_time() - own0, os.getloadavg()[0]
        time.sleep(args.settle_s)
        sampler.stop.set()
        sampler.join()
        end_main, end_total = sampler.sample()
        end_private = sampler.private()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    samples = np.array([(m, t) for _, m, t in sampler.samples]) / MB
    memory = {
        "start main MB": start_main / MB,
        "max main MB": float(samples[:, 0].max()),
        "end main MB": end_main / MB,
        "start total MB": start_total / MB,
        "max total MB": float(samples[:, 1].max()),
        "end total MB": end_total / MB,
        "start private MB": start_private / MB,
        "end private MB": end_private / MB,
    }
    rows = summarize(records)
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "items": args.items,
        "worker processes": workers,
        "server main CPU s": round(cpu, 1),
        "load test CPU s": round(own, 1),
        "load average": [round(load0, 1), round(load, 1)],
        "rows": rows,
        "hostile": [r.__dict__ for r in hostile_records],
        "sent_bytes": sent,
        "memory": {k: round(v, 1) for k, v in memory.items()},
        "targets": check_targets(rows, hostile_records, sent, memory),
    }
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
