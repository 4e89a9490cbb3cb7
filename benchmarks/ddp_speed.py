"""Training throughput of the default recipe, in one process or under torchrun: clips per second over the
epochs after a warm-up epoch (start-up excluded), printed by rank 0 as one JSON line.

    python benchmarks/ddp_speed.py --data STORE [--batch-size 32] [--epochs 5]
    torchrun --standalone --nproc_per_node=2 benchmarks/ddp_speed.py --data STORE --batch-size 16

``--batch-size`` is per process, as in ``beatdance train``: 2 processes x 16 train on the global batch of
1 process x 32. Threads per process: the usable cores shared among the processes on this host.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from beatdance.features.loading import load_features
from beatdance.threads import limited_threads, usable_cores
from beatdance.train.distributed import DistEnv, barrier, join_process_group, resolve_device, threads_per_process
from beatdance.train.recipes import get_recipe
from beatdance.train.trainer import Trainer
from beatdance.util import progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared store (with rhythm arrays)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per batch and process")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up one")
    args = parser.parse_args()
    env = DistEnv.from_environ()
    train_set = load_features(args.data, split="train")
    model_config, config = get_recipe("default").configs(
        model={"music_dim": train_set.music_dim, "dance_dim": train_set.dance_dim},
        train={"batch_size": args.batch_size, "epochs": args.epochs + 1, "device": "cpu"},
    )
    threads = threads_per_process(usable_cores(), env=env)
    join_process_group(env, device=resolve_device("cpu", env=env))
    with limited_threads(threads), tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            train_set=train_set,
            val_set=None,
            model_config=model_config,
            config=config,
            out=Path(out),
            data_info=None,
            show_progress=False,
            env=env,
        )
        bar = progress(desc="train", enabled=False)
        trainer.train_epoch(0, bar=bar, started=0.0)
        barrier(env)
        started = time.perf_counter()
        for epoch in range(1, config.epochs):
            trainer.train_epoch(epoch, bar=bar, started=started)
        barrier(env)
        elapsed_s = time.perf_counter() - started
    if env.is_main:
        print(
            json.dumps(
                {
                    "processes": env.world_size,
                    "threads_per_process": threads,
                    "batch_size": args.batch_size,
                    "global_batch_size": args.batch_size * env.world_size,
                    "clips": len(train_set),
                    "samples_per_s": round(len(train_set) * args.epochs / elapsed_s, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
