"""Start-up time of the command line: `beatdance --help` and a fresh `beatdance search` of a 10-s query.

    python benchmarks/startup.py [--items 10000] [--runs 5] [--out bench_out/startup]

Each row is the median wall time of --runs fresh processes, beside `python -c pass` measured in the same
run. The search runs against a real library of --items synthetic items (built once, as in
benchmarks/search_speed.py, embedded by a model of the default recipe's size and of the paper's size),
with a 10-s synthetic song as the query, so it pays every import, the
library opening and the extraction of the query. The rows below it break a fresh search down: each is
one fresh process doing that much and no more (beatdance's imports; the library opened; one search), so
a row minus the one above is what that step adds. The query is analysed and embedded in numpy
(``beatdance.media.spectral``, ``beatdance.model.inference``): neither torch nor librosa is imported; the
last row times ``import torch`` alone, for reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _search_speed():
    spec = importlib.util.spec_from_file_location("search_speed", REPO / "benchmarks" / "search_speed.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def median_seconds(cmd: list[str], *, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "startup")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    speed = _search_speed()
    libraries = {}
    for recipe in ("default", "official"):
        libraries[recipe] = str(speed.ensure_e2e_library(args.out / recipe, n=args.items, seed=0, recipe=recipe))
    query = str(speed.write_query_wav(args.out / "query.wav", duration_s=10.0, seed=1))
    beatdance = [sys.executable, "-m", "beatdance.cli"]
    rows = {
        "python -c pass (baseline)": median_seconds([sys.executable, "-c", "pass"], runs=args.runs),
        "beatdance --help": median_seconds([*beatdance, "--help"], runs=args.runs),
        "beatdance search --help": median_seconds([*beatdance, "search", "--help"], runs=args.runs),
    }
    for recipe, lib in libraries.items():
        name = f"beatdance search ({args.items} items, {recipe} recipe's model, 10-s music query)"
        search = [*beatdance, "search", lib, "--music", query, "--top", "5", "--json"]
        rows[name] = median_seconds(search, runs=args.runs)
        steps = {
            "  import beatdance.library": "from beatdance.library import Library",
            "  + open the library": f"from beatdance.library import Library; Library.open({lib!r})",
            "  + one search (= the search above, without the CLI)": (
                f"from beatdance.library import Library; Library.open({lib!r}).search(music={query!r}, top=5)"
            ),
        }
        for step, code in steps.items():
            rows[f"{step} ({recipe})"] = median_seconds([sys.executable, "-c", code], runs=args.runs)
    rows["import torch (reference: what a search on the CPU no longer imports)"] = median_seconds(
        [sys.executable, "-c", "import torch"], runs=args.runs
    )
    print("| command | median wall s |")
    print("|---|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} |")
    print(json.dumps({k: round(v, 3) for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
