"""llama-server dialect, exercised with the request bodies and expectations of llama.cpp's own server tests
(ggml-org/llama.cpp tools/server/tests/unit/test_completion.py, test_slot_save.py, test_tokenize.py), ported
to the built-in dialogue model: content regexes of TinyLlama are replaced by checks that hold for any model,
counts are computed from /tokenize. Where this server answers differently on purpose (batch prompts, n_probs,
GBNF), the test says so and checks the 400 names the field (docs/compat.md)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import zlib

import pytest

from npc_runtime.sessions import snapshot
from tests.compat.client_bodies import LLAMA_UNREAL_RAW, LLMUNITY_COMPLETION, LLMUNITY_TOKENIZE

pytestmark = pytest.mark.asyncio

PROMPT = "I believe the meaning of life is"


async def _n_tokens(http, text: str) -> int:
    res = await http.post("/tokenize", json={"content": text, "add_special": True})
    return len(res.json()["tokens"])


async def _events(http, body: dict) -> list[dict]:
    out = []
    async with http.stream("POST", "/completion", json={**body, "stream": True}) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        async for line in res.aiter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


# ---------------------------------------------------------------------------------- test_completion.py

@pytest.mark.parametrize("n_predict,return_tokens", [(8, False), (64, True)])
async def test_completion(http, n_predict, return_tokens):
    res = await http.post("/completion", json={"n_predict": n_predict, "prompt": PROMPT, "return_tokens": return_tokens})
    assert res.status_code == 200
    body = res.json()
    assert body["timings"]["prompt_n"] == await _n_tokens(http, PROMPT)
    assert 0 < body["timings"]["predicted_n"] <= n_predict
    # fewer tokens than asked: the model ended the text; exactly n_predict: the limit, or an end-of-text token
    # sampled as the last one (then llama-server also says "eos")
    expected = ("limit", "eos") if body["timings"]["predicted_n"] == n_predict else ("eos",)
    assert body["stop_type"] in expected
    assert body["truncated"] is False and isinstance(body["has_new_line"], bool)
    assert body["tokens_predicted"] == body["timings"]["predicted_n"]
    assert body["tokens_evaluated"] == body["timings"]["prompt_n"]
    if return_tokens:
        assert len(body["tokens"]) == body["tokens_predicted"] and all(isinstance(t, int) for t in body["tokens"])
    else:
        assert body["tokens"] == []


async def test_completion_stream(http):
    events = await _events(http, {"n_predict": 8, "prompt": PROMPT, "ignore_eos": True, "seed": 42})
    content = ""
    for data in events:
        assert "stop" in data and isinstance(data["stop"], bool)
        if data["stop"]:
            assert data["timings"]["prompt_n"] == await _n_tokens(http, PROMPT)
            assert data["timings"]["predicted_n"] == 8
            assert data["truncated"] is False and data["stop_type"] == "limit"
            assert isinstance(data["has_new_line"], bool)
            assert data["generation_settings"]["n_predict"] == 8 and data["generation_settings"]["seed"] == 42
        else:
            assert len(data["tokens"]) > 0 and all(isinstance(t, int) for t in data["tokens"])
            content += data["content"]
    assert events[-1]["stop"] is True and sum(len(e["tokens"]) for e in events) == 8


async def test_completion_stream_vs_non_stream(http):
    body = {"n_predict": 8, "prompt": PROMPT, "temperature": 0.0}
    streamed = "".join(e["content"] for e in await _events(http, body))
    res = await http.post("/completion", json=body)
    assert streamed == res.json()["content"]


async def test_completion_with_openai_library(server):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="dummy", base_url=f"http://127.0.0.1:{server.http_port}/v1")
    res = await client.completions.create(model="davinci-002", prompt=PROMPT, max_tokens=8,
                                          extra_body={"ignore_eos": True})
    assert res.system_fingerprint is not None
    assert res.choices[0].finish_reason == "length" and res.choices[0].text
    stream = await client.completions.create(model="davinci-002", prompt=PROMPT, max_tokens=8, stream=True,
                                             extra_body={"ignore_eos": True, "temperature": 0.0})
    text = "".join([c.choices[0].text async for c in stream if c.choices and c.choices[0].finish_reason is None])
    greedy = await client.completions.create(model="x", prompt=PROMPT, max_tokens=8, temperature=0.0,
                                             extra_body={"ignore_eos": True})
    assert text == greedy.choices[0].text
    await client.close()


async def test_consistent_result_same_seed(http):
    contents = set()
    for _ in range(4):
        res = await http.post("/completion", json={"prompt": PROMPT, "seed": 42, "temperature": 0.0,
                                                    "n_predict": 16, "cache_prompt": False})
        contents.add(res.json()["content"])
    assert len(contents) == 1


async def test_different_result_different_seed(http):
    contents = set()
    for seed in range(4):
        res = await http.post("/completion", json={"prompt": PROMPT, "seed": seed, "temperature": 1.0,
                                                    "n_predict": 16, "ignore_eos": True, "cache_prompt": False})
        contents.add(res.json()["content"])
    assert len(contents) > 1


async def test_nocache_long_input_prompt(http):
    res = await http.post("/completion", json={"prompt": PROMPT * 128, "seed": 42, "temperature": 1.0,
                                                "cache_prompt": False})
    # llama-server answers 400; this server's over-context answer is 413 (RESOURCE_EXHAUSTED) on every API
    assert res.status_code == 413 and "context" in res.json()["error"]["message"]


async def test_completion_with_tokens_input(http):
    tokens = (await http.post("/tokenize", json={"content": PROMPT, "add_special": True})).json()["tokens"]
    by_ids = await http.post("/completion", json={"prompt": tokens, "temperature": 0.0, "n_predict": 8})
    by_text = await http.post("/completion", json={"prompt": PROMPT, "temperature": 0.0, "n_predict": 8})
    assert by_ids.status_code == 200 and by_ids.json()["content"] == by_text.json()["content"]
    mixed = await http.post("/completion", json={"prompt": [1, 2, 3, 4, 5, 6, PROMPT, 7, 8, 9, 10, PROMPT],
                                                  "n_predict": 4})
    assert mixed.status_code == 200 and isinstance(mixed.json()["content"], str)
    # differs on purpose: llama-server answers a batch ([tokens, tokens]) with a list; one prompt per request here
    batch = await http.post("/completion", json={"prompt": [tokens, tokens]})
    assert batch.status_code == 400 and "prompt" in batch.json()["error"]["message"]


async def test_completion_parallel_slots(http):
    prompts = ["Write a very long book.", "Write another a poem.", "What is LLM?", "The sky is blue and I love it."]

    async def one(prompt):
        return await http.post("/completion", json={"prompt": prompt, "seed": 42, "temperature": 1.0,
                                                     "n_predict": 24, "ignore_eos": True})

    async def busy_slots():
        await asyncio.sleep(0.05)
        return sum(s["is_processing"] for s in (await http.get("/slots")).json())

    *results, busy = await asyncio.gather(*(one(p) for p in prompts), busy_slots())
    assert all(r.status_code == 200 and len(r.json()["content"]) > 10 for r in results)
    assert busy <= 2   # the server fixture has 2 slots; more requests wait for one
    assert {r.json()["id_slot"] for r in results} <= {0, 1}


async def test_n_probs_is_refused_by_name(http):
    # differs on purpose: token probabilities are offered on /v1/chat/completions (logprobs), not here
    res = await http.post("/completion", json={"prompt": PROMPT, "n_probs": 10, "temperature": 0.0, "n_predict": 5})
    assert res.status_code == 400 and res.json()["error"]["param"] == "n_probs"


# -------------------------------------------------------------------------------- test_slot_save.py

async def test_slot_save_restore(http, server):
    first = await http.post("/completion", json={"prompt": "What is the capital of France?", "id_slot": 1,
                                                  "cache_prompt": True, "temperature": 0.0, "n_predict": 16})
    assert first.status_code == 200
    n_prompt = await _n_tokens(http, "What is the capital of France?")
    assert first.json()["timings"]["prompt_n"] == n_prompt   # all tokens are processed
    n_predicted = first.json()["tokens_predicted"]

    saved = await http.post("/slots/1?action=save", json={"filename": "slot1.bin"})
    assert saved.status_code == 200 and saved.json()["n_saved"] == n_prompt + n_predicted

    # a prompt sharing a prefix with the slot's history: only the different part is processed (llama-server
    # reports len - common; this server feeds the last common token again: len - common + 1)
    france = (await http.post("/tokenize", json={"content": "What is the capital of France?", "add_special": True})).json()["tokens"]
    germany = (await http.post("/tokenize", json={"content": "What is the capital of Germany?", "add_special": True})).json()["tokens"]
    common = next(i for i, (a, b) in enumerate(zip(france, germany)) if a != b)
    second = await http.post("/completion", json={"prompt": "What is the capital of Germany?", "id_slot": 1,
                                                   "cache_prompt": True, "temperature": 0.0, "n_predict": 16})
    assert second.status_code == 200
    assert second.json()["timings"]["prompt_n"] == len(germany) - common + 1
    # the same prompt again in the same slot: one token is processed, as in llama-server
    again = await http.post("/completion", json={"prompt": "What is the capital of Germany?", "id_slot": 1,
                                                  "cache_prompt": True, "temperature": 0.0, "n_predict": 16})
    assert again.json()["timings"]["prompt_n"] == 1 and again.json()["content"] == second.json()["content"]

    restored = await http.post("/slots/0?action=restore", json={"filename": "slot1.bin"})
    assert restored.status_code == 200 and restored.json()["n_restored"] == n_prompt + n_predicted
    slots = (await http.get("/slots")).json()
    assert slots[0]["n_past"] == n_prompt + n_predicted
    # the slot file carries the KV: the restored slot continues with one token processed and the same output
    third = await http.post("/completion", json={"prompt": "What is the capital of France?", "id_slot": 0,
                                                  "cache_prompt": True, "temperature": 0.0, "n_predict": 16})
    assert third.json()["timings"]["prompt_n"] == 1 and third.json()["content"] == first.json()["content"]


async def test_slot_chat_turn_prefills_only_the_suffix(http):
    """cache_prompt with id_slot: a prompt that extends the slot's tokens (prompt + generated) is a new turn of
    the same engine session; only the suffix (and the last sampled token) is prefilled."""
    tokens = (await http.post("/tokenize", json={"content": PROMPT, "add_special": True})).json()["tokens"]
    first = (await http.post("/completion", json={"prompt": tokens, "id_slot": 0, "temperature": 0.0,
                                                   "n_predict": 6, "ignore_eos": True, "return_tokens": True})).json()
    suffix = (await http.post("/tokenize", json={"content": " and then some more words"})).json()["tokens"]
    second = (await http.post("/completion", json={"prompt": tokens + first["tokens"] + suffix, "id_slot": 0,
                                                    "temperature": 0.0, "n_predict": 4, "ignore_eos": True})).json()
    assert second["timings"]["prompt_n"] == len(suffix) + 1
    assert second["timings"]["cache_n"] == len(tokens) + len(first["tokens"]) - 1


async def _corrupt_and_restore(http, server, mutate) -> dict:
    await http.post("/completion", json={"prompt": "What is the capital of France?", "id_slot": 1, "n_predict": 4})
    assert (await http.post("/slots/1?action=save", json={"filename": "f.bin"})).status_code == 200
    path = os.path.join(server.config.data_dir, "slots", "f.bin")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(mutate(data))
    res = await http.post("/slots/0?action=restore", json={"filename": "f.bin"})
    after = await http.post("/completion", json={"prompt": "The quick brown fox", "id_slot": 0, "n_predict": 4})
    assert after.status_code == 200   # the slot stays usable
    return res


def _reframed(data: bytes, *, version: int | None = None, **changes) -> bytes:
    """A slot file (a session snapshot) with header fields changed and a valid checksum again: what an edited
    or foreign file looks like once it gets past the framing."""
    state = snapshot.decode(data)
    for key, value in changes.items():
        setattr(state, key, value)
    if changes.get("tokens") is not None:
        state.kv, state.kv_len = [], 0
    out = snapshot.encode(state)
    if version is not None:
        body = out[:8] + struct.pack("<I", version) + out[12:-4]
        out = body + struct.pack("<I", zlib.crc32(body))
    return out


async def test_slot_restore_unsupported_state_version(http, server):
    res = await _corrupt_and_restore(http, server, lambda data: _reframed(data, version=99))
    assert res.status_code == 400 and "version 99 is not supported" in res.json()["error"]["message"]


async def test_slot_restore_truncated_file(http, server):
    res = await _corrupt_and_restore(http, server, lambda data: data[:16])
    assert res.status_code == 400 and "invalid slot save file" in res.json()["error"]["message"]


async def test_slot_restore_prompt_larger_than_slot_context(http, server):
    n_ctx = (await http.get("/props")).json()["default_generation_settings"]["n_ctx"]

    def grow(data: bytes) -> bytes:
        tokens = snapshot.decode(data).tokens
        return _reframed(data, tokens=(tokens * (n_ctx // len(tokens) + 2))[:n_ctx + 1])
    res = await _corrupt_and_restore(http, server, grow)
    assert res.status_code == 400 and "does not fit in the slot context" in res.json()["error"]["message"]


async def test_slot_restore_other_model_is_refused(http, server):
    res = await _corrupt_and_restore(http, server, lambda data: _reframed(data, model_sha256="0" * 64))
    assert res.status_code == 400 and "another model" in res.json()["error"]["message"]


async def test_slot_erase(http):
    body = {"prompt": "What is the capital of France?", "id_slot": 1, "cache_prompt": True, "n_predict": 4}
    first = await http.post("/completion", json=body)
    n_prompt = await _n_tokens(http, body["prompt"])
    assert first.json()["timings"]["prompt_n"] == n_prompt
    erased = await http.post("/slots/1?action=erase")
    assert erased.status_code == 200 and erased.json()["n_erased"] > 0
    assert (await http.get("/slots")).json()[1]["n_past"] == 0
    again = await http.post("/completion", json=body)
    assert again.json()["timings"]["prompt_n"] == n_prompt   # all tokens are processed again


@pytest.mark.parametrize("filename", ["../escape.bin", "/etc/passwd", ".hidden", "a/b.bin", "..", "", None, 7])
async def test_slot_files_stay_inside_the_slot_folder(http, filename):
    res = await http.post("/slots/0?action=save", json={"filename": filename})
    assert res.status_code == 400 and "filename" in res.json()["error"]["message"]


async def test_slot_restore_refuses_symlinks(http, server, tmp_path):
    target = tmp_path / "outside.bin"
    target.write_text("{}")
    slot_dir = os.path.join(server.config.data_dir, "slots")
    os.makedirs(slot_dir, exist_ok=True)
    os.symlink(target, os.path.join(slot_dir, "link.bin"))
    res = await http.post("/slots/0?action=restore", json={"filename": "link.bin"})
    assert res.status_code == 400 and "symlink" in res.json()["error"]["message"]
    res = await http.post("/slots/0?action=save", json={"filename": "link.bin"})
    assert res.status_code == 400 and target.read_text() == "{}"


async def test_slot_action_and_id_checked(http):
    assert (await http.post("/slots/0?action=explode")).status_code == 400
    res = await http.post("/slots/9?action=erase")
    assert res.status_code == 400 and "id_slot" in res.json()["error"]["message"]


# --------------------------------------------------------------------------------- test_tokenize.py

async def test_tokenize_detokenize(http):
    content = "What is the capital of France ?"
    tokens = (await http.post("/tokenize", json={"content": content})).json()["tokens"]
    assert len(tokens) > 5
    res = await http.post("/detokenize", json={"tokens": tokens})
    assert res.status_code == 200 and res.json()["content"].strip() == content


async def test_tokenize_with_bos(http):
    res = await http.post("/tokenize", json={"content": "What is the capital of France ?", "add_special": True})
    assert res.json()["tokens"][0] == 1   # the built-in model's BOS id, as TinyLlama's


async def test_tokenize_with_pieces(http):
    res = await http.post("/tokenize", json={"content": "This is a test string with unicode 媽 and emoji 🤗",
                                              "with_pieces": True})
    assert res.status_code == 200
    for token in res.json()["tokens"]:
        assert "id" in token and token["id"] > 0 and "piece" in token and len(token["piece"]) > 0


async def test_detokenize_refuses_ids_outside_the_vocabulary(http):
    res = await http.post("/detokenize", json={"tokens": [1, 10**9]})
    assert res.status_code == 400 and res.json()["error"]["param"] == "tokens"


# ---------------------------------------------------------------------- other endpoints, clients

async def test_health_props_template(http):
    assert (await http.get("/health")).json() == {"status": "ok"}
    props = (await http.get("/props")).json()
    assert props["default_generation_settings"]["n_ctx"] == 512 and props["total_slots"] == 2
    assert "<|assistant|>" in props["chat_template"] and props["model_path"].endswith("npc-dialogue")
    res = await http.post("/apply-template", json={"messages": [{"role": "user", "content": "Hi"}]})
    assert res.json()["prompt"].endswith("<|user|>Hi<|end|><|assistant|>")


@pytest.mark.parametrize("field,value", [("mirostat", 2), ("presence_penalty", 0.5), ("grammar", 'root ::= "a"'),
                                         ("logit_bias", {"15": -100}), ("no_such_field", 1)])
async def test_unsupported_fields_are_named(http, field, value):
    res = await http.post("/completion", json={"prompt": PROMPT, field: value})
    assert res.status_code == 400 and res.json()["error"]["param"] == field and field in res.json()["error"]["message"]


async def test_json_schema_output_is_valid(http):
    import jsonschema

    schema = {"type": "object", "required": ["action", "line"], "properties": {
        "action": {"enum": ["greet", "trade"]}, "line": {"type": "string", "maxLength": 40},
        "items": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 8}}}}
    res = await http.post("/completion", json={"prompt": "<|user|>Hi<|end|><|assistant|>", "json_schema": schema,
                                                "n_predict": 120, "temperature": 0.0})
    body = res.json()
    jsonschema.validate(json.loads(body["content"]), schema)
    assert body["stop_type"] == "eos"


async def test_llmunity_body_unchanged(http):
    res = await http.post("/tokenize", json=LLMUNITY_TOKENIZE)
    assert res.status_code == 200 and res.json()["tokens"]
    res = await http.post("/completion", json=LLMUNITY_COMPLETION)
    assert res.status_code == 200, res.text
    body = res.json()
    assert isinstance(body["content"], str) and body["id_slot"] == 0 and body["stop"] is True
    events = await _events(http, LLMUNITY_COMPLETION)
    assert events[-1]["stop"] is True and all("content" in e for e in events)


async def test_llama_unreal_raw_completion_unchanged(http):
    events = []
    async with http.stream("POST", "/v1/completions", json=LLAMA_UNREAL_RAW) as res:
        assert res.status_code == 200
        async for line in res.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


async def test_entrance_limits_cover_the_dialect(dialogue_package, tmp_path):
    """The token and the body limit apply before any llama route reads the body (serving/http_entry.py)."""
    import httpx

    from tests.serving.conftest import running_server

    async with running_server(dialogue_package, engine_config={"warmup": False}, data_dir=str(tmp_path),
                              agent_service=False, token="s3cret", max_request_bytes=1_100_000,
                              max_prompt_chars=1000) as srv:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http:
            for path in ("/completion", "/tokenize", "/slots/0?action=erase", "/v1/completions"):
                assert (await http.post(path, json={"prompt": "hi"})).status_code == 401
            auth = {"authorization": "Bearer s3cret"}
            big = await http.post("/completion", headers=auth, content=b'{"prompt": "' + b"a" * 1_200_000 + b'"}')
            assert big.status_code == 413
            long = await http.post("/completion", headers=auth, json={"prompt": "a" * 1001})
            assert long.status_code == 413 and "the limit is 1000" in long.json()["error"]["message"]
            ok = await http.post("/completion", headers=auth, json={"prompt": "hi", "n_predict": 2})
            assert ok.status_code == 200
