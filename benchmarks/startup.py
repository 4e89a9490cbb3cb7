"""Start-up time of the command line: `beatdance --help` and a fresh `beatdance search` of a 10-s query.

    python benchmarks/startup.py [--items 10000] [--runs 5] [--out bench_out/startup]

Each row is the median wall time of --runs fresh processes, beside `python -c pass` measured in the same
run. The search runs against a real library of --items synthetic items (built once, as in
benchmarks/search_speed.py), with a 10-s synthetic song as the query, so it pays every import, the
library opening and the extraction of the query. The rows below it break a fresh search down: each is
one fresh process doing that much and no more (torch; the rest of beatdance's imports; the library
opened; one search), so a row minus the one above is what that step adds. The query is analysed in
numpy (``beatdance.media.spectral``): neither librosa nor numba is imported.
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
    library = args.out / "library"
    if not (library / "library.json").is_file():
        speed.build_e2e_library(args.out, n=args.items, seed=0)
    query = speed.write_query_wav(args.out / "query.wav", duration_s=10.0, seed=1)
    beatdance = [sys.executable, "-m", "beatdance.cli"]
    rows = {
        "python -c pass (baseline)": median_seconds([sys.executable, "-c", "pass"], runs=args.runs),
        "beatdance --help": median_seconds([*beatdance, "--help"], runs=args.runs),
        "beatdance search --help": median_seconds([*beatdance, "search", "--help"], runs=args.runs),
        f"beatdance search ({args.items} items, 10-s music query)": median_seconds(
            [*beatdance, "search", str(library), "--music", str(query), "--top", "5", "--json"], runs=args.runs
        ),
    }
    lib = str(library)
    steps = {
        "  import torch": "import torch",
        "  + import beatdance.library": "import torch; from beatdance.library import Library",
        "  + open the library": f"from beatdance.library import Library; Library.open({lib!r})",
        "  + one search (= the search above, without the CLI)": (
            f"from beatdance.library import Library; Library.open({lib!r}).search(music={str(query)!r}, top=5)"
        ),
    }
    rows.update({name: median_seconds([sys.executable, "-c", code], runs=args.runs) for name, code in steps.items()})
    print("| command | median wall s |")
    print("|---|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} |")
    print(json.dumps({k: round(v, 3) for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
