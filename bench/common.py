"""Shared bench helpers: CPU facts, table printing, JSON results under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
    line = lambda items: "| " + " | ".join(x.ljust(w) for x, w in zip(items, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in body)])


def print_table(rows: list[dict], columns: list[tuple[str, str]], *, title: str | None = None) -> str:
    text = format_table(rows, columns)
    if title:
        print(f"\n{title}")
    print(text)
    return text


def write_json(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "created_unix": int(time.time()), "cpu": cpu_info(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
