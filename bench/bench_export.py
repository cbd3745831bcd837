"""Exporter benchmark on the reference model (../shared/bench/ref-llama-32m.json, random weights, seed 0).

Per precision: export time, self-check time and figures, package size (and its ratio to fp32), and
single-session decode tokens/s under onnxruntime-genai's Generator (32-token prompt, 256 greedy
tokens), side by side with onnxruntime-genai's own model builder output for the same model, run the
same way in one fresh process. Rounds are interleaved (every package once per round, in a seeded
shuffled order) so that load
from other users of the machine hits all of them alike; the best round is used for the ratios
(interference only slows a run down), the median is reported beside it.

    .venv/bin/python -m bench.bench_export [--precisions fp32,int8,int4,fp16] [--rounds 3] [--work DIR]

Prints a table and writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import dir_size, print_table, versions, write_json

REPO = Path(__file__).resolve().parents[1]
REF_CONFIG = REPO.parent / "shared" / "bench" / "ref-llama-32m.json"
PROMPT_TOKENS, NEW_TOKENS = 32, 256


def make_reference_model(out: Path, *, seed: int = 0) -> Path:
    """HF directory of the reference Llama: HF's own init from a fixed seed + a local 8192-BPE."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.helpers.tiny_models import make_tokenizer

    if (out / "model.safetensors").is_file():
        return out
    config = json.loads(REF_CONFIG.read_text())
    out.mkdir(parents=True, exist_ok=True)
    make_tokenizer(out, vocab_size=config["vocab_size"], seed=seed, model_max_length=config["max_position_embeddings"])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config)).eval()
    model.save_pretrained(out, safe_serialization=True)
    return out


def export_ours(src: Path, out: Path, precision: str) -> dict:
    from npc_export import export_model

    start = time.perf_counter()
    result = export_model(src, out, precision=precision, target="ort", force=True, progress=False,
                          allow_validation_failure=True)
    total = time.perf_counter() - start
    t = result.timings
    v = result.manifest["validation"] or {}
    return {
        "export_s": t.get("export", 0) + t.get("write", 0),
        "validate_s": t.get("validate"),
        "total_s": total,
        "size_mb": dir_size(out) / 1e6,
        "fp32_max_abs_diff": v.get("fp32_max_abs_diff"),
        "greedy_agreement": v.get("greedy_agreement"),
        "perplexity_fp32": v.get("perplexity_fp32"),
        "perplexity": v.get("perplexity"),
        "validation_passed": v.get("passed"),
        "quantization": result.manifest["quantization"],
    }


def export_genai(src: Path, out: Path, precision: str) -> dict:
    """The peer: onnxruntime-genai's builder CLI as a newcomer would run it."""
    with tempfile.TemporaryDirectory(prefix="genai-cache-") as cache:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(src), "-o", str(out),
                               "-p", precision, "-e", "cpu", "-c", cache], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "builder failed"}
    return {"export_s": elapsed, "size_mb": dir_size(out) / 1e6}


class GenaiDecode:
    """One onnxruntime-genai model; `run()` = one session: prompt, then NEW_TOKENS greedy tokens."""

    def __init__(self, pkg: Path, vocab: int):
        import onnxruntime_genai as og

        self.og, self.model = og, og.Model(str(pkg))
        self.prompt = np.random.default_rng(0).integers(3, vocab, PROMPT_TOKENS).astype(np.int32)

    def run(self) -> dict:
        og = self.og
        params = og.GeneratorParams(self.model)
        total = PROMPT_TOKENS + NEW_TOKENS
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        gen = og.Generator(self.model, params)
        start = time.perf_counter()
        gen.append_tokens(self.prompt)
        prefill_done = time.perf_counter()
        steps = 0
        while not gen.is_done():
            gen.generate_next_token()
            steps += 1
        end = time.perf_counter()
        return {"decode_tps": steps / (end - prefill_done), "prefill_ms": (prefill_done - start) * 1e3, "tokens": steps}


def decode_all(packages: dict[str, str], *, vocab: int, rounds: int) -> dict[str, dict]:
    """Every package once per round, in a seeded shuffled order per round; best and median tok/s."""
    import random

    runners = {label: GenaiDecode(Path(path), vocab) for label, path in packages.items()}
    for runner in runners.values():
        runner.run()  # warm-up: first-run allocations, prepacking
    samples: dict[str, list[dict]] = {label: [] for label in runners}
    order, rng = list(runners), random.Random(0)
    for r in range(rounds):
        print(f"decode round {r + 1}/{rounds} ...", file=sys.stderr)
        rng.shuffle(order)
        for label in order:
            samples[label].append(runners[label].run())
    out = {}
    for label, runs in samples.items():
        tps = [s["decode_tps"] for s in runs]
        # best run: other users of the machine only ever slow a run down, so the fastest of the
        # interleaved rounds is the steadiest estimate; the median is reported beside it
        out[label] = {"decode_tps": max(tps), "decode_tps_median": statistics.median(tps),
                      "prefill_ms": statistics.median(s["prefill_ms"] for s in runs),
                      "decode_tps_runs": [round(t, 1) for t in tps]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="fp32,int8,int4,fp16")
    parser.add_argument("--peer-precisions", default="fp32,int8,int4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--decode-json", default=None, help=argparse.SUPPRESS)  # internal: decode-only child
    args = parser.parse_args(argv)
    if args.decode_json:
        vocab = json.loads(REF_CONFIG.read_text())["vocab_size"]
        print(json.dumps(decode_all(json.loads(args.decode_json), vocab=vocab, rounds=args.rounds)))
        return 0
    precisions = args.precisions.split(",")
    peer_precisions = args.peer_precisions.split(",")

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = args.work or Path(tmp)
        src = make_reference_model(work / "ref-llama-32m")
        vocab = json.loads(REF_CONFIG.read_text())["vocab_size"]
        rows: dict[tuple[str, str], dict] = {}
        for precision in precisions:
            print(f"export ours {precision} ...", file=sys.stderr)
            rows[("npc-export", precision)] = {"exporter": "npc-export", "precision": precision,
                                               **export_ours(src, work / f"ours-{precision}", precision)}
        for precision in peer_precisions:
            print(f"export genai builder {precision} ...", file=sys.stderr)
            rows[("genai-builder", precision)] = {"exporter": "genai-builder", "precision": precision,
                                                  **export_genai(src, work / f"genai-{precision}", precision)}
        packages = {f"{who}/{precision}": str(work / (f"ours-{precision}" if who == "npc-export" else f"genai-{precision}"))
                    for (who, precision), row in rows.items() if "error" not in row}
        # Decode in a fresh process: the exports above leave torch's thread pool and allocator state
        # in this one, which slowed the ORT runs measured here by up to 20 % (an artefact, not the graphs).
        proc = subprocess.run([sys.executable, "-m", "bench.bench_export", "--decode-json", json.dumps(packages),
                               "--rounds", str(args.rounds)], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"decode run failed: {proc.stderr.strip()[-2000:]}")
        decoded = json.loads(proc.stdout.strip().splitlines()[-1])
        for label, stats in decoded.items():
            who, precision = label.split("/")
            rows[(who, precision)].update(stats)

    fp32 = rows.get(("npc-export", "fp32"), {})
    for (who, precision), row in rows.items():
        base = rows.get((who, "fp32"), {})
        if base.get("size_mb") and row.get("size_mb"):
            row["size_vs_fp32"] = row["size_mb"] / base["size_mb"]
        peer = rows.get(("genai-builder", precision), {})
        if who == "npc-export" and peer.get("decode_tps") and row.get("decode_tps"):
            row["tps_vs_genai"] = row["decode_tps"] / peer["decode_tps"]
        if fp32.get("decode_tps") and row.get("decode_tps"):
            row["tps_vs_our_fp32"] = row["decode_tps"] / fp32["decode_tps"]
    ordered = list(rows.values())
    columns = [("exporter", "exporter"), ("precision", "precision"), ("export_s", "export s"),
               ("validate_s", "self-check s"), ("size_mb", "size MB"), ("size_vs_fp32", "size / fp32"),
               ("decode_tps", "decode tok/s (best)"), ("decode_tps_median", "median"), ("tps_vs_our_fp32", "vs our fp32"), ("tps_vs_genai", "vs genai same prec"),
               ("prefill_ms", "prefill ms"), ("greedy_agreement", "greedy agree"), ("perplexity", "ppl"),
               ("fp32_max_abs_diff", "fp32 max|diff|")]
    table = print_table(ordered, columns, title=f"ref-llama-32m, 1 session, {PROMPT_TOKENS}-token prompt, "
                                                f"{NEW_TOKENS} greedy tokens, onnxruntime-genai Generator")
    ours = {p: rows.get(("npc-export", p), {}) for p in precisions}
    targets = {
        "int4_size_le_0.3_fp32": (ours.get("int4", {}).get("size_vs_fp32") or 9) <= 0.3,
        "int8_size_le_0.3_fp32": (ours.get("int8", {}).get("size_vs_fp32") or 9) <= 0.3,
        "our_int4_ge_genai_int4": (ours.get("int4", {}).get("tps_vs_genai") or 0) >= 1.0,
        "our_int8_ge_2x_our_fp32": (ours.get("int8", {}).get("tps_vs_our_fp32") or 0) >= 2.0,
    }
    print("targets:", json.dumps(targets))
    path = write_json("export", {"model": "ref-llama-32m (random weights, seed 0)", "prompt_tokens": PROMPT_TOKENS,
                                 "new_tokens": NEW_TOKENS, "rounds": args.rounds,
                                 "versions": versions("onnxruntime", "onnxruntime_genai", "torch", "transformers"),
                                 "rows": ordered, "targets": targets, "table": table})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
