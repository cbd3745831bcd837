"""Runs benchmarks one after the other (never in parallel: they would share the CPU).

    python -m bench.run_all [--quick] [--only export,engine,grpc,agent] [--out DIR] [--machine LABEL]

Each benchmark prints its table and writes DIR/<name>.json (default bench/results/; + PNG where a picture
helps). Works from a bare clone without `pip install -e .`: the benchmarks run with runtime/, export/ and
proto/ on PYTHONPATH, and a missing module is named before anything runs. The engine comparison needs only
numpy, onnxruntime, onnxruntime-genai, onnx, onnx-ir, torch, transformers, tokenizers and jinja2
(bench/README.md: the one command for another machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [ROOT, ROOT / "runtime", ROOT / "export", ROOT / "proto", ROOT / "package"]
ENGINE_MODULES = ("numpy", "onnxruntime", "onnxruntime_genai", "onnx", "onnx_ir", "torch", "transformers",
                  "tokenizers", "jinja2", "safetensors")
SERVING_MODULES = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "fastapi", "uvicorn", "pydantic",
                   "prometheus_client", "yaml")


class Bench:
    """A benchmark module, its shorter --quick arguments, how it takes an output folder, what it imports."""

    def __init__(self, module: str, quick: list[str], modules: tuple[str, ...], out_flag: str | None = None):
        self.module, self.quick, self.modules, self.out_flag = module, quick, modules, out_flag


BENCHMARKS: dict[str, Bench] = {
    "export": Bench("bench.bench_export", ["--rounds", "2"], ENGINE_MODULES),
    "engine": Bench("bench.bench_engine", ["--quick"], ENGINE_MODULES, out_flag="--out-dir"),
    "grpc": Bench("bench.bench_grpc", ["--quick"], ENGINE_MODULES + SERVING_MODULES, out_flag="--out-dir"),
    "agent": Bench("bench.bench_agent", ["--seconds", "3", "--scenario-seconds", "30"],
                   ENGINE_MODULES + SERVING_MODULES),
    "step_profile": Bench("bench.bench_step_profile", ["--quick"], ENGINE_MODULES),
    "serving_paths": Bench("bench.bench_serving_paths", ["--quick"], ENGINE_MODULES + SERVING_MODULES),
    "cpp_tick": Bench("bench.bench_cpp_tick", ["--quick"], ENGINE_MODULES + SERVING_MODULES),
}


def missing_modules(names: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def bench_env(machine: str | None) -> dict:
    env = dict(os.environ)
    paths = [str(p) for p in SOURCE_ROOTS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if machine:
        env["NPC_BENCH_MACHINE"] = machine   # bench.common.machine_info's label: a column in the report
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, help="folder for the result files (default bench/results/)")
    parser.add_argument("--machine", help="label of this machine in the report (default '<N>-core <CPU model>')")
    parser.add_argument("extra", nargs="*", help="after --: arguments passed to every benchmark (e.g. --threads 16)")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in wanted if name not in BENCHMARKS]:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    sys.path[:0] = [str(p) for p in SOURCE_ROOTS]
    for name in wanted:
        if missing := missing_modules(BENCHMARKS[name].modules):
            print(f"bench {name}: missing Python modules {', '.join(missing)}: install them "
                  "(pip install the wheels named in bench/README.md) or leave this benchmark out with --only",
                  file=sys.stderr)
            return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    env, failed = bench_env(args.machine), []
    for name in wanted:
        bench = BENCHMARKS[name]
        command = [sys.executable, "-m", bench.module, *(bench.quick if args.quick else []), *args.extra]
        if args.out and bench.out_flag:
            command += [bench.out_flag, str(args.out)]
        elif args.out:
            print(f"  ({name} writes to bench/results/: it has no output-folder option)")
        print(f"\n=== {name}: {' '.join(command[1:])} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command, cwd=ROOT, env=env)
        print(f"=== {name}: exit {code} in {time.perf_counter() - started:.0f} s ===", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
