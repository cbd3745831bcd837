"""`DialogueModel` over the runtime's decode engine (`sessions.EngineFacade`): the same batching engine the
NpcRuntime service uses, so concurrent NPC replies share forward passes.

One reply = one short session and ONE engine request (one thread hop): the prompt (token ids, BOS included
by the prompt text), a first turn constrained to `[action]` for the allowed actions only
(`ConstraintSpec.one_of`), then a free turn for the spoken line that stops at `<|end|>`; the engine closes
the session when the stream ends (`GenerateRequest(open=..., turns=(tag, line))`). The agent's threads call `reply()` synchronously; the coroutines run
on a private event loop thread.

The session asks the engine for token probabilities (`SamplingParams.logprobs`): at each constrained step
of the tag the engine reports the probability of every allowed token, renormalised over the allowed set,
from which `action_probabilities` derives P(action) for the decision's confidence and margin.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Iterator, Mapping, Sequence

from npc_runtime.agent.dialogue import END, EOS, DialoguePrompt, DialogueReply, parse_reply, tag_action
from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import DeadlineExceeded, InternalError, NpcRuntimeError
from npc_runtime.sessions.requests import GenerateRequest, OpenRequest, Turn

TAG_MAX_TOKENS = 16
_POLL_S = 0.05   # how often a waiting stream consumer looks at its cancel flag


def action_probabilities(steps: Sequence[tuple[int, Mapping[int, float] | None]],
                         tags: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """P(action) over the allowed actions from a constrained tag turn.

    `steps`: (chosen token, {allowed token: probability renormalised over the allowed set} or None) per
    step of the tag; `tags`: each action's tag token ids (as the choice constraint tokenizes `[action]`).
    The chosen action's probability is exact (the product along its path). An action that leaves the path
    at some step gets the probability of the branch it leaves by (times the path so far): exact when it is
    alone in that branch, an upper bound shared with its siblings otherwise, so a margin computed from
    these values is never overstated."""
    probs: dict[str, float] = {}
    for action, ids in tags.items():
        p = 1.0
        for i, (token, allowed) in enumerate(steps):
            if i >= len(ids):
                break
            want = int(ids[i])
            if allowed is None:           # too many alternatives reported: no information at this step
                if want != token:
                    break
                continue
            p *= float(allowed.get(want, 0.0))
            if want != token:
                break
        probs[action] = p
    return probs


class EngineDialogueModel:
    def __init__(self, engine, model: str, *, temperature: float = 0.0, call_timeout_s: float = 5.0):
        """`engine`: an `EngineFacade`."""
        self.engine = engine
        self.model = model
        self.name = model
        self.temperature = temperature
        self.call_timeout_s = call_timeout_s
        self._tokenizer = engine.tokenizer(model)
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

    def reply_stream(self, prompt: DialoguePrompt, *, allowed_actions: Sequence[str], max_tokens: int,
                     npc_id: str, seed: int | None = None) -> "EngineDialogueStream":
        """Starts decoding now; the tag, then the line's text deltas as the engine decodes them (the same
        session and sampling as `reply`, so the same tokens for the same arguments)."""
        stream = EngineDialogueStream(self.call_timeout_s)
        stream._future = asyncio.run_coroutine_threadsafe(
            self._stream(prompt, tuple(allowed_actions), max_tokens, npc_id, seed, stream._items), self._loop)
        return stream

    def _request(self, prompt: DialoguePrompt, allowed: tuple[str, ...], max_tokens: int, npc_id: str,
                 seed: int | None) -> tuple[GenerateRequest, list[int]]:
        """The reply as one engine request (open, tag turn, line turn, close) and the prompt's token ids."""
        ids = self._tokenizer.encode(prompt.text(), add_special_tokens=False)
        sampled = seed is not None or self.temperature > 0
        sampling = SamplingParams(temperature=(self.temperature or 0.8) if sampled else 0.0,
                                  top_p=0.95 if sampled else 1.0, seed=seed, stop=(END, EOS), logprobs=True)
        session = OpenRequest(model=self.model, npc_id=npc_id, prompt=ids, sampling=sampling,
                              limits=SessionLimits(max_new_tokens=max(max_tokens, TAG_MAX_TOKENS)),
                              constraint=ConstraintSpec.one_of(sorted(f"[{a}]" for a in allowed)))  # sorted: cache hits
        # turn 0: the constrained tag; turn 1: the line ([] = a new turn that continues after the tag)
        turns = (Turn(max_tokens=TAG_MAX_TOKENS), Turn(input=[], max_tokens=max_tokens))
        return GenerateRequest(open=session, turns=turns), ids

    def _action_probs(self, steps: list, allowed: tuple[str, ...]) -> Mapping[str, float] | None:
        """Probability of each allowed action from the tag's constrained steps (None: no steps seen)."""
        if not steps:
            return None
        tags = {a: self._tokenizer.encode(f"[{a}]") for a in allowed}   # as ChoiceConstraint tokenizes
        return action_probabilities(steps, tags)

    @staticmethod
    def _tag_step(chunk, tag: list[str], steps: list) -> int:
        tag.append(chunk.text_delta)
        steps += zip(chunk.token_ids, chunk.choice_probs or [None] * len(chunk.token_ids))
        return len(chunk.token_ids)

    async def _stream(self, prompt: DialoguePrompt, allowed: tuple[str, ...], max_tokens: int, npc_id: str,
                      seed: int | None, out: queue.SimpleQueue) -> None:
        """Runs on the private loop; reports to the consumer thread through `out`. Cancelling the task (the
        consumer's `cancel()`) stops the engine turn and closes the session."""
        try:
            request, ids = self._request(prompt, allowed, max_tokens, npc_id, seed)
            chunks = await self.engine.generate(request)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            out.put(("error", exc))
            return
        try:
            tag, steps, tokens = [], [], 0
            async for chunk in chunks:
                if chunk.turn == 1:
                    out.put(("text", chunk.text_delta, len(chunk.token_ids)))
                    continue
                tokens += self._tag_step(chunk, tag, steps)
                if chunk.finished:
                    out.put(("tag", "".join(tag), self._action_probs(steps, allowed), tokens, len(ids)))
            out.put(("end",))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            out.put(("error", exc))
        finally:
            await chunks.aclose()   # early end (cancel, timeout): stops the turn and closes the session

    async def _reply(self, prompt: DialoguePrompt, allowed: tuple[str, ...], max_tokens: int, npc_id: str,
                     seed: int | None) -> DialogueReply:
        request, ids = self._request(prompt, allowed, max_tokens, npc_id, seed)
        chunks = await self.engine.generate(request)
        tokens = 0
        steps: list[tuple[int, Mapping[int, float] | None]] = []
        tag, line = [], []
        try:
            async for chunk in chunks:
                if chunk.turn == 0:
                    tokens += self._tag_step(chunk, tag, steps)
                else:
                    line.append(chunk.text_delta)
                    tokens += len(chunk.token_ids)
        finally:
            await chunks.aclose()   # early end (timeout): stops the turn and closes the session
        reply = parse_reply("".join(tag) + "".join(line), tokens=tokens,
                            action_probs=self._action_probs(steps, allowed))
        return DialogueReply(action=reply.action, line=reply.line, raw=reply.raw, tokens=tokens,
                             action_probs=reply.action_probs, prefill_tokens=len(ids))


class EngineDialogueStream:
    """The consumer side of `EngineDialogueModel.reply_stream` (a `DialogueStream`), used by one thread."""

    def __init__(self, call_timeout_s: float):
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._future = None
        self._ends = time.monotonic() + call_timeout_s   # the model's own bound on one reply
        self.tokens = 0
        self.prefill_tokens = 0
        self.error: Exception | None = None   # what ended the line early, if anything did

    def action(self, *, timeout_s: float) -> tuple[str | None, Mapping[str, float] | None, str]:
        timeout = max(0.0, min(timeout_s, self._ends - time.monotonic()))
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            self.cancel()
            raise DeadlineExceeded(f"dialogue model: no action tag within {timeout * 1000:.0f} ms") from None
        if item[0] == "error":
            self.cancel()
            exc = item[1]
            if isinstance(exc, NpcRuntimeError):
                raise exc
            raise InternalError(f"dialogue model failed: {type(exc).__name__}: {exc}") from exc
        _, tag, probs, self.tokens, self.prefill_tokens = item
        return tag_action(tag), probs, tag

    def pieces(self, *, timeout_s: float, cancelled: threading.Event | None = None) -> Iterator[str]:
        ends = min(time.monotonic() + timeout_s, self._ends)
        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0 or (cancelled is not None and cancelled.is_set()):
                self.cancel()
                return
            try:
                item = self._items.get(timeout=min(remaining, _POLL_S))
            except queue.Empty:
                continue
            if item[0] == "end":
                return
            if item[0] == "error":
                self.error = item[1]
                return
            self.tokens += item[2]
            if item[1]:
                yield item[1]

    def cancel(self) -> None:
        if self._future is not None:
            self._future.cancel()   # the coroutine's `finally` closes the engine session
