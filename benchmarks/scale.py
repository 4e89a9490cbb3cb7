"""Scale-out throughput on this machine, and the overheads a cluster's efficiency can be read from.

    python benchmarks/scale.py [--pairs 6] [--duration-s 20] [--train-data STORE] [--epochs 5] [--json out.json]

(a) ``prepare`` of N synthetic pairs: serial, a process pool of 2, Ray with 1 and 2 actors (one local instance,
started once and timed apart). Overhead per item = (wall x workers - serial wall) / items: the worker-seconds
each item costs beyond the serial work (process or actor start-up, imports, scheduling). With serial work t per
item, an executor of W workers runs at t / (t + overhead) of W-fold on W free cores.
(b) Training the default recipe with 1 and 2 DDP ranks (``benchmarks/ddp_speed.py``, the same global batch);
overhead per step = step of 2 ranks - half a step of 1 rank (gather, all-reduce and barrier waits, and on a
shared host the cores the ranks share). Without --train-data it trains on the store of (a), a few clips: give a real
store (hundreds of clips) for step times worth reading.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from beatdance.pipeline.prepare import prepare
from beatdance.synth.media import write_corpus

DDP_SPEED = Path(__file__).with_name("ddp_speed.py")
PREPARE_RUNS = (("serial", "local", None), ("process pool", "local", 2), ("Ray", "ray", 1), ("Ray", "ray", 2))


def store_path(work: Path, *, executor: str, workers: int | None) -> Path:
    return work / f"store_{executor}_{workers or 1}"


def timed_prepare(*, corpus: Path, out: Path, executor: str, workers: int | None) -> tuple[float, int]:
    """Wall seconds and clips written of one ``prepare`` run into a fresh store."""
    started = time.perf_counter()
    report = prepare(inputs=[corpus], out=out, executor=executor, workers=workers, show_progress=False)
    return time.perf_counter() - started, report.clips_written


def prepare_rows(*, corpus: Path, work: Path, pairs: int) -> tuple[list[dict[str, Any]], float]:
    """One row per executor, and the seconds a local Ray instance of 2 CPUs took to start."""
    warm = work / "warm"
    write_corpus(out_dir=warm, num_pairs=1, seed=1, duration_s=12.0, video=False, show_progress=False)
    timed_prepare(corpus=warm, out=work / "warm_store", executor="local", workers=None)  # encoders, kernels
    import ray

    started = time.perf_counter()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 1024**2
    )
    ray_start_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    try:
        for name, executor, workers in PREPARE_RUNS:
            wall_s, clips = timed_prepare(
                corpus=corpus,
                out=store_path(work, executor=executor, workers=workers),
                executor=executor,
                workers=workers,
            )
            rows.append(
                {
                    "stage": "prepare",
                    "mode": name,
                    "workers": workers or 1,
                    "items": pairs,
                    "clips": clips,
                    "wall_s": round(wall_s, 2),
                    "items_per_s": round(pairs / wall_s, 2),
                }
            )
    finally:
        ray.shutdown()
    serial_s = rows[0]["wall_s"]
    for row in rows:
        row["overhead_per_item_s"] = round((row["wall_s"] * row["workers"] - serial_s) / pairs, 2)
    return rows, ray_start_s


def ddp_run(*, data: Path, processes: int, global_batch: int, epochs: int) -> dict[str, Any]:
    """One ``ddp_speed.py`` run (torchrun for more than one process); its JSON line."""
    args = [
        str(DDP_SPEED),
        "--data",
        str(data),
        "--batch-size",
        str(global_batch // processes),
        "--epochs",
        str(epochs),
    ]
    if processes > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"} if processes > 1 else None,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_rows(*, data: Path, global_batch: int, epochs: int) -> list[dict[str, Any]]:
    """Default-recipe training with 1 and 2 ranks on the same global batch; step time and DDP overhead."""
    rows = []
    for processes in (1, 2):
        result = ddp_run(data=data, processes=processes, global_batch=global_batch, epochs=epochs)
        step_s = min(global_batch, result["clips"]) / result["samples_per_s"]
        rows.append(
            {
                "stage": "train",
                "mode": "DDP (gloo)",
                "workers": processes,
                "items": result["clips"],
                "samples_per_s": result["samples_per_s"],
                "step_s": round(step_s, 4),
            }
        )
    rows[1]["overhead_per_step_s"] = round(rows[1]["step_s"] - rows[0]["step_s"] / 2, 4)
    return rows


def markdown(*, prepare: list[dict[str, Any]], ray_start_s: float, train: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | mode | workers | items | throughput | wall or step | overhead |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in prepare:
        lines.append(
            f"| prepare | {r['mode']} | {r['workers']} | {r['items']} pairs | {r['items_per_s']} pairs/s | "
            f"{r['wall_s']} s | {r['overhead_per_item_s']} s/pair |"
        )
    for r in train:
        over = f"{r['overhead_per_step_s']} s/step" if "overhead_per_step_s" in r else "-"
        lines.append(
            f"| train | {r['mode']} | {r['workers']} | {r['items']} clips | {r['samples_per_s']} clips/s | "
            f"{r['step_s']} s/step | {over} |"
        )
    lines.append(f"\nRay local instance start-up (2 CPUs): {ray_start_s:.1f} s, not in the Ray rows.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6, help="synthetic pairs to prepare")
    parser.add_argument("--duration-s", type=float, default=20.0, help="length of each synthetic pair")
    parser.add_argument("--train-data", type=Path, default=None, help="store to train on (default: the prepared one)")
    parser.add_argument("--global-batch", type=int, default=32, help="clips per step over all ranks")
    parser.add_argument("--epochs", type=int, default=5, help="timed training epochs after a warm-up one")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_corpus(
            out_dir=work / "corpus",
            num_pairs=args.pairs,
            seed=3,
            duration_s=args.duration_s,
            video=False,
            show_progress=False,
        )
        prep, ray_start_s = prepare_rows(corpus=work / "corpus", work=work, pairs=args.pairs)
        data = args.train_data or store_path(work, executor="local", workers=None)
        train = train_rows(data=data, global_batch=args.global_batch, epochs=args.epochs)
    print(markdown(prepare=prep, ray_start_s=ray_start_s, train=train))
    if args.json:
        args.json.write_text(
            json.dumps({"prepare": prep, "ray_start_s": round(ray_start_s, 2), "train": train}, indent=2)
        )


if __name__ == "__main__":
    main()
