"""Writes docs/deploy.md's figures from bench/results/fleet.json and tiered_kv.json (between the
`<!-- bench:fleet -->` / `<!-- bench:tiered-kv -->` markers), and README.md's summary rows of them
(`<!-- bench:fleet-summary -->`), so no figure there is typed by hand.

    python -m bench.deploy_report            # rewrite the blocks
    python -m bench.deploy_report --check    # exit 1 when a block differs from what the results give
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "deploy.md", ROOT / "README.md")
RESULTS = ROOT / "bench" / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(result: dict) -> str:
    m = result.get("machine", {})

    def load(key: str) -> str:
        value = m.get(key)
        return f"{value[0]:.1f}" if isinstance(value, list) and value else "?"
    return (f"{m.get('label') or m.get('cpu_model', '?')}, 1-min load average {load('load_avg_before')} before / "
            f"{load('load_avg_after')} after; commit {str(result.get('git', {}).get('commit', '?'))[:10]}")


def fleet_block(r: dict | None) -> str:
    if r is None:
        return "_No result yet: run `python -m bench.bench_fleet`._"
    lines = [f"From `bench/results/fleet.json` ({_machine(r)}): {r['clients']} client threads stepping "
             f"{r['npcs']} NPCs through nginx for {r['seconds']:g} s per row.", "",
             "| replicas | agent steps/s | vs 1 replica | step p50 | step p99 | errors |", "|---|---|---|---|---|---|"]
    base = r["throughput"].get("1", {}).get("steps_per_s")
    for n, t in sorted(r["throughput"].items(), key=lambda kv: int(kv[0])):
        ratio = f"{t['steps_per_s'] / base:.2f}×" if base else ""
        lines.append(f"| {n} | {t['steps_per_s']:.0f} | {ratio} | {t['p50_ms']:.1f} ms | {t['p99_ms']:.1f} ms | "
                     f"{t['errors']} |")
    f = r["failover"]
    lines += ["", f"Failover (3 replicas, {f['npcs']} NPCs, the replica holding {f['moved']} of them SIGKILLed): "
                  f"the first moved NPC answered {f['first_success_after_kill_ms']:.0f} ms after the kill; the "
                  f"moved NPCs' first steps took p50 {f['moved_first_step_p50_ms']:.1f} ms, p99 "
                  f"{f['moved_first_step_p99_ms']:.1f} ms (proxy retry on the next replica + loading the NPC "
                  f"from PostgreSQL); {f['errors']} errors."]
    return "\n".join(lines)


def tiered_block(r: dict | None) -> str:
    if r is None:
        return "_No result yet: run `python -m bench.bench_tiered_kv`._"
    held, snap = r["held"], r["snapshot_bytes"]
    lines = [f"From `bench/results/tiered_kv.json` ({_machine(r)}): model `{r['model']}`, sessions at "
             f"{r['context_tokens']} tokens, {r['slots']} resident slots, host budget "
             f"{r['host_budget_bytes'] / 2**30:.1f} GiB.", "",
             "| what | figure |", "|---|---|",
             f"| sessions held | {held['total']:,} ({held['resident']} resident, {held['host']:,} in host memory, "
             f"{held['disk']:,} on disk) |",
             f"| host memory / disk used | {r['host_bytes_used'] / 2**30:.2f} GiB / {r['disk_bytes_used'] / 2**30:.2f} GiB |",
             f"| snapshot size per token | {snap['with_kv_per_token']:,.0f} B with KV, {snap['without_kv_per_token']:.1f} B "
             f"without |"]
    for tier in ("host", "disk"):
        s = r["restore"].get(tier, {})
        if s.get("n"):
            lines.append(f"| restore from {tier} | p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms (n={s['n']}) |")
    return "\n".join(lines)


def summary_block(fleet: dict | None, tiered: dict | None) -> str:
    """README's fleet table, header included (a comment line inside a Markdown table would end the table)."""
    rows = ["| fleet (issue 11) | result | target | where |", "|---|---|---|---|"]
    if fleet is not None:
        f = fleet["failover"]
        rows.append(f"| fleet of 3 replicas behind nginx, one SIGKILLed ({f['npcs']} NPCs) | first moved NPC answered "
                    f"{f['first_success_after_kill_ms']:.0f} ms after the kill; moved NPCs' first step p99 "
                    f"{f['moved_first_step_p99_ms']:.1f} ms; {f['errors']} errors | | [deploy](docs/deploy.md), "
                    "`bench/results/fleet.json` |")
    if tiered is not None:
        held, host = tiered["held"], tiered["restore"].get("host", {})
        restore = f"; restore from host p50 {host['p50_ms']:.2f} ms, p99 {host['p99_ms']:.2f} ms" if host.get("n") else ""
        rows.append(f"| tiered KV, sessions held at context {tiered['context_tokens']} | {held['total']:,} "
                    f"({held['resident']} resident, {held['host']:,} host, {held['disk']:,} disk){restore} | "
                    f"≥ 10,000; host restore ≤ 5 ms p99 | [deploy](docs/deploy.md), `bench/results/tiered_kv.json` |")
    if len(rows) == 2:
        rows.append("| fleet | no result yet: `python -m bench.bench_fleet` | | |")
    return "\n".join(rows)


BLOCKS = {"fleet": lambda: fleet_block(_load("fleet")), "tiered-kv": lambda: tiered_block(_load("tiered_kv")),
          "fleet-summary": lambda: summary_block(_load("fleet"), _load("tiered_kv"))}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for doc in DOCS:
        text = doc.read_text()
        new = render(text)
        if new != text:
            stale.append(doc.name)
            if not args.check:
                doc.write_text(new)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}: run python -m bench.deploy_report", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
