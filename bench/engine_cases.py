"""Workloads of bench_engine: our engine and onnxruntime-genai on the same package, with the same threads.

Every function returns {"tok_s", "tokens", "seconds", "cpu"} where "cpu" is the per-thread CPU time of the
timed part (bench.common.ThreadCpu), so a result file shows how many threads each peer really computed on.

Peer modes (onnxruntime-genai 0.18):
- `genai_batched`: one `Generator` per up to 32 rows (`batch_size`; 32 is genai's limit), stepped in turn.
  Its best mode when sessions start together with prompts of one length: the main comparison.
- `genai_per_session`: one `Generator` per session, stepped in turn: what a server that cannot batch
  sessions of different lengths does (a labelled second row).
- `genai_engine_ragged`: `og.Engine` (genai's request engine, `engine.static_batching.max_batch_size`;
  its dynamic batching needs a paged-KV graph that these packages do not have).
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import ThreadCpu

GENAI_MAX_BATCH = 32   # onnxruntime-genai rejects a Generator with batch_size > 32


@dataclass(frozen=True)
class Threads:
    """Intra-op threads given to both peers, set explicitly (never left to a library default)."""

    n: int
    spin: bool = True           # True: genai spins as ORT does by default; False: neither spins
    engine_spin: str = "step"   # the engine's intra_op_spinning when spin is True (the product default: "step")


@dataclass(frozen=True)
class Ragged:
    """Continuous arrival: session i arrives at step i * every, with its own prompt and reply lengths."""

    sessions: int
    every: int = 2                  # steps between arrivals
    prompt: tuple[int, int] = (8, 96)
    reply: tuple[int, int] = (16, 64)
    seed: int = 5

    def plan(self) -> list[tuple[int, list[int], int]]:
        """[(arrival step, prompt ids, reply tokens)] for every session, the same for every peer."""
        rng = np.random.default_rng(self.seed)
        return [(i * self.every, rng.integers(3, 8000, int(rng.integers(*self.prompt))).tolist(),
                 int(rng.integers(*self.reply))) for i in range(self.sessions)]


def prompts(n: int, length: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 8000, length).tolist() for _ in range(n)]


def _result(tokens: int, cpu: ThreadCpu) -> dict:
    seconds = cpu.summary["wall_s"]
    return {"tok_s": tokens / seconds, "tokens": tokens, "seconds": seconds, "cpu": cpu.summary}


# -- our engine -------------------------------------------------------------------------------------------------
def make_engine(pkg: Path, sessions: int, threads: Threads, *, context: int = 512, **kw):
    from npc_runtime.config import EngineConfig, SessionLimits
    from npc_runtime.decode.sampling import SamplingParams
    from npc_runtime.sessions import Engine

    cfg = EngineConfig(max_sessions=sessions, max_context=context, default_sampling=SamplingParams(ignore_eos=True),
                       default_limits=SessionLimits(max_new_tokens=100_000), verify_hashes=False,
                       intra_op_threads=threads.n, intra_op_spinning=threads.engine_spin if threads.spin else "never", **kw)
    return Engine.from_packages([pkg], config=cfg)


def engine_aggregate(pkg: Path, n: int, tokens: int, prompt_tokens: int, threads: Threads) -> dict:
    """n sessions opened together, decoded by one `tick` of `tokens` tokens each (prefill excluded)."""
    from npc_runtime.sessions import TickRequest

    engine = make_engine(pkg, n, threads, context=prompt_tokens + tokens + 8)
    name = engine.list_models()[0].name
    sids = [engine.open_session(name, prompt=p) for p in prompts(n, prompt_tokens)]
    engine.tick([TickRequest(s, 1e9, 1) for s in sids])          # prefill + first token
    with ThreadCpu() as cpu:
        results = engine.tick([TickRequest(s, 1e9, tokens) for s in sids])
    out = _result(sum(len(r.token_ids) for r in results), cpu)
    del engine
    gc.collect()   # its ORT threads end before the peer runs
    return out


def engine_ragged(pkg: Path, case: Ragged, threads: Threads) -> dict:
    """Continuous arrival: one `tick` per step, one token per active session; arrivals prefill in their tick."""
    from npc_runtime.sessions import TickRequest

    plan = case.plan()
    context = max(len(p) + r for _, p, r in plan) + 8
    engine = make_engine(pkg, case.sessions, threads, context=context)
    name = engine.list_models()[0].name
    active: dict[str, int] = {}                      # session id -> tokens still to generate
    pending, step, produced = list(plan), 0, 0
    with ThreadCpu() as cpu:
        while pending or active:
            while pending and pending[0][0] <= step:
                _, prompt, reply = pending.pop(0)
                active[engine.open_session(name, prompt=prompt)] = reply
            for r in engine.tick([TickRequest(s, 1e9, 1) for s in active]):
                produced += len(r.token_ids)
                active[r.session_id] -= len(r.token_ids)
                if active[r.session_id] <= 0:
                    engine.close_session(r.session_id)
                    del active[r.session_id]
            step += 1
    out = {**_result(produced, cpu), "steps": step}
    del engine
    gc.collect()
    return out


# -- onnxruntime-genai ---------------------------------------------------------------------------------------------
def genai_model(pkg: Path, threads: Threads, *, engine_batch: int | None = None):
    import onnxruntime_genai as og

    options: dict = {"intra_op_num_threads": threads.n}
    if not threads.spin:
        options["config_entries"] = {"session.intra_op.allow_spinning": "0"}
    overlay: dict = {"model": {"decoder": {"session_options": options}}}
    if engine_batch:
        overlay["engine"] = {"static_batching": {"max_batch_size": engine_batch}}
    config = og.Config(str(pkg))
    config.overlay(json.dumps(overlay))
    return og.Model(config)


def _generator(og, model, rows: list[list[int]], length: int):
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=length, min_length=length, do_sample=False, batch_size=len(rows))
    generator = og.Generator(model, params)
    generator.append_tokens(np.asarray(rows, dtype=np.int32))     # prefill (not timed)
    return generator


def _genai_step_all(pkg: Path, groups: list[list[list[int]]], tokens: int, prompt_tokens: int,
                    threads: Threads) -> dict:
    import onnxruntime_genai as og

    model = genai_model(pkg, threads)
    gens = [_generator(og, model, rows, prompt_tokens + tokens + 1) for rows in groups]
    with ThreadCpu() as cpu:
        for _ in range(tokens):
            for g in gens:
                g.generate_next_token()
    out = _result(sum(len(rows) for rows in groups) * tokens, cpu)
    del gens, model
    gc.collect()
    return out


def genai_batched(pkg: Path, n: int, tokens: int, prompt_tokens: int, threads: Threads,
                  max_batch: int = GENAI_MAX_BATCH) -> dict:
    rows = prompts(n, prompt_tokens)
    groups = [rows[i:i + max_batch] for i in range(0, n, max_batch)]
    return {**_genai_step_all(pkg, groups, tokens, prompt_tokens, threads),
            "mode": f"{len(groups)} Generator{'s' * (len(groups) > 1)} × {len(groups[0])} row{'s' * (n > 1)}"}


def genai_per_session(pkg: Path, n: int, tokens: int, prompt_tokens: int, threads: Threads) -> dict:
    groups = [[p] for p in prompts(n, prompt_tokens)]
    return {**_genai_step_all(pkg, groups, tokens, prompt_tokens, threads), "mode": f"{n} Generators × 1 row"}


def genai_generators_ragged(pkg: Path, case: Ragged, threads: Threads) -> dict:
    """Continuous arrival, one Generator per session (created and prefilled on arrival), stepped in turn."""
    import onnxruntime_genai as og

    model = genai_model(pkg, threads)
    pending, step, produced = list(case.plan()), 0, 0
    active: list[list] = []                                      # [generator, tokens still to generate]
    with ThreadCpu() as cpu:
        while pending or active:
            while pending and pending[0][0] <= step:
                _, prompt, reply = pending.pop(0)
                active.append([_generator(og, model, [prompt], len(prompt) + reply + 1), reply])
            for entry in active:
                entry[0].generate_next_token()
                entry[1] -= 1
            produced += len(active)
            active = [e for e in active if e[1] > 0]
            step += 1
    out = {**_result(produced, cpu), "steps": step, "mode": f"one Generator per session ({case.sessions})"}
    del active, model
    gc.collect()
    return out


def genai_engine_ragged(pkg: Path, case: Ragged, threads: Threads, max_batch: int) -> dict:
    """Continuous arrival through `og.Engine`: one `run` per step; arrivals begin a turn at their step."""
    import onnxruntime_genai as og

    model = genai_model(pkg, threads, engine_batch=max_batch)
    engine = og.Engine(model)
    events = engine.create_event_buffer(4096)
    token_flag, failed_flag = og.EngineEventFlags.TOKEN.value, og.EngineEventFlags.FAILED.value
    pending, step, produced, requests = list(case.plan()), 0, 0, []
    with ThreadCpu() as cpu:
        while pending or engine.has_pending_requests():
            while pending and pending[0][0] <= step:
                _, prompt, reply = pending.pop(0)
                request = engine.create_request()
                turn = og.TurnOptions(request)
                turn.set_do_sample(False)
                turn.set_max_generated_tokens(reply)
                turn.set_min_generated_tokens(reply)
                request.begin_turn(np.asarray(prompt, dtype=np.int32), turn)
                requests.append(request)
            for event in engine.run(events):
                if event.flags.value & failed_flag:
                    raise RuntimeError(f"onnxruntime-genai Engine: a request failed ({event.error_code})")
                produced += bool(event.flags.value & token_flag)
            step += 1
    out = {**_result(produced, cpu), "steps": step, "mode": f"og.Engine, static batching up to {max_batch}"}
    for request in requests:
        request.close()
    del requests, engine, model
    gc.collect()
    return out
