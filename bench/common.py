"""Shared bench helpers: the metadata every result file carries, CPU facts, table printing, JSON results.

Every benchmark records where and how it ran with one helper, so any figure in README.md or docs/ can be
traced to a run (tests/test_bench_report.py checks that):

    meta = result_metadata()             # at the start: machine (load average before), versions, command
    ...                                  # measure
    write_json("engine", data, meta=meta)  # adds load average after, end time; writes bench/results/engine.json

`result_metadata(argv)` and the keys it writes ("machine", "versions", "command", "timestamp", "git") are a
stable interface: bench/report.py and the test read them.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

# offline: ONNX Runtime's telemetry off before any bench imports onnxruntime (npc_runtime sets it too, but a
# bench may import onnxruntime first, e.g. to quantize a reference package)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# distributions whose versions every result records (None where not installed)
RECORDED_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-genai", "numpy", "grpcio", "onnx", "torch", "transformers",
                          "tokenizers", "protobuf", "npc-runtime")
# a name for the machine in reports (e.g. NPC_BENCH_MACHINE=16-core); default "<physical cores>-core <cpu model>"
MACHINE_LABEL_ENV = "NPC_BENCH_MACHINE"


def physical_cores() -> int:
    """Physical cores this process may run on (distinct core ids of its CPU affinity; SMT siblings count once)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))  # no topology (container without /sys): count every CPU
    quota = cgroup_cpu_limit()
    return max(1, min(len(cores), quota) if quota else len(cores))


def cgroup_cpu_limit() -> int | None:
    """CPUs a cgroup v2 quota allows (`cpu.max`, e.g. a container started with --cpus=16), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, int(int(quota) / int(period)))


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_commit() -> dict:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(ROOT), *args], check=False, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # tracked files only: other people's untracked files in a shared tree do not make a run "dirty"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changed) if changed is not None else None}


def machine_info() -> dict:
    cpu = cpu_info()
    physical = physical_cores()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    label = os.environ.get(MACHINE_LABEL_ENV) or f"{physical}-core {cpu['model']}"
    return {"label": label, "cpu_model": cpu["model"], "cores_logical": os.cpu_count(), "cores_usable": usable,
            "cgroup_cpu_limit": cgroup_cpu_limit(),
            "cores_physical": physical, "simd": cpu["simd"], "memory_bytes": _memory_bytes(),
            "platform": platform.platform(), "load_avg_before": list(os.getloadavg())}


def distribution_versions(names: tuple[str, ...] = RECORDED_DISTRIBUTIONS) -> dict:
    out: dict = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def result_metadata(argv: list[str] | None = None) -> dict:
    """Where and how this run happens: call at the start of a benchmark (the load average is taken now).

    argv: the command line to record; default the interpreter's own (`sys.orig_argv`: `python -m bench.x ...`).
    """
    command = list(argv) if argv is not None else list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    return {"machine": machine_info(), "versions": distribution_versions(), "git": _git_commit(),
            "command": shlex.join(command), "cwd": os.getcwd(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "started_unix": time.time()}


def finish_metadata(meta: dict) -> dict:
    """The same metadata with the load average after the run and the run's duration (idempotent)."""
    done = {**meta, "machine": {**meta["machine"], "load_avg_after": list(os.getloadavg())}}
    done["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    done["duration_s"] = round(time.time() - meta["started_unix"], 1)
    return done


def cpu_info() -> dict:
    """Model name, core count and the SIMD features that matter to ORT's CPU kernels."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "f16c")
    return {"model": model, "cores": os.cpu_count(), "simd": [f for f in wanted if f in flags],
            "python": platform.python_version()}


def versions(*modules: str) -> dict:
    out = {}
    for name in modules:
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            out[name] = None
    return out


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """columns: (key, header). Floats: 3 decimals below 10, 1 above, scientific below 0.01."""

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if value and abs(value) < 0.01:
                return f"{value:.1e}"
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    header = [h for _, h in columns]
    body = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda items: "| " + " | ".join(x.ljust(w) for x, w in zip(items, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in body)])


def print_table(rows: list[dict], columns: list[tuple[str, str]], *, title: str | None = None) -> str:
    text = format_table(rows, columns)
    if title:
        print(f"\n{title}")
    print(text)
    return text


def write_json(name: str, data: dict, *, meta: dict | None = None, results_dir: Path | None = None) -> Path:
    """Writes results_dir/NAME.json (default bench/results/) with the run's metadata on top.

    meta: from result_metadata() at the start of the run (so the load average before is before); without it
    the metadata is taken now (load average before == at the end of the run)."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    meta = finish_metadata(meta if meta is not None else result_metadata())
    # the metadata wins over a bench's own "machine" / "versions" keys, merged into them
    payload = {"benchmark": name, "created_unix": int(time.time()), "cpu": cpu_info(), **data, **meta,
               "machine": {**data.get("machine", {}), **meta["machine"]},
               "versions": {**data.get("versions", {}), **meta["versions"]}}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _thread_cpu_ticks() -> dict[int, tuple[str, int]]:
    """tid -> (thread name, user + system clock ticks) for every thread of this process."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        # the name sits in parentheses and may hold spaces: fields after the last ')' are positional
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(task.name)] = (name, int(fields[11]) + int(fields[12]))  # utime, stime (fields 14, 15)
    return out


class ThreadCpu:
    """CPU time each thread of this process spent inside a `with` block (/proc/self/task/*/stat).

    Shows whether a peer really computes on the threads it was given: `busy_threads` counts threads that
    ran at least a quarter of the wall time, `parallelism` is CPU seconds / wall seconds. Spinning idle
    threads count as busy (they do burn the core). Resolution: one clock tick (10 ms): measure blocks of
    a second or more.
    """

    BUSY_SHARE = 0.25

    def __enter__(self):
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._before = _thread_cpu_ticks() if Path("/proc/self/task").is_dir() else {}
        self._t0 = time.perf_counter()
        self.summary: dict = {}
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t0
        if not self._before:
            self.summary = {"wall_s": round(wall, 3), "available": False}
            return
        after = _thread_cpu_ticks()
        deltas = sorted(((after[t][1] - self._before.get(t, ("", 0))[1]) / self._hz, after[t][0]) for t in after)
        deltas = [(s, n) for s, n in reversed(deltas) if s > 0]
        cpu = sum(s for s, _ in deltas)
        self.summary = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                        "parallelism": round(cpu / wall, 2) if wall > 0 else None,
                        "busy_threads": sum(1 for s, _ in deltas if s >= self.BUSY_SHARE * wall),
                        "top_threads": [{"name": n, "cpu_s": round(s, 3)} for s, n in deltas[:8]]}
