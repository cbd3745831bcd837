"""Runs every benchmark one after the other (never in parallel: they would share the CPU).

    python -m bench.run_all [--quick] [--only export,engine,grpc,agent]

Each benchmark prints its table and writes bench/results/<name>.json (+ PNG where a picture helps).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

# name -> (module, extra args for --quick)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "export": ("bench.bench_export", ["--rounds", "2"]),
    "engine": ("bench.bench_engine", ["--quick"]),
    "grpc": ("bench.bench_grpc", ["--quick"]),
    "agent": ("bench.bench_agent", ["--seconds", "3", "--scenario-seconds", "30"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    failed = []
    for name in wanted:
        module, quick_args = BENCHMARKS[name]
        print(f"\n=== {name} ({module}) ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", module, *(quick_args if args.quick else [])])
        print(f"=== {name}: exit {code} in {time.perf_counter() - started:.0f} s ===", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
