"""Compatibility figures (issue 13): prefix reuse through cache_prompt, and tool-call validity.

    .venv/bin/python bench/bench_compat.py [--repeats 10] [--calls 200] [--out compat]

A real server (gRPC + HTTP on 127.0.0.1) over the shipped built-in dialogue model, driven over HTTP:

* cache_prompt: a chat of a long persona prompt (~330 tokens) and one new player line, sent as llama-server
  clients send it (the whole prompt each turn, `id_slot`, `cache_prompt: true`). Time to first token (client
  side, streaming) of the second turn in the slot that holds turn one ("warm": only the new suffix is prefilled)
  against the same prompt with `cache_prompt: false` in another slot ("cold": everything is prefilled). Run
  with the engine's prefix cache off (the slot alone) and on (the default: the cold request then gets whole
  32-token blocks of the persona from the prefix cache). Repeats are interleaved warm / cold; medians.
* tool calls: N chat completions with tools (the merchant's NPC actions from GET /v1/npc/actions plus a `give`
  tool with typed parameters), `tool_choice: "required"`, temperature 1, seeds 0..N-1; each call is checked
  with jsonschema against its function's parameters. Also `tool_choice: "auto"` (how often the model calls).
Writes bench/results/NAME.json and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench scripts run as files
    sys.path.insert(0, str(ROOT))

from bench.common import print_table, result_metadata, write_json  # noqa: E402

PERSONA = ("You are Bram, the blacksmith of Stonehaven. You are gruff but fair, proud of your forge, and you "
           "distrust strangers until they pay. You sell swords, axes, horseshoes and nails; you repair armour; "
           "you never haggle below half price. You owe the miller a debt and you worry about the bandits on "
           "the north road. Your daughter Ingrid keeps the accounts. You speak in short sentences. ") * 3
GIVE = {"type": "function", "function": {"name": "give", "parameters": {
    "type": "object", "required": ["item", "count"], "additionalProperties": False, "properties": {
        "item": {"type": "string", "enum": ["sword", "axe", "horseshoe", "nails"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 5}, "note": {"type": "string"}}}}}


async def _server(package: Path, data_dir: str, prefix_cache: bool):
    from npc_runtime.config import EngineConfig
    from npc_runtime.serving.config import ServerConfig
    from npc_runtime.serving.server import NpcServer
    from npc_runtime.sessions.engine import Engine

    config = EngineConfig(max_sessions=8, **({} if prefix_cache else {"prefix_cache_bytes": 0}))
    engine = Engine.from_packages([package], config=config)
    server = NpcServer(engine, config=ServerConfig(host="127.0.0.1", port=0, http_port=0, data_dir=data_dir,
                                                   agent_service=False, llama_slots=4))
    await server.start()
    return server


async def _ttft(http, body: dict) -> tuple[float, dict]:
    """(client time to the first streamed token, s; the final event)."""
    t0 = time.perf_counter()
    first, final = None, {}
    async with http.stream("POST", "/completion", json={**body, "stream": True}) as res:
        async for line in res.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if first is None and event.get("tokens"):
                first = time.perf_counter() - t0
            if event.get("stop"):
                final = event
    return first if first is not None else time.perf_counter() - t0, final


async def prefix_reuse(http, repeats: int) -> dict:
    turn1 = f"<|system|>{PERSONA}<|end|><|user|>Good morning. What do you sell?<|end|><|assistant|>"
    common = {"temperature": 0.0, "n_predict": 12, "ignore_eos": True}
    warm_s, cold_s, warm_n, cold_n, warm_cache, cold_cache = [], [], [], [], [], []
    for r in range(repeats):
        await http.post("/slots/0?action=erase")
        first = (await http.post("/completion", json={**common, "prompt": turn1, "id_slot": 0,
                                                       "cache_prompt": True})).json()
        turn2 = turn1 + first["content"] + f"<|end|><|user|>How much is a sword? ({r})<|end|><|assistant|>"
        order = ("warm", "cold") if r % 2 == 0 else ("cold", "warm")
        for kind in order:
            if kind == "warm":
                t, final = await _ttft(http, {**common, "prompt": turn2, "id_slot": 0, "cache_prompt": True})
                warm_s.append(t), warm_n.append(final["timings"]["prompt_n"]), warm_cache.append(final["timings"]["cache_n"])
            else:
                await http.post("/slots/1?action=erase")
                t, final = await _ttft(http, {**common, "prompt": turn2, "id_slot": 1, "cache_prompt": False})
                cold_s.append(t), cold_n.append(final["timings"]["prompt_n"]), cold_cache.append(final["timings"]["cache_n"])
    prompt_tokens = final["tokens_evaluated"]
    return {"prompt_tokens": prompt_tokens, "repeats": repeats,
            "warm_ttft_ms_p50": statistics.median(warm_s) * 1000, "cold_ttft_ms_p50": statistics.median(cold_s) * 1000,
            "speedup": statistics.median(cold_s) / statistics.median(warm_s),
            "warm_prompt_n": statistics.median(warm_n), "cold_prompt_n": statistics.median(cold_n),
            "warm_cache_n": statistics.median(warm_cache), "cold_cache_n": statistics.median(cold_cache)}


async def tool_validity(http, calls: int, concurrency: int = 8) -> dict:
    import jsonschema

    actions = (await http.get("/v1/npc/actions", params={"fsm": "merchant", "state": "trading"})).json()["tools"]
    tools = [t for t in actions if t["function"]["name"] != "give"] + [GIVE]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    messages = [{"role": "system", "content": "You are Mira, a merchant in the market."},
                {"role": "user", "content": "I have five gold. What can you do for me?"}]
    results = {"required": {"valid": 0, "invalid": 0, "incomplete": 0, "text": 0, "names": {}},
               "auto": {"valid": 0, "invalid": 0, "incomplete": 0, "text": 0, "names": {}}}
    semaphore = asyncio.Semaphore(concurrency)

    async def one(mode: str, seed: int) -> None:
        async with semaphore:
            res = (await http.post("/v1/chat/completions", json={
                "model": "npc-dialogue", "messages": messages, "tools": tools, "tool_choice": mode,
                "temperature": 1.0, "seed": seed, "max_tokens": 200})).json()
        counts = results[mode]
        if "choices" not in res:
            raise RuntimeError(f"chat completion failed: {res}")
        choice = res["choices"][0]
        calls_made = choice["message"].get("tool_calls") or []
        if not calls_made:
            counts["incomplete" if choice["finish_reason"] == "length" else "text"] += 1
            return
        fn = calls_made[0]["function"]
        counts["names"][fn["name"]] = counts["names"].get(fn["name"], 0) + 1
        try:
            jsonschema.validate(json.loads(fn["arguments"]), schemas[fn["name"]])
            counts["valid"] += 1
        except (jsonschema.ValidationError, ValueError, KeyError):
            counts["invalid"] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one("required", s) for s in range(calls)))
    required_s = time.perf_counter() - t0
    await asyncio.gather(*(one("auto", s) for s in range(calls)))
    for mode, counts in results.items():
        counts["calls"] = calls
        made = counts["valid"] + counts["invalid"]
        counts["validity_rate"] = counts["valid"] / made if made else None
    results["required"]["seconds"] = required_s
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", default="compat")
    args = parser.parse_args()
    meta = result_metadata()

    import httpx

    from npc_runtime.builtin_packages import locate

    package = locate("npc-dialogue")
    data: dict = {"model": "npc-dialogue (built-in, int8)", "prefix_reuse": {}}
    with tempfile.TemporaryDirectory(prefix="npc-bench-compat-") as work:
        for prefix_cache in (False, True):
            server = await _server(package, work, prefix_cache)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=120) as http:
                    key = "prefix_cache_on" if prefix_cache else "prefix_cache_off"
                    data["prefix_reuse"][key] = await prefix_reuse(http, args.repeats)
                    if prefix_cache:
                        for slot in range(4):   # slots hold engine sessions: free them for the chat requests
                            await http.post(f"/slots/{slot}?action=erase")
                        data["tool_calls"] = await tool_validity(http, args.calls)
            finally:
                await server.stop(grace=1.0)
                await server.engine.shutdown(drain=False)

    rows = [{"engine prefix cache": k.split("_")[-1], **v} for k, v in data["prefix_reuse"].items()]
    print_table(rows, [("engine prefix cache", "prefix cache"), ("prompt_tokens", "prompt tok"),
                       ("cold_prompt_n", "cold prefilled"), ("warm_prompt_n", "warm prefilled"),
                       ("cold_ttft_ms_p50", "cold TTFT ms"), ("warm_ttft_ms_p50", "warm TTFT ms"),
                       ("speedup", "cold/warm")],
                title="cache_prompt: second chat turn, time to first token (client, streaming, median)")
    rows = [{"tool_choice": mode, **{k: v for k, v in c.items() if k != "names"},
             "functions": ", ".join(f"{n}:{k}" for n, k in sorted(c["names"].items()))}
            for mode, c in data["tool_calls"].items()]
    print_table(rows, [("tool_choice", "tool_choice"), ("calls", "requests"), ("valid", "valid calls"),
                       ("invalid", "invalid calls"), ("incomplete", "cut by max_tokens"), ("text", "plain text"),
                       ("validity_rate", "validity"), ("functions", "functions chosen")],
                title="tool calls with the built-in dialogue model (jsonschema-checked)")
    path = write_json(args.out, data, meta=meta)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
