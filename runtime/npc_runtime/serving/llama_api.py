"""llama.cpp `llama-server` dialect on the HTTP port, over the same engine (docs/compat.md).

    POST /completion            prompt (text or token ids) -> content; SSE `data: {"content", "stop": false}`
    GET  /health  /props  /slots
    POST /slots/{id}?action=save|restore|erase
    POST /tokenize  /detokenize  /apply-template

Slots are engine sessions kept between requests (`serving/llama_slots.py`): `id_slot` + `cache_prompt` continue a
slot's session when the prompt extends its history, so only the new suffix is prefilled. Fields are checked
against one table (`FIELDS`): supported, accepted only at their neutral value (a 400 naming the field
otherwise), or ignored (sent by every llama.cpp client; listed in docs/compat.md); anything else is a 400
naming the field. Bodies are parsed on the worker pool after the entrance limits (auth, size) like every route.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument, NpcRuntimeError, RequestTooLarge
from npc_runtime.serving import status
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.http_entry import parse_json_body
from npc_runtime.serving.llama_slots import Slot, SlotManager
from npc_runtime.serving.metrics import ServingMetrics
from npc_runtime.sessions.facade import EngineFacade
from npc_runtime.sessions.requests import GenerateRequest, Turn
from npc_runtime.sessions.session import FinishReason
from npc_runtime.workers import default_pool

SUPPORTED = frozenset({"prompt", "n_predict", "max_tokens", "temperature", "top_k", "top_p", "seed", "stop",
                       "stream", "cache_prompt", "id_slot", "slot_id", "json_schema", "grammar", "repeat_penalty",
                       "ignore_eos", "return_tokens", "n_probs", "model"})


def _empty(v) -> bool:
    return v in (None, "", [], {})


# accepted only at the value that disables them (what llama.cpp clients send by default)
NEUTRAL: dict[str, Callable[[object], bool]] = {
    "presence_penalty": lambda v: v in (0, 0.0), "frequency_penalty": lambda v: v in (0, 0.0),
    "mirostat": lambda v: v in (0, None), "logit_bias": _empty, "penalty_prompt": _empty,
    "dry_multiplier": lambda v: v in (0, 0.0), "xtc_probability": lambda v: v in (0, 0.0),
    "dynatemp_range": lambda v: v in (0, 0.0), "n_discard": lambda v: v in (0, None), "lora": _empty,
    "messages": _empty, "image_data": _empty, "multimodal_data": _empty,
    # OpenAI text completions (/v1/completions)
    "n": lambda v: v in (1, None), "best_of": lambda v: v in (1, None), "echo": lambda v: v in (False, None),
    "logprobs": lambda v: v in (None, 0, False), "suffix": _empty,
}
# accepted and not applied: sampler fine-tuning the engine does not have, context-shift and reporting knobs
IGNORED = frozenset({"n_keep", "min_p", "tfs_z", "typical_p", "repeat_last_n", "penalize_nl", "mirostat_tau",
                     "mirostat_eta", "n_indent", "t_max_prompt_ms", "t_max_predict_ms", "samplers",
                     "timings_per_token", "post_sampling_probs", "dynatemp_exponent", "xtc_threshold", "dry_base",
                     "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers", "top_n_sigma",
                     "return_progress", "id", "system_prompt", "typical", "use_penalty_prompt_tokens",
                     "n_cmpl", "response_fields", "user", "stream_options", "chat_template_kwargs",
                     "reasoning_format"})
_STOP_TYPE = {FinishReason.EOS: "eos", FinishReason.LENGTH: "limit", FinishReason.CONTEXT_FULL: "limit",
              FinishReason.STOP: "word", FinishReason.CANCELLED: "none", FinishReason.EVICTED: "none",
              FinishReason.ERROR: "none"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class CompletionBody(_Body):
    prompt: str | list[int | str | list] = ""
    n_predict: int = -1
    max_tokens: int | None = None
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    seed: int = -1
    stop: list[str] | str | None = None
    stream: bool = False
    cache_prompt: bool = True
    id_slot: int = -1
    slot_id: int | None = None        # the older name of id_slot
    json_schema: dict | None = None
    grammar: str | None = None
    repeat_penalty: float = 1.0
    ignore_eos: bool = False
    return_tokens: bool = False
    n_probs: int = 0


class TokenizeBody(_Body):
    content: str = ""
    add_special: bool = False
    with_pieces: bool = False


class DetokenizeBody(_Body):
    tokens: list[int] = []


class TemplateBody(_Body):
    messages: list[dict]


class SlotFileBody(_Body):
    filename: str | None = None


def check_fields(body: CompletionBody) -> None:
    for name, value in (body.model_extra or {}).items():
        if name in IGNORED or name in SUPPORTED:   # "model": one model is served per dialect
            continue
        ok = NEUTRAL.get(name)
        if ok is None:
            raise _invalid(f"{name} is not supported by this server (docs/compat.md lists the /completion fields)",
                           name)
        if not ok(value):
            raise _invalid(f"{name} = {value!r} is not supported; leave it at its default (off)", name)
    if body.n_probs:
        raise _invalid("n_probs is not supported (token probabilities: use /v1/chat/completions with logprobs)",
                       "n_probs")
    if body.grammar:
        raise _invalid("grammar (GBNF) is not supported; give json_schema instead (docs/compat.md)", "grammar")


def _invalid(message: str, param: str) -> InvalidArgument:
    error = InvalidArgument(message)
    error.param = param
    return error


def _sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


class _Api:
    def __init__(self, engine: EngineFacade, config: ServerConfig, metrics: ServingMetrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self.model = engine.default_model
        info = next(m for m in engine.list_models_now() if m.name == self.model)
        self.info = info
        slot_dir = Path(config.slot_dir) if config.slot_dir else Path(config.data_dir) / "slots"
        self.slots = SlotManager(engine, count=config.llama_slots, slot_dir=slot_dir)

    @property
    def n_ctx(self) -> int:
        return self.info.context_length

    async def parse(self, request: Request, model: type[_Body]) -> _Body:
        return await (self.engine.workers or default_pool()).run(parse_json_body, await request.body() or b"{}", model)

    # -- prompts ----------------------------------------------------------------------------------------
    def encode(self, text: str, add_special: bool) -> list[int]:
        """llama-server's tokenizing: add_special puts BOS first (when the tokenizer itself does not)."""
        tok = self.engine.tokenizer(self.model)
        ids = tok.encode(text, add_special_tokens=add_special)
        if add_special and tok.bos is not None and (not ids or ids[0] != tok.bos):
            ids.insert(0, tok.bos)
        return ids

    def prompt_tokens(self, prompt) -> list[int]:
        """Text, token ids, or ids with text pieces -> ids; text over the server's max_prompt_chars is refused
        before it is tokenized (ids are bounded by the body size and then by the context)."""
        limit = self.engine.limits.max_prompt_chars
        chars = len(prompt) if isinstance(prompt, str) else sum(len(p) for p in prompt if isinstance(p, str))
        if limit is not None and chars > limit:
            raise RequestTooLarge(f"prompt: {chars} characters of prompt text; the limit is {limit} per request")
        if isinstance(prompt, str):
            return self.encode(prompt, True)
        if any(isinstance(p, list) for p in prompt):
            raise _invalid("prompt: a batch of prompts is not supported; send one request per prompt", "prompt")
        ids: list[int] = []
        for part in prompt:   # token ids, text pieces between them (tokenized without special tokens)
            ids.extend(self.encode(part, not ids) if isinstance(part, str) else [part])
        if any(not 0 <= t < self.info.vocab_size for t in ids):
            raise _invalid(f"prompt: token ids must be in [0, {self.info.vocab_size})", "prompt")
        return ids

    def sampling(self, body: CompletionBody) -> SamplingParams:
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        return SamplingParams(temperature=max(0.0, body.temperature), top_k=max(0, body.top_k),
                              top_p=body.top_p if 0.0 < body.top_p <= 1.0 else 1.0,
                              repetition_penalty=body.repeat_penalty if body.repeat_penalty > 0 else 1.0,
                              seed=None if body.seed < 0 else body.seed, stop=tuple(s for s in stop if s),
                              ignore_eos=body.ignore_eos)

    # -- /completion ------------------------------------------------------------------------------------
    async def completion(self, request: Request, *, openai: bool = False):
        started = time.perf_counter()
        body = await self.parse(request, CompletionBody)
        check_fields(body)
        n_predict = body.max_tokens if body.max_tokens is not None else body.n_predict
        id_slot = body.slot_id if body.slot_id is not None and body.id_slot == -1 else body.id_slot
        prompt = await (self.engine.workers or default_pool()).run(self.prompt_tokens, body.prompt)
        sampling = self.sampling(body)
        constraint = ConstraintSpec.json(body.json_schema) if body.json_schema else None
        slot = self.slots.pick(id_slot, prompt)
        await slot.lock.acquire()
        try:
            stream, prompt_n, cached = await self._start(slot, prompt, sampling, constraint, n_predict,
                                                         body.cache_prompt)
        except BaseException:
            slot.lock.release()
            raise
        run = _Run(self, slot, stream, prompt, prompt_n, cached, started, body, n_predict)
        if openai:
            return await self._openai(run, body)
        if body.stream:
            from npc_runtime.serving.http_api import _SessionStream   # the module that includes this router

            return _SessionStream(run.events(), on_close=run.close, media_type="text/event-stream",
                                  headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await run.collect()

    async def _openai(self, run: "_Run", body: CompletionBody):
        """The OpenAI text-completion shape (/v1/completions) of a run."""
        base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model, "system_fingerprint": "npc-runtime"}

        def finish() -> str:
            return "length" if run.finish in (FinishReason.LENGTH, FinishReason.CONTEXT_FULL) else "stop"

        def usage() -> dict:
            return {"prompt_tokens": len(run.prompt), "completion_tokens": len(run.tokens),
                    "total_tokens": len(run.prompt) + len(run.tokens)}

        if not body.stream:
            result = await run.collect()
            return {**base, "choices": [{"text": result["content"], "index": 0, "logprobs": None,
                                         "finish_reason": finish()}], "usage": usage()}

        async def events() -> AsyncIterator[bytes]:
            try:
                async for chunk in run.pieces():
                    if chunk.text_delta:
                        yield _sse({**base, "choices": [{"text": chunk.text_delta, "index": 0, "logprobs": None,
                                                         "finish_reason": None}]})
                yield _sse({**base, "choices": [{"text": "", "index": 0, "logprobs": None,
                                                 "finish_reason": finish()}], "usage": usage()})
                yield b"data: [DONE]\n\n"
            finally:
                await run.stream.aclose()
                run.end()

        from npc_runtime.serving.http_api import _SessionStream

        return _SessionStream(events(), on_close=run.close, media_type="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _start(self, slot: Slot, prompt: list[int], sampling: SamplingParams, constraint, n_predict: int,
                     cache: bool):
        if not prompt:
            raise _invalid("prompt is empty", "prompt")
        max_tokens = n_predict if n_predict > 0 else None
        keep = self.slots.reusable(slot, self.model, prompt, sampling, cache)
        if keep:
            try:
                kv = (slot.kv_tokens if keep == len(slot.tokens)
                      else await self.engine.truncate(slot.session_id, keep))   # keep the common prefix only
                stream = await self.engine.generate(GenerateRequest(session_id=slot.session_id, turns=(
                    Turn(input=prompt[keep:], constraint=constraint, max_tokens=max_tokens),)))
                slot.tokens, slot.kv_tokens = list(prompt), kv
                return stream, len(prompt) - kv, kv
            except NpcRuntimeError:
                await self.slots.release(slot)   # evicted / context full: start over in a fresh session
        cached = await self.slots.open(slot, self.model, prompt, sampling, self.n_ctx, constraint)
        stream = await self.engine.generate(GenerateRequest(session_id=slot.session_id,
                                                            turns=(Turn(max_tokens=max_tokens),)))
        return stream, len(prompt) - cached, cached


class _Run:
    """One /completion: reads the engine stream, keeps the slot's history, answers in llama-server's shape."""

    def __init__(self, api: _Api, slot: Slot, stream, prompt, prompt_n: int, cached: int, started: float,
                 body: CompletionBody, n_predict: int) -> None:
        self.api, self.slot, self.stream, self.prompt = api, slot, stream, prompt
        self.prompt_n, self.cached, self.started, self.body, self.n_predict = prompt_n, cached, started, body, n_predict
        self.first: float | None = None
        self.tokens: list[int] = []
        self.text: list[str] = []
        self.finish = FinishReason.STOP
        self._ended = False

    async def pieces(self) -> AsyncIterator:
        try:
            async for chunk in self.stream:
                if self.first is None:
                    self.first = time.perf_counter()
                self.tokens.extend(chunk.token_ids)
                self.text.append(chunk.text_delta)
                if chunk.finished:
                    self.finish = chunk.finish_reason
                yield chunk
        finally:
            self.end()

    def end(self) -> None:
        """Once, however the run stops (done, error, client gone): the slot's history, then the slot is free."""
        if self._ended:
            return
        self._ended = True
        slot = self.slot
        slot.tokens = list(self.prompt) + self.tokens
        slot.kv_tokens = max(0, len(slot.tokens) - 1)   # the last sampled token is fed by the next turn
        slot.last_used = time.monotonic()
        if self.finish not in (FinishReason.STOP, FinishReason.EOS, FinishReason.LENGTH):
            slot.tokens = []   # cut short: the history is not known exactly; the next request starts over
        self.api.metrics.tokens.labels("http").inc(len(self.tokens))
        slot.lock.release()

    def final(self) -> dict:
        now = time.perf_counter()
        first = self.first or now
        prompt_ms = (first - self.started) * 1000.0
        predicted_ms = (now - first) * 1000.0
        n = len(self.tokens)
        stop_type = _STOP_TYPE.get(self.finish, "none")
        if self.finish is FinishReason.STOP and self.body.json_schema:
            stop_type = "eos"   # the schema completed: the model was made to end, as a grammar does
        stops = self.body.stop if isinstance(self.body.stop, list) else [self.body.stop] if self.body.stop else []
        settings = {"n_ctx": self.api.n_ctx, "n_predict": self.n_predict, "model": self.api.model,
                    "seed": self.body.seed, "temperature": self.body.temperature, "top_k": self.body.top_k,
                    "top_p": self.body.top_p, "repeat_penalty": self.body.repeat_penalty, "stop": stops,
                    "ignore_eos": self.body.ignore_eos, "cache_prompt": self.body.cache_prompt}
        return {
            "index": 0, "id_slot": self.slot.id, "stop": True, "model": self.api.model,
            "tokens_predicted": n, "tokens_evaluated": len(self.prompt), "tokens_cached": len(self.prompt) + n,
            "generation_settings": settings, "prompt": self.api.engine.tokenizer(self.api.model).decode(self.prompt),
            "has_new_line": "\n" in "".join(self.text), "truncated": self.finish is FinishReason.CONTEXT_FULL,
            "stop_type": stop_type, "stopping_word": stops[0] if stop_type == "word" and len(stops) == 1 else "",
            "stopped_eos": stop_type == "eos", "stopped_limit": stop_type == "limit",
            "stopped_word": stop_type == "word",
            "timings": {"cache_n": self.cached, "prompt_n": self.prompt_n, "prompt_ms": prompt_ms,
                        "prompt_per_token_ms": prompt_ms / max(1, self.prompt_n),
                        "prompt_per_second": self.prompt_n / max(prompt_ms / 1000.0, 1e-9),
                        "predicted_n": n, "predicted_ms": predicted_ms,
                        "predicted_per_token_ms": predicted_ms / max(1, n),
                        "predicted_per_second": n / max(predicted_ms / 1000.0, 1e-9)},
        }

    async def close(self) -> None:
        """A stream's client went away: stop the turn, free the slot (the history is then unknown)."""
        if not self._ended:
            self.finish = FinishReason.CANCELLED
        await self.stream.aclose()
        self.end()

    async def collect(self) -> dict:
        try:
            async for _ in self.pieces():
                pass
        finally:
            await self.stream.aclose()
        return {"content": "".join(self.text), "tokens": self.tokens if self.body.return_tokens else [],
                **self.final()}

    async def events(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.pieces():
                if chunk.text_delta or chunk.token_ids:
                    yield _sse({"index": 0, "content": chunk.text_delta, "tokens": chunk.token_ids, "stop": False,
                                "id_slot": self.slot.id, "tokens_predicted": len(self.tokens),
                                "tokens_evaluated": len(self.prompt)})
            yield _sse({"content": "", "tokens": [], **self.final()})
        except Exception as exc:  # noqa: BLE001 - headers are sent: the error goes in-band, as llama-server does
            st = status.status_for(exc, where="completion stream")
            yield _sse({"error": {"code": st.http_status, "message": st.message, "type": st.http_type}})
        finally:
            await self.stream.aclose()
            self.end()


def llama_router(engine: EngineFacade, *, config: ServerConfig, metrics: ServingMetrics,
                 is_serving: Callable[[], bool] = lambda: True) -> APIRouter:
    router = APIRouter()
    api = _Api(engine, config, metrics)

    @router.get("/health")
    async def health():
        if is_serving():
            return {"status": "ok"}
        return JSONResponse(status_code=503, content={"error": {"code": 503, "message": "server is shutting down",
                                                                "type": "unavailable_error"}})

    @router.post("/completion")
    @router.post("/completions")
    async def completion(request: Request):
        return await api.completion(request)

    @router.post("/v1/completions")
    async def openai_completion(request: Request):
        return await api.completion(request, openai=True)

    @router.get("/props")
    async def props():
        return {"default_generation_settings": {"n_ctx": api.n_ctx, "model": api.model, "params": {
                    "n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "seed": -1}},
                "total_slots": len(api.slots.slots), "model_path": api.info.path, "model_alias": api.model,
                "chat_template": _chat_template(api.info.path), "modalities": {"vision": False, "audio": False},
                "build_info": "npc-runtime"}

    @router.get("/slots")
    async def slots():
        return [{"id": s.id, "id_task": -1, "n_ctx": api.n_ctx, "is_processing": s.busy, "n_past": len(s.tokens),
                 "model": s.model or api.model,
                 "params": {"temperature": s.sampling.temperature, "top_k": s.sampling.top_k,
                            "top_p": s.sampling.top_p, "seed": s.sampling.seed,
                            "stop": list(s.sampling.stop)} if s.sampling else {}}
                for s in api.slots.slots]

    @router.post("/slots/{id_slot}")
    async def slot_action(id_slot: int, request: Request, action: str = ""):
        slot = api.slots.slot(id_slot)
        if action not in ("save", "restore", "erase"):
            raise _invalid(f"action must be save, restore or erase (got {action!r})", "action")
        body = await api.parse(request, SlotFileBody)
        async with slot.lock:
            if action == "erase":
                return {"id_slot": slot.id, "n_erased": await api.slots.release(slot)}
            if action == "save":
                return await api.slots.save(slot, body.filename)
            return await api.slots.restore(slot, body.filename, context=api.n_ctx)

    @router.post("/tokenize")
    async def tokenize(request: Request):
        body = await api.parse(request, TokenizeBody)
        tok = engine.tokenizer(api.model)
        ids = await (engine.workers or default_pool()).run(api.encode, body.content, body.add_special)
        if body.with_pieces:
            return {"tokens": [{"id": t, "piece": tok.decode([t], skip_special_tokens=False)} for t in ids]}
        return {"tokens": ids}

    @router.post("/detokenize")
    async def detokenize(request: Request):
        body = await api.parse(request, DetokenizeBody)
        if any(not 0 <= t < api.info.vocab_size for t in body.tokens):
            raise _invalid(f"tokens must be in [0, {api.info.vocab_size})", "tokens")
        return {"content": engine.tokenizer(api.model).decode(body.tokens)}

    @router.post("/apply-template")
    async def apply_template(request: Request):
        body = await api.parse(request, TemplateBody)
        for i, m in enumerate(body.messages):
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content", ""), str):
                raise _invalid(f"messages[{i}] must be {{\"role\": text, \"content\": text}}", "messages")
        prompt = await (engine.workers or default_pool()).run(
            engine.tokenizer(api.model).apply_chat_template, body.messages, add_generation_prompt=True)
        return {"prompt": prompt}

    return router


def _chat_template(path: str) -> str:
    if not path:
        return ""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return manifest.get("chat_template") or ""
