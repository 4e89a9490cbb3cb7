"""Training alone and four at once: wall and CPU time per training, to catch threads fighting over cores.

    python benchmarks/side_by_side.py [--jobs 4] [--epochs 3] [--threads N]

Makes a 6-song synthetic store (once, in --work), then runs `beatdance train` (default recipe, --epochs)
once alone and --jobs times side by side, each as its own process, and prints per-training wall and CPU
seconds and the ratios side-by-side / alone. On 2 cores four jobs ideally take 2.5x the wall time of one
(they share 2 cores, plus start-up) at the same CPU time; spinning OpenMP threads show as CPU time that grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from beatdance.pipeline.prepare import PrepareConfig, prepare
from beatdance.synth.media import write_corpus

REPO = Path(__file__).resolve().parents[1]


def _train(store: Path, out: Path, *, epochs: int, threads: int | None) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "beatdance.cli",
        "train",
        "--data",
        str(store),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--no-progress",
        "--json",
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run(store: Path, work: Path, *, jobs: int, epochs: int, threads: int | None, tag: str) -> tuple[float, float]:
    """Mean wall and CPU seconds of ``jobs`` trainings started together."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [_train(store, work / f"{tag}{i}", epochs=epochs, threads=threads) for i in range(jobs)]
    walls = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"train failed: {err[-2000:]}")
        walls.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return sum(walls) / jobs, cpu / jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="--threads of each training (default: its own)")
    parser.add_argument("--work", type=Path, default=REPO / "bench_out" / "side_by_side")
    args = parser.parse_args()
    store = args.work / "store"
    if not store.exists():
        write_corpus(
            out_dir=args.work / "media", num_pairs=6, seed=3, duration_s=30.5, video=False, show_progress=False
        )
        prepare(inputs=[args.work / "media"], out=store, config=PrepareConfig(hop_s=5.0), show_progress=False)
    for old in args.work.glob("run_*"):
        subprocess.run(["rm", "-rf", str(old)], check=True)
    alone = _run(store, args.work, jobs=1, epochs=args.epochs, threads=args.threads, tag="run_alone")
    together = _run(store, args.work, jobs=args.jobs, epochs=args.epochs, threads=args.threads, tag="run_together")
    rows = {"alone": alone, f"{args.jobs} side by side": together}
    print(f"cores this process may use: {len(os.sched_getaffinity(0))}; OMP_WAIT_POLICY set by beatdance on import")
    print("| run | wall s / training | CPU s / training | wall vs alone | CPU vs alone |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in rows.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / alone[0]:.2f}x | {cpu / alone[1]:.2f}x |")
    print(json.dumps({k: {"wall_s": round(w, 2), "cpu_s": round(c, 2)} for k, (w, c) in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
