"""`DialogueModel` over the runtime's decode engine (`sessions.AsyncEngine`): the same batching engine the
NpcRuntime service uses, so concurrent NPC replies share forward passes.

One reply = one short session: the prompt (token ids, BOS included by the prompt text), a first turn
constrained to `[action]` for the allowed actions only (`ConstraintSpec.one_of`), then a free turn for the
spoken line that stops at `<|end|>`. The agent's threads call `reply()` synchronously; the coroutines run
on a private event loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Sequence

from npc_runtime.agent.dialogue import END, EOS, DialoguePrompt, DialogueReply, parse_reply
from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import DeadlineExceeded

TAG_MAX_TOKENS = 16


class EngineDialogueModel:
    def __init__(self, engine, model: str, *, temperature: float = 0.0, call_timeout_s: float = 5.0):
        """`engine`: an `AsyncEngine` (its `.engine` gives the tokenizer)."""
        self.engine = engine
        self.model = model
        self.name = model
        self.temperature = temperature
        self.call_timeout_s = call_timeout_s
        self._tokenizer = engine.engine.tokenizer(model)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="npcrt-dialogue", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def reply(self, prompt: DialoguePrompt, *, allowed_actions: Sequence[str], max_tokens: int,
              npc_id: str, seed: int | None = None, timeout_s: float | None = None) -> DialogueReply:
        timeout = self.call_timeout_s if timeout_s is None else max(0.0, min(timeout_s, self.call_timeout_s))
        future = asyncio.run_coroutine_threadsafe(
            self._reply(prompt, tuple(allowed_actions), max_tokens, npc_id, seed), self._loop)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout as exc:
            future.cancel()   # the coroutine's `finally` closes the engine session
            raise DeadlineExceeded(f"dialogue model {self.model}: no reply within {timeout * 1000:.0f} ms") from exc

    async def _reply(self, prompt: DialoguePrompt, allowed: tuple[str, ...], max_tokens: int, npc_id: str,
                     seed: int | None) -> DialogueReply:
        ids = self._tokenizer.encode(prompt.text(), add_special_tokens=False)
        sampled = seed is not None or self.temperature > 0
        sampling = SamplingParams(temperature=(self.temperature or 0.8) if sampled else 0.0,
                                  top_p=0.95 if sampled else 1.0, seed=seed, stop=(END, EOS))
        ae = self.engine
        sid = await ae.open_session(self.model, npc_id=npc_id, prompt=ids, sampling=sampling,
                                    limits=SessionLimits(max_new_tokens=max(max_tokens, TAG_MAX_TOKENS)),
                                    constraint=ConstraintSpec.one_of(sorted(f"[{a}]" for a in allowed)))  # sorted: cache hits
        tokens = 0
        try:
            tag = []
            async for chunk in ae.generate(sid, max_tokens=TAG_MAX_TOKENS):
                tag.append(chunk.text_delta)
                tokens += len(chunk.token_ids)
            line = []
            async for chunk in ae.generate(sid, [], max_tokens=max_tokens):   # [] = continue after the tag
                line.append(chunk.text_delta)
                tokens += len(chunk.token_ids)
        finally:
            await ae.close_session(sid)
        reply = parse_reply("".join(tag) + "".join(line), tokens=tokens)
        return DialogueReply(action=reply.action, line=reply.line, raw=reply.raw, tokens=tokens,
                             prefill_tokens=len(ids))
