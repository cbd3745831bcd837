"""llama-server slots over engine sessions, and slot save / restore files.

A slot is one engine session kept open between requests (`cache_prompt`): the slot remembers the session's
token history (prompt + generated, as the engine holds it). A request continues that session with a new turn
after its longest common prefix with the prompt (`EngineFacade.truncate` drops the rest of the history, KV
included), so only the new suffix is prefilled, as llama-server does; a prompt with nothing in common opens a
fresh session (the prefix cache still supplies whole blocks of a shared prefix). Sampling settings are fixed
per engine session, so a request with different settings (or an explicit seed at temperature > 0, for
reproducibility) also opens a fresh one.

Slot files (`POST /slots/{id}?action=save|restore`) are session snapshots (sessions/snapshot.py: versioned,
checksummed, bound to the model package's manifest hash) with the KV cache: a restore continues the slot's
session exactly, and a later prompt that extends it prefills only what it adds, as llama-server's slot files
do. File names are plain names inside the slot folder: no separators, no "..", no leading dot, symlinks
refused (O_NOFOLLOW).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from npc_runtime.config import SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from npc_runtime.sessions import snapshot
from npc_runtime.sessions.facade import EngineFacade
from npc_runtime.workers import default_pool
from npc_runtime.sessions.requests import OpenRequest

MAX_SLOT_FILE_BYTES = 256 << 20     # a snapshot with its KV: kv_bytes_per_token x context (2.5 MiB at 512 here)
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


@dataclass
class Slot:
    id: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_id: str | None = None
    model: str = ""
    tokens: list[int] = field(default_factory=list)   # the session's history as the engine holds it
    sampling: SamplingParams | None = None
    kv_tokens: int = 0          # of `tokens`, those whose KV is in the session (known lower bound)
    last_used: float = 0.0

    @property
    def busy(self) -> bool:
        return self.lock.locked()


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _without_seed(p: SamplingParams) -> SamplingParams:
    return dataclasses.replace(p, seed=None)


class SlotManager:
    def __init__(self, engine: EngineFacade, *, count: int, slot_dir: Path) -> None:
        self.engine = engine
        self.slots = [Slot(i) for i in range(max(1, min(count, engine.max_sessions)))]
        self.slot_dir = slot_dir

    # -- choosing ---------------------------------------------------------------------------------------
    def slot(self, id_slot: int) -> Slot:
        if isinstance(id_slot, bool) or not isinstance(id_slot, int) or not 0 <= id_slot < len(self.slots):
            raise InvalidArgument(f"id_slot must be -1 or in [0, {len(self.slots)}) (got {id_slot!r})")
        return self.slots[id_slot]

    def pick(self, id_slot: int, prompt: list[int]) -> Slot:
        """`id_slot`, or for -1: an idle slot, the one whose history shares the longest prefix with the prompt,
        then the least recently used; every slot busy: the least recently used (the request waits for it)."""
        if id_slot != -1:
            return self.slot(id_slot)
        idle = [s for s in self.slots if not s.busy] or self.slots
        return max(idle, key=lambda s: (common_prefix(s.tokens, prompt), -s.last_used))

    # -- sessions ---------------------------------------------------------------------------------------
    def reusable(self, slot: Slot, model: str, prompt: list[int], sampling: SamplingParams, cache: bool) -> int:
        """How many leading prompt tokens the slot's session can keep (0: open a fresh session)."""
        if not cache or slot.session_id is None or slot.model != model or not slot.tokens:
            return 0
        same = slot.sampling is not None and _without_seed(slot.sampling) == _without_seed(sampling)
        if not same or (sampling.seed is not None and sampling.temperature > 0.0):
            return 0
        return common_prefix(slot.tokens, prompt)

    async def release(self, slot: Slot) -> int:
        """Closes the slot's session; returns the tokens it held."""
        held = len(slot.tokens)
        if slot.session_id is not None:
            try:
                await self.engine.close(slot.session_id)
            except (NotFound, FailedPrecondition):
                pass   # evicted after its idle timeout, or already closed
        slot.session_id, slot.tokens, slot.sampling, slot.kv_tokens = None, [], None, 0
        return held

    async def open(self, slot: Slot, model: str, prompt: list[int], sampling: SamplingParams,
                   context: int, constraint=None) -> int:
        """A fresh session for `prompt` in `slot` (its first turn is the prompt); returns the prompt tokens
        whose KV came from the prefix cache."""
        await self.release(slot)
        opened = await self.engine.open(OpenRequest(
            model=model, prompt=prompt, sampling=sampling, constraint=constraint,
            limits=SessionLimits(max_new_tokens=max(1, context - 1))))
        slot.session_id, slot.model, slot.tokens, slot.sampling = opened.session_id, opened.model, list(prompt), sampling
        slot.kv_tokens = opened.cached_prefix_tokens
        return opened.cached_prefix_tokens

    # -- files ------------------------------------------------------------------------------------------
    def file_path(self, filename) -> Path:
        if not isinstance(filename, str) or not _FILE_NAME.match(filename) or ".." in filename:
            raise InvalidArgument("filename must be a plain file name (letters, digits, '.', '_', '-'; no path, "
                                  f"no '..', no leading dot) inside the slot folder (got {filename!r})")
        return self.slot_dir / filename

    async def save(self, slot: Slot, filename) -> dict:
        """The slot's session as a session snapshot with its KV (sessions/snapshot.py): a restore continues
        it exactly, with nothing to prefill but what a later prompt adds."""
        path = self.file_path(filename)
        started = time.perf_counter()
        if slot.session_id is None:
            raise InvalidArgument(f"slot {slot.id} holds no conversation to save (run a completion in it first)")
        data = await self.engine.save_session(slot.session_id, include_kv=True)
        await (self.engine.workers or default_pool()).run(self._write, path, filename, data)
        return {"id_slot": slot.id, "filename": filename, "n_saved": len(slot.tokens), "n_written": len(data),
                "timings": {"save_ms": (time.perf_counter() - started) * 1000.0}}

    def _write(self, path: Path, filename: str, data: bytes) -> None:
        self.slot_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.slot_dir / f".{filename}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if path.is_symlink():
                raise InvalidArgument(f"{filename!r} is a symbolic link in the slot folder; refusing to replace it")
            os.replace(tmp, path)
        except OSError as exc:
            raise FailedPrecondition(f"cannot write slot file {filename!r}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, filename) -> tuple[bytes, snapshot.SessionState]:
        path = self.file_path(filename)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise NotFound(f"slot file {filename!r} does not exist in the slot folder") from exc
        except OSError as exc:   # ELOOP: a symlink
            raise InvalidArgument(f"slot file {filename!r} cannot be opened ({exc.strerror}); symlinks are refused") from exc
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_SLOT_FILE_BYTES + 1)
        if len(data) > MAX_SLOT_FILE_BYTES:
            raise InvalidArgument(f"slot file {filename!r} is larger than {MAX_SLOT_FILE_BYTES} bytes")
        try:
            return data, snapshot.decode(data)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid slot save file {filename!r}: {exc}") from exc

    async def restore(self, slot: Slot, filename, *, context: int) -> dict:
        started = time.perf_counter()
        data, state = await (self.engine.workers or default_pool()).run(self.read, filename)
        if len(state.tokens) >= context:
            raise InvalidArgument(f"restored prompt does not fit in the slot context ({len(state.tokens)} tokens, "
                                  f"n_ctx {context})")
        await self.release(slot)
        try:
            opened = await self.engine.restore_session(data, session_id=uuid.uuid4().hex)
        except FailedPrecondition as exc:
            raise InvalidArgument(f"slot file {filename!r} was saved with another model than this server serves "
                                  f"(model sha256 differs): {exc}") from exc
        slot.session_id, slot.model, slot.tokens = opened.session_id, state.model, list(state.tokens)
        slot.sampling, slot.kv_tokens = state.sampling, opened.cached_prefix_tokens
        return {"id_slot": slot.id, "filename": filename, "n_restored": len(state.tokens), "n_read": len(data),
                "timings": {"restore_ms": (time.perf_counter() - started) * 1000.0}}
