"""Decode engine vs onnxruntime-genai on the reference model (bench/ref/ref-llama-32m.json, random weights).

    python -m bench.bench_engine [--quick] [--threads N] [--precisions fp32,int4,int8dyn] [--out-dir DIR]

Both peers run in this process, on the same packages, with the same intra-op thread count set explicitly
(--threads, default: this machine's physical cores); each comparison alternates the peers (best of
--repeats) so load from elsewhere hits both alike, and every ratio comes from one run. Per-thread CPU time
of every timed block is recorded (how many threads each peer really computed on).

Sections (--sections):
  single     1 session: engine `tick` vs one genai Generator (batch 1), per precision
  aggregate  N sessions started together (--sessions): engine `tick` vs genai's best mode, up to 32 rows per
             Generator (main row), and vs one Generator per session (labelled second row)
  ragged     continuous arrival (--ragged-sessions, one every --ragged-every steps, prompts 8-95 tokens,
             replies 16-63): engine vs one genai Generator per session and vs og.Engine (static batching)
  tick       Tick budget adherence, 64 sessions;  prefix: time to first token with a cached 256-token
             persona;  kv: KV bytes per session (engine only; not in --quick)
Writes DIR/NAME.json (default bench/results/engine.json, or engine-quick.json with --quick) and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runs as a file
    sys.path.insert(0, str(ROOT))

from bench import engine_cases as cases
from bench.common import (
    RESULTS_DIR,
    physical_cores,
    print_table,
    result_metadata,
    write_json,
)
from bench.ref import REF_NAME, export_ref, make_package, make_ref_hf_dir  # noqa: F401 - re-exported

SECTIONS = ("single", "aggregate", "ragged", "tick", "prefix", "kv")
QUICK_SECTIONS = ("single", "aggregate", "ragged")


def interleaved_best(runs: dict[str, Callable[[], dict]], repeats: int) -> dict[str, dict]:
    """Best (highest tok/s) of `repeats` runs of each peer, the peers alternating."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            result = run()
            if name not in best or result["tok_s"] > best[name]["tok_s"]:
                best[name] = result
    return best


def comparison(case: str, sessions: int, precision: str, peer_mode: str, engine: dict, peer: dict) -> dict:
    return {"case": case, "sessions": sessions, "precision": precision, "peer_mode": peer_mode,
            "peer_label": peer.get("mode", ""), "engine_tok_s": engine["tok_s"], "peer_tok_s": peer["tok_s"],
            "ratio": engine["tok_s"] / peer["tok_s"], "engine": engine, "peer": peer}


def say(row: dict) -> None:
    print(f"  {row['case']:>9} n={row['sessions']:<3} {row['precision']:<7} vs genai {row['peer_mode']:<11}: "
          f"engine {row['engine_tok_s']:7.0f} tok/s ({row['engine']['cpu'].get('parallelism')} cores busy), "
          f"genai {row['peer_tok_s']:7.0f} tok/s ({row['peer']['cpu'].get('parallelism')}) -> "
          f"x{row['ratio']:.2f}", flush=True)


def run_single(pkgs: dict, args, th: cases.Threads) -> list[dict]:
    rows = []
    for p, pkg in pkgs.items():
        work = (pkg, 1, args.single_tokens, args.prompt_tokens, th)
        best = interleaved_best({"engine": partial(cases.engine_aggregate, *work),
                                 "genai": partial(cases.genai_batched, *work)}, args.repeats)
        rows.append(comparison("single", 1, p, "batched", best["engine"], best["genai"]))
        say(rows[-1])
    return rows


def run_aggregate(pkgs: dict, args, th: cases.Threads) -> list[dict]:
    rows = []
    for n in args.session_counts:
        tokens = max(8, min(args.agg_tokens, 4096 // n))
        for p, pkg in pkgs.items():
            work = (pkg, n, tokens, args.prompt_tokens, th)
            best = interleaved_best({"engine": partial(cases.engine_aggregate, *work),
                                     "batched": partial(cases.genai_batched, *work)}, args.repeats)
            rows.append(comparison("aggregate", n, p, "batched", best["engine"], best["batched"]))
            say(rows[-1])
            if n > 1:   # the second row: one Generator per session (one run; the engine's best is reused)
                per = cases.genai_per_session(*work)
                rows.append(comparison("aggregate", n, p, "per_session", best["engine"], per))
                say(rows[-1])
    return rows


def run_ragged(pkgs: dict, args, th: cases.Threads) -> list[dict]:
    case = cases.Ragged(args.ragged_sessions, every=args.ragged_every)
    rows = []
    for p, pkg in pkgs.items():
        runs = {"engine": partial(cases.engine_ragged, pkg, case, th),
                "generators": partial(cases.genai_generators_ragged, pkg, case, th)}
        for b in args.genai_engine_batches:
            runs[f"og.Engine/{b}"] = partial(cases.genai_engine_ragged, pkg, case, th, b)
        best = interleaved_best(runs, args.ragged_repeats)
        engine = best.pop("engine")
        for mode, peer in best.items():
            rows.append(comparison("ragged", case.sessions, p, mode, engine, peer))
            say(rows[-1])
    return rows


# -- engine-only sections (full runs) -----------------------------------------------------------------------------
def tick_adherence(pkg: Path, budget_ms: float, ticks: int, th: cases.Threads, sessions: int = 64) -> dict:
    from npc_runtime.sessions import TickRequest

    engine = cases.make_engine(pkg, sessions, th, context=512, sliding_window=True)
    name = engine.list_models()[0].name
    sids = [engine.open_session(name, prompt=p) for p in cases.prompts(sessions, 16)]
    engine.tick([TickRequest(s, 1e9, 1) for s in sids])          # everybody prefilled: steady state
    times, tokens = [], 0
    for _ in range(ticks):
        t0 = time.perf_counter()
        results = engine.tick([TickRequest(s, budget_ms, 4) for s in sids])
        times.append((time.perf_counter() - t0) * 1000)
        tokens += sum(len(r.token_ids) for r in results)
    arr = np.asarray(times)
    return {"budget_ms": budget_ms, "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "tokens_per_tick": tokens / ticks}


def prefix_ttft(pkg: Path, repeats: int, th: cases.Threads) -> dict:
    from npc_runtime.sessions import TickRequest

    rng = np.random.default_rng(7)
    persona = rng.integers(3, 8000, 256).tolist()
    out = {}
    for label, cache_bytes in (("cold", 0), ("warm", 256 << 20)):
        engine = cases.make_engine(pkg, 4, th, context=512, prefix_cache_bytes=cache_bytes)
        name = engine.list_models()[0].name
        engine.tick([TickRequest(engine.open_session(name, prompt=persona + [5, 6, 7]), 1e9, 1)])  # fills the cache
        times = []
        for _ in range(repeats):
            sid = engine.open_session(name, prompt=persona + rng.integers(3, 8000, 16).tolist())
            t0 = time.perf_counter()
            engine.tick([TickRequest(sid, 1e9, 1)])
            times.append((time.perf_counter() - t0) * 1000)
            engine.close_session(sid)
        out[f"{label}_ms"] = statistics.median(times)
    out["speedup"] = out["cold_ms"] / out["warm_ms"]
    return out


def kv_capacity(pkg: Path, th: cases.Threads) -> dict:
    info = cases.make_engine(pkg, 1, th, context=512, warmup=False).list_models()[0]
    per_session = info.kv_bytes_per_token * 512
    return {"kv_bytes_per_token": info.kv_bytes_per_token, "kv_bytes_per_session_ctx512": per_session,
            "sessions_in_8GiB_ctx512": (8 << 30) // per_session}


def parse_args(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npc-bench"), help="where packages are cached")
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats; sections single,aggregate,ragged")
    ap.add_argument("--threads", type=int, default=physical_cores(),
                    help="intra-op threads for BOTH peers (default: physical cores, here %(default)s)")
    ap.add_argument("--no-spin", action="store_true", help="both peers: idle ORT threads sleep instead of spinning")
    ap.add_argument("--engine-spinning", choices=("step", "always"), default="step",
                    help="the engine's intra_op_spinning while spinning (default: the product default, step)")
    ap.add_argument("--precisions", default="fp32,int4,int8dyn",
                    help="fp32, int4, int8 (exporter, MatMulNBits), int8dyn (quantize_dynamic, MatMulInteger)")
    ap.add_argument("--sessions", help="aggregate section (default 16,64; --quick: 64)")
    ap.add_argument("--ragged-sessions", type=int, default=64)
    ap.add_argument("--ragged-every", type=int, default=2, help="steps between two arrivals")
    ap.add_argument("--genai-engine-batches", default="4,32",
                    help="og.Engine static max_batch_size values to try (4 is its default; the best counts)")
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, help="best of N, peers alternating (default 3; --quick: 2)")
    ap.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where NAME.json goes")
    ap.add_argument("--name", help="result name (default engine, engine-quick with --quick)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1: both peers get exactly this many intra-op threads")
    args.sections = tuple((args.sections or ",".join(QUICK_SECTIONS if args.quick else SECTIONS)).split(","))
    if unknown := set(args.sections) - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    args.session_counts = [int(x) for x in (args.sessions or ("64" if args.quick else "16,64")).split(",")]
    args.genai_engine_batches = [int(x) for x in args.genai_engine_batches.split(",") if x]
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.ragged_repeats = 1 if args.quick else 2
    args.single_tokens = 128 if args.quick else 256
    args.agg_tokens = 32 if args.quick else 64
    args.name = args.name or ("engine-quick" if args.quick else "engine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = result_metadata()
    th = cases.Threads(args.threads, spin=not args.no_spin, engine_spin=args.engine_spinning)
    started = time.perf_counter()
    hf = make_ref_hf_dir(args.work / "hf")
    pkgs = {p: make_package(hf, args.work, p) for p in args.precisions.split(",")}
    print(f"packages ready in {time.perf_counter() - started:.0f} s; {th.n} intra-op threads for both peers", flush=True)
    res: dict = {"model": REF_NAME, "threads": th.n, "spinning": th.spin,
                 "engine_spinning": th.engine_spin if th.spin else "never", "prompt_tokens": args.prompt_tokens,
                 "quick": args.quick, "precisions": list(pkgs), "comparisons": []}
    runners = {"single": run_single, "aggregate": run_aggregate, "ragged": run_ragged}
    for section in (s for s in args.sections if s in runners):
        print(f"({section})", flush=True)
        res["comparisons"] += runners[section](pkgs, args, th)
    if "tick" in args.sections:
        res["tick_budget"] = {p: [tick_adherence(pkg, b, 200, th) for b in (2.0, 4.0, 8.0, 16.0)]
                              for p, pkg in pkgs.items()}
    if "prefix" in args.sections:
        res["prefix_cache_ttft"] = {p: prefix_ttft(pkg, 5, th) for p, pkg in pkgs.items()}
    if "kv" in args.sections:
        res["kv"] = {p: kv_capacity(pkg, th) for p, pkg in pkgs.items()}
    columns = [("case", "case"), ("sessions", "sessions"), ("precision", "precision"), ("peer_mode", "genai mode"),
               ("engine_tok_s", "engine tok/s"), ("peer_tok_s", "genai tok/s"), ("ratio", "ratio")]
    res["table"] = print_table(res["comparisons"], columns, title=f"engine vs onnxruntime-genai, {th.n} threads each")
    path = write_json(args.name, res, meta=meta, results_dir=args.out_dir)
    print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
