"""`make bench`: the BeatDance protocol on the real Dance with Melody pairs, prepare included.

    python benchmarks/bench.py [--data $BEATDANCE_SHARED_DATA/dance_with_melody] [--out bench_out] [--seeds 4] [--folds 4]

1. Prepares the 32 song/motion-capture pairs into bench_out/store with the offline encoders
   (audio-mel, pose): 10-s windows, because the model pools a clip into 10 one-second segments with a
   10-frame beat grid each (the official layout); a 5-s hop doubles the clips (about 360 instead of
   190) while two windows of a pair always stay in the same fold. Reused when present (resumable).
2. Runs the protocol of `beatdance.pipeline.bench` and writes results.md, results.json, the recall
   curves and rank histograms to bench_out, and prints the Markdown tables.

Skips with a message (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from beatdance.pipeline.bench import BenchConfig, paired_comparisons, run_bench
from beatdance.pipeline.bench_report import format_breakdown, format_markdown
from beatdance.pipeline.prepare import PrepareConfig, prepare

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("BEATDANCE_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=shared / "dance_with_melody")
    parser.add_argument("--out", type=Path, default=REPO / "bench_out")
    parser.add_argument("--seeds", type=int, default=BenchConfig.seeds)
    parser.add_argument("--folds", type=int, default=BenchConfig.folds)
    parser.add_argument("--epochs", type=int, default=BenchConfig.epochs)
    parser.add_argument("--workers", type=int, default=2, help="processes for prepare and for the runs")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"bench skipped: the Dance with Melody data is not at {args.data} (pass --data).")
        return 0
    started = time.perf_counter()
    report = prepare(
        inputs=[args.data], out=args.out / "store", config=PrepareConfig(window_s=10.0, hop_s=5.0), workers=args.workers
    )
    prepared = time.perf_counter() - started
    print(
        f"prepare: {report.clips_written} clips written, {report.clips_existing} reused, "
        f"{len(report.skipped)} inputs skipped, {prepared:.0f} s"
    )
    config = BenchConfig(seeds=args.seeds, folds=args.folds, epochs=args.epochs)
    results = run_bench(store=args.out / "store", out=args.out, config=config, workers=args.workers)
    print(format_markdown(results["summary"]))
    print(paired_comparisons(results["runs"], config))
    print(format_breakdown(results["runs"]))
    total = time.perf_counter() - started
    print(f"prepare {prepared:.0f} s + protocol {results['elapsed_s']:.0f} s = {total:.0f} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
