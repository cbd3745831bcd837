"""Where one decode step's time goes: the per-token path of one session, threads per batch size, the batch-64
step by operator, and the attention kernels ONNX Runtime offers for batched decode.

    .venv/bin/python -m bench.bench_step_profile [--threads N] [--work /tmp/npc-bench] [--quick]

Reference model: bench/ref (../shared/bench/ref-llama-32m.json, random weights), exported by `npcrt export`'s
code: int4, and int8 with `int8_kernel="matmulinteger"`. Sections, all in one run:

1. single: one session, ms per token over the same 128 positions (16-token prompt): the ORT run alone
   (`decoder.decode`), `Engine.step`, `Engine.tick` with 1 token per tick, and onnxruntime-genai's
   `Generator.generate_next_token` on the same package. The engine runs "before" (one ORT session of N
   threads: `small_batch_threads=0`) and "after" (defaults: the small-batch session, measured at warm-up);
   genai gets the same explicit N (`intra_op_num_threads`), and N/2 and 1 (its best one-row mode varies by
   machine; the ratio is against its best). Rounds alternate the cases; best round reported.
2. threads: the ORT step alone (ms) by batch size x intra-op thread count: what the small-batch session's
   auto choice rests on. batched: the engine's decoder step by batch size, before (one session) and after
   (the small-batch session chosen at warm-up).
3. batch64: one decode step of 64 rows (past 48), ORT's own profiler summed by operator type.
4. attention: one attention layer at batch 64 (8 query / 4 kv heads, head 64, KV capacity 512): the
   GroupQueryAttention kernel vs a batched MatMul attention over the padded KV (whole capacity, or a Slice of
   the live prefix), past 48 and 200.

Writes bench/results/step_profile.json (NAME with --name) and prints the tables.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from npc_runtime._ort import import_onnxruntime, import_onnxruntime_genai
from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.onnx_model import (
    DecoderOptions,
    SharedBufferDecoder,
    available_cores,
)
from npc_runtime.decode.package import load_package
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.sessions import Engine, TickRequest

from bench.common import (
    RESULTS_DIR,
    physical_cores,
    print_table,
    result_metadata,
    write_json,
)
from bench.ref import REF_NAME, make_package, make_ref_hf_dir

ort = import_onnxruntime()
PROMPT = 16
GREEDY = SamplingParams(ignore_eos=True)
SETTLE_S = 0.2   # pause between cases: the previous case's spinning ORT pool must not compete with the next


def settle() -> None:
    time.sleep(SETTLE_S)


# -- packages -------------------------------------------------------------------------------------------------
def int8_matmulinteger(hf: Path, work: Path) -> Path:
    """int8 with the MatMulInteger kernel, as `npcrt export --precision int8 --int8-kernel matmulinteger`."""
    out = work / "pkg-int8-matmulinteger"
    if not (out / "manifest.json").exists():
        from npc_export import export_model

        export_model(hf, out, precision="int8", int8_kernel="matmulinteger", validate=False, progress=False,
                     force=True)
    return out


# -- 1. one session -------------------------------------------------------------------------------------------
def make_engine(pkg: Path, threads: int, small_batch_threads: int) -> Engine:
    cfg = EngineConfig(max_sessions=1, max_context=PROMPT + 512, default_sampling=GREEDY, verify_hashes=False,
                       default_limits=SessionLimits(max_new_tokens=100_000), intra_op_threads=threads,
                       small_batch_threads=small_batch_threads)
    return Engine.from_packages([pkg], config=cfg)


def per_token_ms(engine: Engine, mode: str, tokens: int) -> float:
    prompt = np.random.default_rng(1).integers(3, 8000, PROMPT).tolist()
    sid = engine.open_session(engine.list_models()[0].name, prompt=prompt)
    engine.tick([TickRequest(sid, 1e9, 1)])                      # prefill + first token, not timed
    request = [TickRequest(sid, 1e9, 1)]
    decoder = next(iter(engine._models.values())).decoder
    ids, lens = np.array([5], np.int64), np.array([PROMPT], np.int64)
    t0 = time.perf_counter()
    for i in range(tokens):
        if mode == "tick":
            engine.tick(request)
        elif mode == "step":
            engine.step({sid: 1})
        else:                                                      # the ORT run alone, same positions
            lens[0] = PROMPT + i
            decoder.decode(0, ids, lens)
    seconds = time.perf_counter() - t0
    engine.close_session(sid)
    return seconds / tokens * 1e3


def genai_generator(pkg: Path, threads: int):
    og = import_onnxruntime_genai()
    config = og.Config(str(pkg))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    return og, og.Model(config)


def genai_per_token_ms(og, model, tokens: int) -> float:
    prompt = np.random.default_rng(1).integers(3, 8000, PROMPT).tolist()
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=PROMPT + tokens + 1, min_length=PROMPT + tokens + 1, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt)
    generator.generate_next_token()                                # first token, as the engine's untimed one
    t0 = time.perf_counter()
    for _ in range(tokens):
        generator.generate_next_token()
    return (time.perf_counter() - t0) / tokens * 1e3


def run_single(pkgs: dict[str, Path], threads: int, tokens: int, rounds: int) -> list[dict]:
    """Engine before / after at `threads`; genai at `threads`, half of them and 1 (its best one-row mode varies)."""
    rows = []
    for precision, pkg in pkgs.items():
        engines = {"before": make_engine(pkg, threads, 0), "after": make_engine(pkg, threads, -1)}
        cases = {f"{mode} {when}": (lambda e=e, m=mode: per_token_ms(e, m, tokens))
                 for when, e in engines.items() for mode in ("ort", "step", "tick")}
        peers = {f"genai Generator, {t} thr": genai_generator(pkg, t)
                 for t in sorted({threads, max(1, threads // 2), 1}, reverse=True)}
        for name, (og, model) in peers.items():
            cases[name] = lambda og=og, model=model: genai_per_token_ms(og, model, tokens)
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, fn in cases.items():
                settle()
                samples[name].append(fn())
        genai_best = min(min(samples[name]) for name in peers)
        for name, values in samples.items():
            engine = engines.get(name.split()[-1])
            rows.append({"precision": precision, "case": name, "best_ms": min(values),
                         "median_ms": statistics.median(values), "tok_s": 1e3 / min(values),
                         "vs_genai_best": genai_best / min(values), "small_batch": _small_batch(engine)})
        del engines, peers
    return rows


def _small_batch(engine: Engine | None) -> str:
    if engine is None:
        return ""
    decoder = next(iter(engine._models.values())).decoder
    if decoder.small_session is None:
        return "off"
    return f"batch <= {decoder.small_batch_max}, {decoder.small_batch_threads} thr"


# -- 2. threads x batch ---------------------------------------------------------------------------------------
def thread_counts(limit: int) -> list[int]:
    counts, t = [], 1
    while t < limit:
        counts.append(t)
        t *= 2
    return counts + [limit]


def step_ms(decoder, batch: int, past: int, repeats: int) -> float:
    """Best of `repeats` decode steps (ms): interference from elsewhere only ever adds time."""
    ids, lens = np.ones(batch, np.int64), np.full(batch, past, np.int64)
    decoder.decode(0, ids, lens)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoder.decode(0, ids, lens)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def run_threads(pkgs: dict[str, Path], threads: int, batches: list[int], repeats: int) -> list[dict]:
    rows = []
    for precision, pkg in pkgs.items():
        package = load_package(pkg, verify_hashes=False)
        decoders = {t: SharedBufferDecoder(package, DecoderOptions(max_slots=max(batches), capacity=128,
                                                                   intra_op_threads=t))
                    for t in thread_counts(threads)}
        for batch in batches:
            row = {"precision": precision, "batch": batch}
            for t, decoder in decoders.items():
                settle()
                row[f"{t} thr ms"] = step_ms(decoder, batch, 48, max(9, repeats // batch))
            best = min(decoders, key=lambda t: row[f"{t} thr ms"])
            row["best threads"] = best
            rows.append(row)
        del decoders
    return rows


def run_batched(pkgs: dict[str, Path], threads: int, batches: list[int], repeats: int) -> list[dict]:
    """The engine's decoder before (one session of `threads`) and after (auto: warm-up's choice), by batch."""
    rows = []
    for precision, pkg in pkgs.items():
        decoders = {}
        for when, small in (("before", 0), ("after", -1)):
            cfg = EngineConfig(max_sessions=max(batches), max_context=128, verify_hashes=False,
                               intra_op_threads=threads, small_batch_threads=small)
            engine = Engine.from_packages([pkg], config=cfg)
            decoders[when] = (engine, next(iter(engine._models.values())).decoder)
        for batch in batches:
            settle()
            before = step_ms(decoders["before"][1], batch, 48, max(9, repeats // batch))
            settle()
            after = step_ms(decoders["after"][1], batch, 48, max(9, repeats // batch))
            rows.append({"precision": precision, "batch": batch, "before_ms": before, "after_ms": after,
                         "speedup": before / after, "small_batch": _small_batch(decoders["after"][0])})
        del decoders
    return rows


# -- 3. batch-64 step by operator -----------------------------------------------------------------------------
def run_batch64(pkgs: dict[str, Path], threads: int, steps: int) -> list[dict]:
    rows = []
    for precision, pkg in pkgs.items():
        package = load_package(pkg, verify_hashes=False)
        decoder = SharedBufferDecoder(package, DecoderOptions(max_slots=64, capacity=512, intra_op_threads=threads))
        with tempfile.TemporaryDirectory(prefix="npc-prof-") as tmp:
            so = ort.SessionOptions()
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "step")
            so.intra_op_num_threads = threads
            so.enable_mem_pattern = False
            decoder.session = ort.InferenceSession(str(package.model_file), so, providers=["CPUExecutionProvider"])
            wall = [step_ms(decoder, 64, 48, 1) for _ in range(steps + 2)][2:]   # 2 runs each: warm + timed
            events = json.loads(Path(decoder.session.end_profiling()).read_text())
        runs = sum(1 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        by_op: collections.Counter = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                by_op[e["args"]["op_name"]] += e["dur"]
        total = sum(by_op.values())
        for op, us in by_op.most_common(6):
            rows.append({"precision": precision, "op": op, "ms_per_step": us / runs / 1e3, "share": us / total,
                         "step_ms (profiled)": statistics.median(wall)})
    return rows


# -- 4. attention kernels at batch 64 -------------------------------------------------------------------------
def _attention_models(batch: int, heads: int, kv_heads: int, head: int, capacity: int):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    def value(name, dtype, shape):
        return h.make_tensor_value_info(name, dtype, shape)

    gqa = h.make_graph(
        [h.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "seqlens", "total"], ["o", "prk", "prv"],
                     domain="com.microsoft", num_heads=heads, kv_num_heads=kv_heads)], "gqa",
        [value("q", T.FLOAT, [batch, 1, heads * head]), value("k", T.FLOAT, [batch, 1, kv_heads * head]),
         value("v", T.FLOAT, [batch, 1, kv_heads * head]), value("pk", T.FLOAT, [batch, kv_heads, capacity, head]),
         value("pv", T.FLOAT, [batch, kv_heads, capacity, head]), value("seqlens", T.INT32, [batch]),
         value("total", T.INT32, [])],
        [value("o", T.FLOAT, [batch, 1, heads * head]), value("prk", T.FLOAT, [batch, kv_heads, capacity, head]),
         value("prv", T.FLOAT, [batch, kv_heads, capacity, head])])

    def matmul(sliced: bool):
        # queries grouped per kv head [B, kv_heads, group, head]: one batched MatMul per layer, K read once
        nodes, k, v = [], "pk", "pv"
        if sliced:
            nodes += [h.make_node("Slice", ["pk", "zero", "live", "two"], ["ks"]),
                      h.make_node("Slice", ["pv", "zero", "live", "two"], ["vs"])]
            k, v = "ks", "vs"
        nodes += [h.make_node("Transpose", [k], ["kt"], perm=[0, 1, 3, 2]), h.make_node("MatMul", ["q", "kt"], ["s"]),
                  h.make_node("Mul", ["s", "scale"], ["ss"]), h.make_node("Add", ["ss", "bias"], ["sb"]),
                  h.make_node("Softmax", ["sb"], ["p"], axis=-1), h.make_node("MatMul", ["p", v], ["o"])]
        init = [h.make_tensor("scale", T.FLOAT, [], [head ** -0.5])]
        if sliced:
            init += [h.make_tensor("zero", T.INT64, [1], [0]), h.make_tensor("two", T.INT64, [1], [2])]
        inputs = [value("q", T.FLOAT, [batch, kv_heads, heads // kv_heads, head]),
                  value("pk", T.FLOAT, [batch, kv_heads, capacity, head]),
                  value("pv", T.FLOAT, [batch, kv_heads, capacity, head]), value("bias", T.FLOAT, [batch, 1, 1, "W"])]
        if sliced:
            inputs.append(value("live", T.INT64, [1]))
        graph = h.make_graph(nodes, "mm", inputs, [value("o", T.FLOAT, [batch, kv_heads, heads // kv_heads, head])],
                             initializer=init)
        return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])

    gqa_model = h.make_model(gqa, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    return {"GroupQueryAttention": gqa_model, "MatMul, whole capacity": matmul(False),
            "MatMul, Slice of the live prefix": matmul(True)}, onnx


def run_attention(threads: int, repeats: int, batch: int = 64, capacity: int = 512) -> list[dict]:
    heads, kv_heads, head = 8, 4, 64
    models, _ = _attention_models(batch, heads, kv_heads, head, capacity)
    rng = np.random.default_rng(0)
    pk = rng.standard_normal((batch, kv_heads, capacity, head), dtype=np.float32)
    pv = rng.standard_normal((batch, kv_heads, capacity, head), dtype=np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sessions = {name: ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
                for name, m in models.items()}
    rows = []
    for past in (48, 200):
        row = {"batch": batch, "past": past, "capacity": capacity}
        io = sessions["GroupQueryAttention"].io_binding()
        out = np.empty((batch, 1, heads * head), np.float32)
        for name, array in (("q", rng.standard_normal((batch, 1, heads * head), dtype=np.float32)),
                            ("k", rng.standard_normal((batch, 1, kv_heads * head), dtype=np.float32)),
                            ("v", rng.standard_normal((batch, 1, kv_heads * head), dtype=np.float32)),
                            ("seqlens", np.full(batch, past, np.int32)), ("total", np.array(capacity, np.int32))):
            io.bind_cpu_input(name, array)
        for name, array in (("pk", pk), ("pv", pv)):   # past and present share the buffer, as in the engine
            io.bind_input(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
            io.bind_output("pr" + name[1], "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        io.bind_output("o", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        row["GroupQueryAttention"] = _median_ms(lambda b=io: sessions["GroupQueryAttention"].run_with_iobinding(b), repeats)
        q = rng.standard_normal((batch, kv_heads, heads // kv_heads, head), dtype=np.float32)
        for name, width in (("MatMul, whole capacity", capacity), ("MatMul, Slice of the live prefix", past + 1)):
            bias = np.zeros((batch, 1, 1, width), np.float32)
            bias[..., past + 1:] = -1e9
            feeds = {"q": q, "pk": pk, "pv": pv, "bias": bias}
            if width != capacity:
                feeds["live"] = np.array([width], np.int64)
            row[name] = _median_ms(lambda s=sessions[name], f=feeds: s.run(None, f), repeats)
        rows.append(row)
    return rows


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# -- main -----------------------------------------------------------------------------------------------------
SECTIONS = ("single", "threads", "batched", "batch64", "attention")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads for both peers (0: all cores)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "npc-bench")
    ap.add_argument("--quick", action="store_true", help="fewer tokens and rounds")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {','.join(SECTIONS)}")
    ap.add_argument("--name", default="step_profile")
    args = ap.parse_args(argv)
    threads = args.threads or available_cores()
    sections = args.sections.split(",")
    meta = result_metadata()
    hf = make_ref_hf_dir(args.work / "hf")
    pkgs = {"int4": make_package(hf, args.work, "int4"), "int8 matmulinteger": int8_matmulinteger(hf, args.work)}
    tokens, rounds, repeats = (64, 3, 20) if args.quick else (128, 5, 40)
    res: dict = {"model": REF_NAME, "threads": threads, "physical_cores": physical_cores(), "prompt_tokens": PROMPT,
                 "tokens": tokens, "rounds": rounds}
    if "single" in sections:
        res["single"] = run_single(pkgs, threads, tokens, rounds)
        res["single_table"] = print_table(
            res["single"], [("precision", "precision"), ("case", "case"), ("best_ms", "best ms/token"),
                            ("median_ms", "median"), ("tok_s", "tok/s"),
                            ("vs_genai_best", "genai best ms / this ms"), ("small_batch", "small-batch session")],
            title=f"one session, {threads} intra-op threads for both peers (best of {rounds} alternating rounds)")
    if "threads" in sections:
        res["threads_by_batch"] = run_threads(pkgs, threads, [1, 2, 4, 8, 16, 32, 64], repeats * 4)
        cols = [("precision", "precision"), ("batch", "batch")]
        cols += [(f"{t} thr ms", f"{t} thr ms") for t in thread_counts(threads)] + [("best threads", "best")]
        res["threads_table"] = print_table(res["threads_by_batch"], cols,
                                           title="ORT decode step alone (ms, best of >= 9; past 48) by intra-op threads")
    if "batched" in sections:
        res["batched"] = run_batched(pkgs, threads, [1, 2, 4, 8, 16, 32, 64], repeats * 4)
        res["batched_table"] = print_table(
            res["batched"], [("precision", "precision"), ("batch", "batch"), ("before_ms", "before ms"),
                             ("after_ms", "after ms"), ("speedup", "before / after"),
                             ("small_batch", "small-batch session")],
            title=f"engine decode step (ms, best of >= 9; past 48), {threads} threads: one session vs thread count per batch")
    if "batch64" in sections:
        res["batch64_ops"] = run_batch64(pkgs, threads, 10 if args.quick else 20)
        res["batch64_table"] = print_table(
            res["batch64_ops"], [("precision", "precision"), ("op", "operator"), ("ms_per_step", "ms / step"),
                                 ("share", "share"), ("step_ms (profiled)", "step ms (profiled)")],
            title=f"batch 64, past 48: ORT profiler by operator, {threads} threads")
    if "attention" in sections:
        res["attention"] = run_attention(threads, repeats)
        res["attention_table"] = print_table(
            res["attention"], [("past", "past"), ("GroupQueryAttention", "GroupQueryAttention ms"),
                               ("MatMul, whole capacity", "MatMul whole capacity ms"),
                               ("MatMul, Slice of the live prefix", "Slice + MatMul ms")],
            title=f"one attention layer, batch 64, capacity 512, {threads} threads (median)")
    path = write_json(args.name, res, meta=meta, results_dir=RESULTS_DIR)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
