"""Decode engine benchmark on the reference model (../shared/bench/ref-llama-32m.json, random weights).

    .venv/bin/python bench/bench_engine.py [--quick] [--work /tmp/npc-bench]

Peers run in the same process, on the same packages: onnxruntime-genai's Generator (one per session).
Sections: (1) single-session decode tokens/s; (2) aggregate tokens/s at 1..256 sessions (+ PNG);
(3) Tick budget adherence with 64 sessions; (5) prefix cache time to first token; (6) KV bytes per session.
Writes bench/results/engine.json and bench/results/engine_scaling.png, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.sessions import Engine, TickRequest

ROOT = Path(__file__).resolve().parents[1]
REF_CONFIG = ROOT.parent / "shared" / "bench" / "ref-llama-32m.json"
RESULTS = ROOT / "bench" / "results"
PROMPT_TOKENS = 32
GREEDY = SamplingParams(ignore_eos=True)
THREADS = {"n": 0, "spin": True}   # intra-op threads for both peers (0: ONNX Runtime default, all cores)
LONG_TURN = SessionLimits(max_new_tokens=100_000)


# -- packages -------------------------------------------------------------------------------------------------
def make_ref_hf_dir(out: Path, seed: int = 0) -> Path:
    """The reference LlamaConfig with random weights (fixed seed) and a locally trained byte-level BPE."""
    if (out / "config.json").exists():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = json.loads(REF_CONFIG.read_text())
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(40000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg["vocab_size"], special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(words[i:i + 16]) for i in range(0, len(words), 16)], trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "model_max_length": cfg["max_position_embeddings"]}))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}))
    torch.manual_seed(seed)
    hf_cfg = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "torch_dtype")}
    model = LlamaForCausalLM(LlamaConfig(pad_token_id=0, **hf_cfg)).eval()
    model.save_pretrained(out, safe_serialization=True)
    return out


def export_ref(hf: Path, out: Path, precision: str) -> Path:
    if (out / "manifest.json").exists():
        return out
    from npc_export import export_model

    export_model(hf, out, precision=precision, target="ort", validate=False, progress=False)
    return out


def make_int8_dynamic(fp32_pkg: Path, out: Path) -> Path:
    """`int8dyn`: the fp32 package with its MatMuls quantized by `onnxruntime.quantization.quantize_dynamic`
    (int8 weights, MatMulInteger with dynamic activation quantization: VNNI kernels that scale with the
    batch, unlike MatMulNBits). Same graph otherwise (GQA, shared KV buffer), so both peers can load it."""
    if (out / "manifest.json").exists():
        return out
    import hashlib
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    for f in fp32_pkg.iterdir():
        if f.is_file() and not f.name.startswith("model.onnx"):
            shutil.copy2(f, out / f.name)
    quantize_dynamic(fp32_pkg / "model.onnx", out / "model.onnx", weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], use_external_data_format=True)
    manifest = json.loads((fp32_pkg / "manifest.json").read_text())
    manifest["precision"] = "int8dyn"
    manifest["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8",
                                "op": "MatMulInteger"}
    manifest["files"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                         for f in sorted(out.iterdir()) if f.is_file() and f.name != "manifest.json"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def make_package(hf: Path, work: Path, precision: str) -> Path:
    if precision == "int8dyn":
        return make_int8_dynamic(export_ref(hf, work / "pkg-fp32", "fp32"), work / "pkg-int8dyn")
    return export_ref(hf, work / f"pkg-{precision}", precision)


# -- helpers --------------------------------------------------------------------------------------------------
def prompts(n: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 8000, PROMPT_TOKENS).tolist() for _ in range(n)]


def make_engine(pkg: Path, sessions: int, *, context: int = 512, **kw) -> Engine:
    cfg = EngineConfig(max_sessions=sessions, max_context=context, default_sampling=GREEDY,
                       default_limits=LONG_TURN, verify_hashes=False, intra_op_threads=THREADS["n"],
                       intra_op_spinning=THREADS["spin"], **kw)
    return Engine.from_packages([pkg], config=cfg)


def engine_aggregate(pkg: Path, n: int, tokens: int) -> float:
    """Aggregate decode tokens/s of n sessions batched (prefill excluded)."""
    engine = make_engine(pkg, n, context=PROMPT_TOKENS + tokens + 8)
    name = engine.list_models()[0].name
    sids = [engine.open_session(name, prompt=p) for p in prompts(n)]
    engine.tick([TickRequest(s, 1e9, 1) for s in sids])          # prefill + first token
    t0 = time.perf_counter()
    results = engine.tick([TickRequest(s, 1e9, tokens) for s in sids])
    seconds = time.perf_counter() - t0
    return sum(len(r.token_ids) for r in results) / seconds


def genai_aggregate(pkg: Path, n: int, tokens: int) -> float:
    """onnxruntime-genai: one Generator per session, stepped in turn (prefill excluded)."""
    import onnxruntime_genai as og

    config = og.Config(str(pkg))
    if THREADS["n"]:
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": THREADS["n"]}}}}))
    model = og.Model(config)
    gens = []
    for p in prompts(n):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=PROMPT_TOKENS + tokens + 1, min_length=PROMPT_TOKENS + tokens + 1,
                                  do_sample=False)
        g = og.Generator(model, params)
        g.append_tokens(p)
        gens.append(g)
    t0 = time.perf_counter()
    for _ in range(tokens):
        for g in gens:
            g.generate_next_token()
    seconds = time.perf_counter() - t0
    return n * tokens / seconds


def engine_single(pkg: Path, tokens: int) -> float:
    engine = make_engine(pkg, 1, context=PROMPT_TOKENS + tokens + 8)
    sid = engine.open_session(engine.list_models()[0].name, prompt=prompts(1)[0])
    stream = engine.generate(sid, max_tokens=tokens + 1)
    next(stream)                                                  # prefill + first token
    t0 = time.perf_counter()
    count = sum(len(c.token_ids) for c in stream)
    return count / (time.perf_counter() - t0)


def best_of(fn, repeats: int) -> float:
    return max(fn() for _ in range(repeats))


def interleaved_best(fns: dict, repeats: int) -> dict:
    """Best of `repeats` runs of each peer, alternating peers, so load from elsewhere hits both alike."""
    best = {k: 0.0 for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            best[k] = max(best[k], fn())
    return best


def tick_adherence(pkg: Path, budget_ms: float, ticks: int, sessions: int = 64) -> dict:
    engine = make_engine(pkg, sessions, context=512, sliding_window=True)
    name = engine.list_models()[0].name
    sids = [engine.open_session(name, prompt=p) for p in prompts(sessions)]
    engine.tick([TickRequest(s, 1e9, 1) for s in sids])          # everybody prefilled: steady state
    times, tokens = [], 0
    for _ in range(ticks):
        t0 = time.perf_counter()
        results = engine.tick([TickRequest(s, budget_ms, 4) for s in sids])
        times.append((time.perf_counter() - t0) * 1000)
        tokens += sum(len(r.token_ids) for r in results)
    arr = np.asarray(times)
    return {"budget_ms": budget_ms, "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "tokens_per_tick": tokens / ticks,
            "tokens_per_s_in_ticks": tokens / (arr.sum() / 1000)}


def prefix_ttft(pkg: Path, repeats: int) -> dict:
    rng = np.random.default_rng(7)
    persona = rng.integers(3, 8000, 256).tolist()
    out = {}
    for label, cache_bytes in (("cold", 0), ("warm", 256 << 20)):
        engine = make_engine(pkg, 4, context=512, prefix_cache_bytes=cache_bytes)
        name = engine.list_models()[0].name
        first = engine.open_session(name, prompt=persona + [5, 6, 7])
        engine.tick([TickRequest(first, 1e9, 1)])                # fills the prefix cache (when on)
        times = []
        for r in range(repeats):
            sid = engine.open_session(name, prompt=persona + rng.integers(3, 8000, 16).tolist())
            t0 = time.perf_counter()
            engine.tick([TickRequest(sid, 1e9, 1)])
            times.append((time.perf_counter() - t0) * 1000)
            engine.close_session(sid)
        out[label] = statistics.median(times)
    out["speedup"] = out["cold"] / out["warm"]
    return out


def kv_capacity(pkg: Path) -> dict:
    engine = make_engine(pkg, 1, context=512, warmup=False)
    info = engine.list_models()[0]
    per_session = info.kv_bytes_per_token * 512
    return {"kv_bytes_per_token": info.kv_bytes_per_token, "kv_bytes_per_session_ctx512": per_session,
            "sessions_in_8GiB_ctx512": (8 << 30) // per_session}


def plot(scaling: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, series in scaling.items():
        xs = sorted(int(k) for k in series)
        ax.plot(xs, [series[str(x)] for x in xs], marker="o", label=label,
                linestyle="-" if label.startswith("engine") else "--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("aggregate decode tokens/s")
    ax.set_title("npc-runtime engine vs onnxruntime-genai (ref-llama-32m, CPU)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npc-bench"), help="where packages are cached")
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    ap.add_argument("--sessions", default="1,4,16,64,256")
    ap.add_argument("--precisions", default="fp32,int4,int8dyn",
                    help="fp32, int4, int8 (exporter, MatMulNBits), int8dyn (quantize_dynamic, MatMulInteger)")
    ap.add_argument("--only", default="1,2,3,5,6", help="sections to run")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where engine.json and the PNG go")
    ap.add_argument("--tag", default="", help="suffix of the result file names (e.g. a machine name)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads for both peers (0: all cores)")
    ap.add_argument("--no-spin", action="store_true", help="engine: ORT intra-op threads do not spin")
    args = ap.parse_args()
    THREADS["n"] = args.threads
    THREADS["spin"] = not args.no_spin
    hf = make_ref_hf_dir(args.work / "hf")
    precisions = args.precisions.split(",")
    only = set(args.only.split(","))
    pkgs = {p: make_package(hf, args.work, p) for p in precisions}
    single_tokens = 64 if args.quick else 256
    repeats = 1 if args.quick else 3
    results_dir = args.results
    out_json = results_dir / f"engine{args.tag}.json"
    res: dict = json.loads(out_json.read_text()) if out_json.exists() and only != {"1", "2", "3", "5", "6"} else {}
    res.update({"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "load_avg_at_start": os.getloadavg()[0]},
                "intra_op_threads": args.threads, "intra_op_spinning": not args.no_spin,
                "model": "ref-llama-32m (random weights, seed 0)", "prompt_tokens": PROMPT_TOKENS})
    results_dir.mkdir(parents=True, exist_ok=True)

    if "1" in only:
        print("(1) single session ...", flush=True)
        single = {}
        for p, pkg in pkgs.items():
            both = interleaved_best({"engine": lambda: engine_single(pkg, single_tokens),
                                     "genai": lambda: genai_aggregate(pkg, 1, single_tokens)}, repeats)
            eng, gen = both["engine"], both["genai"]
            single[p] = {"engine_tok_s": eng, "genai_tok_s": gen, "ratio": eng / gen, "tokens": single_tokens}
            print(f"  {p}: engine {eng:.0f} tok/s, genai {gen:.0f} tok/s, x{eng / gen:.2f}", flush=True)
        res["single_session"] = single

    if "2" in only:
        print("(2) aggregate ...", flush=True)
        scaling: dict = {}
        for n in (int(x) for x in args.sessions.split(",")):
            tokens = max(8, min(64, 2048 // n)) if not args.quick else max(4, min(32, 512 // n))
            for p, pkg in pkgs.items():
                both = interleaved_best(
                    {"engine": lambda: engine_aggregate(pkg, n, tokens),
                     "genai": lambda: genai_aggregate(pkg, n, max(4, tokens // 4) if n >= 64 else tokens)},
                    repeats if n <= 16 else 1)
                eng, gen = both["engine"], both["genai"]
                scaling.setdefault(f"engine {p}", {})[str(n)] = eng
                scaling.setdefault(f"genai {p}", {})[str(n)] = gen
                print(f"  n={n} {p}: engine {eng:.0f} tok/s, genai {gen:.0f} tok/s", flush=True)
        table = {}
        for n in scaling[f"engine {precisions[0]}"]:
            best_engine = max(precisions, key=lambda p: scaling[f"engine {p}"][n])
            best_genai = max(precisions, key=lambda p: scaling[f"genai {p}"][n])
            e, g = scaling[f"engine {best_engine}"][n], scaling[f"genai {best_genai}"][n]
            table[n] = {"engine_tok_s": e, "engine_precision": best_engine, "genai_tok_s": g,
                        "genai_precision": best_genai, "ratio": e / g}
        res["aggregate"] = {"per_precision": scaling, "best": table}
        try:
            plot(scaling, results_dir / f"engine_scaling{args.tag}.png")
        except ImportError as exc:
            print(f"  (no plot: {exc})")

    if "3" in only:
        print("(3) tick budget adherence, 64 sessions ...", flush=True)
        ticks = 100 if args.quick else 200
        budgets = (1.0, 2.0, 4.0, 8.0, 16.0)
        res["tick_budget"] = {p: [tick_adherence(pkg, b, ticks) for b in budgets] for p, pkg in pkgs.items()}
        for p, rows in res["tick_budget"].items():
            for r in rows:
                print(f"  {p} budget {r['budget_ms']:.0f} ms: p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms, "
                      f"{r['tokens_per_tick']:.1f} tok/tick", flush=True)

    if "5" in only:
        print("(5) prefix cache ...", flush=True)
        res["prefix_cache_ttft_ms"] = {p: prefix_ttft(pkg, 5) for p, pkg in pkgs.items()}
    if "6" in only:
        res["kv"] = {p: kv_capacity(pkg) for p, pkg in pkgs.items()}
    out_json.write_text(json.dumps(res, indent=2))
    print_table(res)


def print_table(res: dict) -> None:
    print("\n| measure | result | peer | ratio |\n|---|---|---|---|")
    for p, r in res.get("single_session", {}).items():
        print(f"| (1) single session decode, {p} | {r['engine_tok_s']:.0f} tok/s | genai {r['genai_tok_s']:.0f} tok/s "
              f"| {r['ratio']:.2f}x |")
    for n, r in res.get("aggregate", {}).get("best", {}).items():
        print(f"| (2) aggregate, {n} sessions | {r['engine_tok_s']:.0f} tok/s ({r['engine_precision']}) | genai "
              f"{r['genai_tok_s']:.0f} tok/s ({r['genai_precision']}) | {r['ratio']:.2f}x |")
    for p, rows in res.get("tick_budget", {}).items():
        for r in rows:
            print(f"| (3) tick, 64 sessions, {r['budget_ms']:.0f} ms budget, {p} | p50 {r['p50_ms']:.2f} / p99 "
                  f"{r['p99_ms']:.2f} ms, {r['tokens_per_tick']:.1f} tok/tick | budget + 0.5 = "
                  f"{r['budget_ms'] + 0.5:.1f} ms | |")
    for p, r in res.get("prefix_cache_ttft_ms", {}).items():
        print(f"| (5) TTFT, 256-token shared persona, {p} | warm {r['warm']:.1f} ms | cold {r['cold']:.1f} ms "
              f"| {r['speedup']:.1f}x |")
    for p, r in res.get("kv", {}).items():
        print(f"| (6) KV per session at ctx 512, {p} | {r['kv_bytes_per_session_ctx512'] / 2**20:.1f} MiB | "
              f"{r['sessions_in_8GiB_ctx512']} sessions in 8 GiB | |")


if __name__ == "__main__":
    main()
