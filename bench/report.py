"""Generates the performance tables of README.md and docs/performance.md from bench/results/**/*.json.

    python -m bench.report            # rewrite every <!-- bench:NAME --> ... <!-- /bench:NAME --> block
    python -m bench.report --check    # change nothing: name stale blocks and figures no result file backs

Tables are never typed by hand: each block is rendered from result files alone. Results from different
machines (the `machine.label` every result records: bench.common.result_metadata) appear as separate
columns; a machine's newest full run is used, its newest --quick run when it has no full one. Rows where
our engine is below the peer are marked ▼ and listed under "where we lose".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file as well as with -m
    sys.path.insert(0, str(ROOT))

from bench import serving_report  # noqa: E402
from bench.doc_blocks import LOSS, table  # noqa: E402
RESULTS_DIR = ROOT / "bench" / "results"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "performance.md")
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.DOTALL)


@dataclass(frozen=True)
class Result:
    path: Path
    data: dict

    @property
    def rel(self) -> str:
        try:
            return self.path.relative_to(ROOT).as_posix()
        except ValueError:
            return self.path.as_posix()

    @property
    def machine(self) -> str:
        return self.data.get("machine", {}).get("label") or "unlabelled machine"


def load_results(folder: Path = RESULTS_DIR) -> list[Result]:
    out = []
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"bench.report: {path} is not a readable result file: {exc}") from exc
        if isinstance(data, dict):
            out.append(Result(path, data))
    return out


def engine_runs(results: list[Result]) -> list[Result]:
    """One engine comparison per machine: its newest full run, else its newest quick run; fewest cores first."""
    chosen: dict[str, Result] = {}
    for r in results:
        if "comparisons" not in r.data:
            continue
        key = (not r.data.get("quick", False), r.data.get("timestamp", ""))
        old = chosen.get(r.machine)
        if old is None or key > (not old.data.get("quick", False), old.data.get("timestamp", "")):
            chosen[r.machine] = r
    return sorted(chosen.values(), key=lambda r: (r.data["machine"].get("cores_physical") or 0, r.machine))


# -- formatting ---------------------------------------------------------------------------------------------------
def ratio(value: float) -> str:
    # 0.996 is a loss, and must not read as "1.00× ▼"
    text = f"{value:.3f}×" if 0.995 <= value < 1.0 else f"{value:.2f}×"
    return f"**{text} {LOSS}**" if value < 1.0 else text


def toks(value: float) -> str:
    return f"{value:,.0f} tok/s"


def column_title(run: Result) -> str:
    quick = ", --quick" if run.data.get("quick") else ""
    load = run.data["machine"].get("load_avg_before"), run.data["machine"].get("load_avg_after")
    busy = f", load {load[0][0]:.1f} → {load[1][0]:.1f}" if all(load) else ""
    return f"{run.machine} ({run.data['threads']} threads each{quick}{busy})"


# -- what the rows compare ----------------------------------------------------------------------------------------
def _rows(run: Result, case: str, peer_modes: tuple[str, ...] | None = None, precision: str | None = None,
          sessions: int | None = None) -> list[dict]:
    rows = [c for c in run.data["comparisons"] if c["case"] == case
            and (peer_modes is None or c["peer_mode"] in peer_modes)
            and (precision is None or c["precision"] == precision)]
    if rows and case != "single":
        top = sessions if sessions is not None else max(c["sessions"] for c in rows)
        rows = [c for c in rows if c["sessions"] == top]
    return rows


def best_vs_best(rows: list[dict]) -> dict | None:
    """Our best precision against the peer's best precision and mode, in one run."""
    if not rows:
        return None
    ours = max(rows, key=lambda c: c["engine_tok_s"])
    theirs = max(rows, key=lambda c: c["peer_tok_s"])
    return {"engine_tok_s": ours["engine_tok_s"], "engine_precision": ours["precision"],
            "peer_tok_s": theirs["peer_tok_s"], "peer_precision": theirs["precision"],
            "peer_label": theirs["peer_label"], "sessions": ours["sessions"],
            "ratio": ours["engine_tok_s"] / theirs["peer_tok_s"]}


def headline(run: Result) -> list[tuple[str, dict | None]]:
    single = _rows(run, "single", precision="int4") or _rows(run, "single")
    return [
        ("1 session, int4, same package: engine vs one genai `Generator`",
         best_vs_best(single[:1])),
        ("1 session, best precision each", best_vs_best(_rows(run, "single"))),
        ("{n} sessions started together: engine vs genai batched (≤ 32 rows per `Generator`, its best mode)",
         best_vs_best(_rows(run, "aggregate", ("batched",)))),
        ("{n} sessions started together vs one genai `Generator` per session (second row, not its best mode)",
         best_vs_best(_rows(run, "aggregate", ("per_session",)))),
        (("{n} sessions arriving one every 2 steps, prompts 8–95 tokens (ragged): engine vs genai's best of "
         "`og.Engine` and one `Generator` per session"), best_vs_best(_rows(run, "ragged"))),
    ]


def cell(entry: dict | None) -> str:
    if entry is None:
        return "not run"
    same = entry["engine_precision"] == entry["peer_precision"]
    precisions = entry["engine_precision"] if same else f"{entry['engine_precision']} vs {entry['peer_precision']}"
    return (f"{ratio(entry['ratio'])} ({toks(entry['engine_tok_s'])} vs {toks(entry['peer_tok_s'])}, "
            f"{precisions})")


# -- blocks -------------------------------------------------------------------------------------------------------
def block_engine(results: list[Result]) -> str:
    runs = engine_runs(results)
    if not runs:
        return "No engine result file yet: run `python -m bench.bench_engine`, then `make bench-report`.\n"
    per_run = [headline(r) for r in runs]
    rows = []
    for i, (title, _) in enumerate(per_run[0]):
        sessions = next((h[i][1]["sessions"] for h in per_run if h[i][1]), "N")
        rows.append([title.format(n=sessions)] + [cell(h[i][1]) for h in per_run])
    sources = ", ".join(f"`{r.rel}`" for r in runs)
    return (table(["engine vs onnxruntime-genai, ref-llama-32m, greedy, same threads for both"]
                  + [column_title(r) for r in runs], rows)
            + f"\n\nRatio = our tokens/s ÷ the peer's, measured in one run; {LOSS} = we are below the peer. "
            f"Sources: {sources}; every comparison, per-thread CPU and where we lose: `docs/performance.md`.\n")


def block_engine_detail(results: list[Result]) -> str:
    parts = []
    for run in engine_runs(results):
        rows = [[c["case"], str(c["sessions"]), c["precision"], c["peer_label"] or c["peer_mode"],
                 toks(c["engine_tok_s"]), toks(c["peer_tok_s"]), ratio(c["ratio"]),
                 f"{c['engine']['cpu'].get('parallelism')} / {c['peer']['cpu'].get('parallelism')}",
                 f"{c['engine']['cpu'].get('busy_threads')} / {c['peer']['cpu'].get('busy_threads')}"]
                for c in run.data["comparisons"]]
        parts.append(f"**{column_title(run)}** (`{run.rel}`)\n\n" + table(
            ["case", "sessions", "precision", "genai mode", "engine", "genai", "ratio",
             "cores busy (CPU s / wall s), engine / genai", "threads ≥ 25 % busy, engine / genai"], rows))
    return ("\n\n".join(parts) or "No engine result file yet.") + "\n"


def block_where_we_lose(results: list[Result]) -> str:
    lines = []
    for run in engine_runs(results):
        for c in run.data["comparisons"]:
            if c["ratio"] < 1.0:
                lines.append(f"- {run.machine}: {c['case']}, {c['sessions']} session(s), {c['precision']}, vs genai "
                             f"{c['peer_label'] or c['peer_mode']}: {ratio(c['ratio'])} ({toks(c['engine_tok_s'])} "
                             f"vs {toks(c['peer_tok_s'])})")
    return ("\n".join(lines) if lines else "Nowhere in the measured cases.") + "\n"


def block_runs(results: list[Result]) -> str:
    """The files the generated blocks come from (other result files do not make this block stale)."""
    sources = (engine_runs(results) + [r for r in (newest(results, "export"),) if r is not None]
               + serving_report.current(results, "serving_paths") + serving_report.current(results, "cpp_tick"))
    rows = []
    for r in sorted(sources, key=lambda r: r.rel):
        m, v, git = r.data.get("machine", {}), r.data.get("versions", {}), r.data.get("git") or {}
        if not m.get("label"):   # written before bench.common.result_metadata existed
            rows.append([f"`{r.rel}`", "not recorded", "-", "-", "-", "-", "-", "-", "-"])
            continue
        load = (f"{m['load_avg_before'][0]:.1f} → {m['load_avg_after'][0]:.1f}"
                if m.get("load_avg_before") and m.get("load_avg_after") else "-")
        mem = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "-"
        rows.append([f"`{r.rel}`", m["label"], f"{m.get('cores_logical')} / {m.get('cores_physical')}", mem, load,
                     f"{v.get('onnxruntime')} / {v.get('onnxruntime-genai')} / {v.get('python')}",
                     f"{(git.get('commit') or '-')[:10]}{' (dirty)' if git.get('dirty') else ''}",
                     r.data.get("timestamp", "-"), f"`{r.data.get('command', '-')}`"])
    return table(["file", "machine", "cores logical / physical", "memory", "load 1 min before → after",
                  "onnxruntime / genai / python", "commit", "when (UTC)", "command"], rows) + "\n"


def block_engine_only(results: list[Result]) -> str:
    parts = []
    for run in engine_runs(results):
        d = run.data
        rows = [[f"Tick p50 / p99, 64 sessions, budget {t['budget_ms']:.0f} ms, {p}",
                 f"{t['p50_ms']:.1f} / {t['p99_ms']:.1f} ms, {t['tokens_per_tick']:.1f} tokens per tick"]
                for p, ticks in d.get("tick_budget", {}).items() for t in ticks]
        rows += [[f"time to first token, 256-token persona, {p}", (f"{x['warm_ms']:.1f} ms cached vs "
                  f"{x['cold_ms']:.1f} ms cold ({x['speedup']:.1f}× faster)")]
                 for p, x in d.get("prefix_cache_ttft", {}).items()]
        rows += [[f"KV per session at context 512, {p}", (f"{x['kv_bytes_per_session_ctx512'] / 2**20:.1f} MiB "
                  f"({x['sessions_in_8GiB_ctx512']:,} sessions in 8 GiB)")] for p, x in d.get("kv", {}).items()]
        if rows:
            parts.append(f"**{column_title(run)}** (`{run.rel}`)\n\n" + table(["measure", "result"], rows))
    return ("\n\n".join(parts) or "Only full runs (without --quick) measure these.") + "\n"


def first_full_run(results: list[Result]) -> Result | None:
    """The engine comparison of the machine with fewest cores that has a full run (else its quick run)."""
    runs = engine_runs(results)
    full = [r for r in runs if not r.data.get("quick")]
    return (full or runs or [None])[0]


def block_engine_summary(results: list[Result]) -> str:
    """README's engine-alone figures (int4, the machine with fewest cores that has a full run): a table of
    its own, since a comment line inside a Markdown table would end it."""
    run = first_full_run(results)
    rows = []
    if run is not None and run.data.get("prefix_cache_ttft"):
        d = run.data
        p = "int4" if "int4" in d["prefix_cache_ttft"] else next(iter(d["prefix_cache_ttft"]))
        ttft, ticks = d["prefix_cache_ttft"][p], d.get("tick_budget", {}).get(p, [])
        where = f"[performance](docs/performance.md), `{run.rel}`"
        rows.append(f"| time to first token with a shared 256-token persona ({p}): prefix cache | "
                    f"{ttft['warm_ms']:.1f} ms vs {ttft['cold_ms']:.1f} ms cold ({ttft['speedup']:.1f}× faster) | | "
                    f"{where} |")
        if ticks:
            rows.append(f"| in-process `Tick` p99, 64 sessions ({p}), budgets "
                        + " / ".join(f"{t['budget_ms']:.0f}" for t in ticks) + " ms | "
                        + " / ".join(f"**{t['p99_ms']:.1f} {LOSS}**" if t["p99_ms"] > t["budget_ms"] + 0.5
                                     else f"{t['p99_ms']:.1f}" for t in ticks) + " ms (tokens per tick: "
                        + " / ".join(f"{t['tokens_per_tick']:.1f}" for t in ticks)
                        + ") | ≤ budget + 0.5 ms | " + where + " |")
        kv = d.get("kv", {}).get(p)
        if kv:
            mib = kv["kv_bytes_per_session_ctx512"] / 2**20
            rows.append(f"| KV memory at context 512 | {mib:.0f} MiB per session → "
                        f"{kv['sessions_in_8GiB_ctx512']:,} sessions in 8 GiB | | {where} |")
    if not rows:
        return "Only full runs (without --quick) of `bench.bench_engine` measure these.\n"
    return ("| engine alone, " + f"{run.machine} | result | target | where |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def newest(results: list[Result], benchmark: str) -> Result | None:
    runs = [r for r in results if r.data.get("benchmark") == benchmark and r.data.get("machine", {}).get("label")]
    return max(runs, key=lambda r: r.data.get("timestamp", "")) if runs else None


def int4_vs_genai(ours: dict, peer: dict) -> str:
    if not (ours.get("decode_tps") and peer.get("decode_tps")):
        return "-"
    median = (f", {ratio(ours['decode_tps_median'] / peer['decode_tps_median'])} median"
              if ours.get("decode_tps_median") and peer.get("decode_tps_median") else "")
    return (f"{ratio(ours['decode_tps'] / peer['decode_tps'])} best round{median} "
            f"({toks(ours['decode_tps'])} vs {toks(peer['decode_tps'])})")


def block_export(results: list[Result]) -> str:
    """The exporter's figures (bench_export: packages under onnxruntime-genai's Generator, 1 session)."""
    run = newest(results, "export")
    if run is None:
        return "No exporter result file yet: run `python -m bench.bench_export`, then `make bench-report`.\n"
    rows = {(r["exporter"], r["precision"]): r for r in run.data["rows"]}
    ours = {p: rows.get(("npc-export", p), {}) for p in ("fp32", "int8", "int4")}
    peer = rows.get(("genai-builder", "int4"), {})

    def figure(row: dict, key: str, digits: int = 2) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:.{digits}f}×"

    body = [
        ["int8 / int4 package size vs fp32", (f"{figure(ours['int8'], 'size_vs_fp32', 3)} / "
         f"{figure(ours['int4'], 'size_vs_fp32', 3)}"), "≤ 0.3 ×"],
        ["our int8 decode vs our fp32 (genai Generator, 1 session)", figure(ours["int8"], "tps_vs_our_fp32"),
         "≥ 2 ×"],
        ["our int4 vs onnxruntime-genai's own int4 build, both under its Generator", int4_vs_genai(ours["int4"], peer),
         "≥ 1 × (parity)"],
    ]
    return (table(["exporter, ref-llama-32m", f"{run.machine} (load {run.data['machine']['load_avg_after'][0]:.1f})",
                   "target"], body)
            + f"\n\nSource: `{run.rel}` (`bench/bench_export.py`; details in [docs/exporter.md](docs/exporter.md)).\n")


BLOCKS: dict[str, Callable[[list[Result]], str]] = {
    "engine": block_engine, "engine-detail": block_engine_detail, "where-we-lose": block_where_we_lose,
    "runs": block_runs, "engine-only": block_engine_only, "export": block_export,
    "engine-summary": block_engine_summary,
}

# the served paths (bench_serving_paths, bench_cpp_tick): bench/serving_report.py; issue 10's targets also read
# the engine comparison this module chooses
BLOCKS.update(serving_report.BLOCKS)
BLOCKS["issue10-targets"] = lambda results: serving_report.block_issue10(results, first_full_run(results))

# README's fleet rows: rendered by bench/deploy_report.py (docs/deploy.md's owner), the same text here so that
# one freshness check covers every block of README
BLOCKS["fleet-summary"] = lambda results: _deploy_report().BLOCKS["fleet-summary"]() + "\n"


def _deploy_report():
    from bench import deploy_report
    return deploy_report


# -- documents ----------------------------------------------------------------------------------------------------
def render(text: str, results: list[Result], *, where: str = "") -> str:
    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise SystemExit(f"bench.report: {where} has a block <!-- bench:{name} --> that no renderer knows: "
                             f"use one of {', '.join(BLOCKS)}")
        return match.group(1) + BLOCKS[name](results) + match.group(4)

    return BLOCK.sub(replace, text)


def stale_blocks(documents=DOCUMENTS, results: list[Result] | None = None) -> list[str]:
    results = load_results() if results is None else results
    stale = []
    for doc in documents:
        text = Path(doc).read_text()
        fresh = render(text, results, where=str(doc))
        for old, new in zip(BLOCK.finditer(text), BLOCK.finditer(fresh)):
            if old.group("body") != new.group("body"):
                stale.append(f"{Path(doc).name}: bench:{old.group('name')}")
    return stale


# -- every figure has a result behind it ---------------------------------------------------------------------------
# a ratio with decimals (1.22×, 0.284 ×) or a tokens/s figure (1,353 tok/s); a target (≥ 2 ×, ≤ 0.3 ×) is not
FIGURE = re.compile(r"(?<![≤≥<>] )(?<![≤≥<>\w.,])(?P<num>\d[\d,]*\.\d+)\s?×"
                    r"|(?<![≤≥<>] )(?<![≤≥<>\w.,])(?P<tok>\d[\d,]*(?:\.\d+)?)\s?tok/s")


def performance_text(doc: Path) -> str:
    """The parts of a document whose figures must be backed: README's "Measured" section, other documents
    whole; generated blocks are left out (the freshness check covers them)."""
    text = Path(doc).read_text()
    if Path(doc).name == "README.md":
        start = text.find("\n## Measured")
        end = text.find("\n## ", start + 1)
        text = text[start:end if end > 0 else None] if start >= 0 else ""
    return BLOCK.sub(lambda m: m.group(1) + m.group(4), text)


def result_numbers(results: list[Result]) -> list[float]:
    numbers: list[float] = []

    def walk(value) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            numbers.append(float(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for r in results:
        walk(r.data)
    return numbers


def unbacked_figures(documents=DOCUMENTS, results: list[Result] | None = None) -> list[str]:
    """Figures outside generated blocks that no number in any result file rounds to."""
    results = load_results() if results is None else results
    numbers = result_numbers(results)
    missing = []
    for doc in documents:
        for match in FIGURE.finditer(performance_text(doc)):
            shown = match.group("num") or match.group("tok")
            value = float(shown.replace(",", ""))
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            if not any(round(n, decimals) == value for n in numbers):
                missing.append(f"{Path(doc).name}: {match.group(0)!r}")
    return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = ap.parse_args(argv)
    results = load_results()
    if args.check:
        stale, unbacked = stale_blocks(results=results), unbacked_figures(results=results)
        for name in stale:
            print(f"stale: {name} (run make bench-report)", file=sys.stderr)
        for figure in unbacked:
            print(f"no result file behind {figure}", file=sys.stderr)
        return 1 if stale or unbacked else 0
    for doc in DOCUMENTS:
        text = doc.read_text()
        fresh = render(text, results, where=str(doc))
        if fresh != text:
            doc.write_text(fresh)
            print(f"updated {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
