"""Runtime test fixtures: one tiny real package per test run, and a fake decoder for scheduler tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from package_factory import build_package
from tests.helpers.tiny_models import make_tiny_hf_model


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory) -> Path:
    """A tiny random Llama (2 layers, hidden 64, vocab 512, context 256) exported once per test run as an
    fp32 `ort` package by the exporter (`npc_export.export_model`)."""
    root = tmp_path_factory.mktemp("tiny")
    hf = make_tiny_hf_model(root / "hf", "llama", seed=0, name="tiny-llama")
    return build_package(hf, root / "pkg", precision="fp32")


@pytest.fixture(scope="session")
def tiny_portable_package(tiny_package) -> Path:
    """The same tiny model as a `portable` package (plain ai.onnx graph, growing KV layout)."""
    root = tiny_package.parent
    return build_package(root / "hf" / "tiny-llama", root / "portable", precision="fp32", target="portable")


@pytest.fixture(scope="session")
def tiny_engine_factory(tiny_package):
    from npc_runtime.config import EngineConfig
    from npc_runtime.sessions import Engine

    def make(**overrides):
        cfg = dict(max_sessions=8, max_context=128, intra_op_threads=1, warmup=False)
        cfg.update(overrides)
        return Engine.from_packages([tiny_package], config=EngineConfig(**cfg))
    return make


@pytest.fixture()
def engine(tiny_engine_factory):
    return tiny_engine_factory()


@pytest.fixture()
def model_name(engine) -> str:
    return engine.list_models()[0].name


class FakeDecoder:
    """A DecoderModel with no ONNX: the 'KV' of a slot is the token ids fed so far, and the logits are a
    deterministic function of that whole history, so any KV mix-up between slots changes the output."""

    def __init__(self, *, max_slots: int = 8, capacity: int = 64, vocab_size: int = 50, step_s: float = 0.0):
        self.max_slots, self.capacity, self.vocab_size = max_slots, capacity, vocab_size
        self.kv_bytes_per_token = 8
        self.kv = np.full((max_slots, capacity), -1, dtype=np.int64)   # [slots, capacity]
        self.step_s = step_s
        self.decode_batches: list[int] = []

    def _logits(self, history: np.ndarray) -> np.ndarray:
        h = int((history * np.arange(1, len(history) + 1)).sum() % 9973)
        logits = np.sin(np.arange(self.vocab_size) * (h % 97 + 1) * 0.37 + h).astype(np.float32)
        return logits

    def prefill(self, slot, token_ids, past_len):
        n = len(token_ids)
        self.kv[slot, past_len:past_len + n] = token_ids
        return self._logits(self.kv[slot, :past_len + n])

    def decode(self, start, token_ids, past_lens):
        self.decode_batches.append(len(token_ids))
        if self.step_s:
            import time
            time.sleep(self.step_s * len(token_ids))   # step_s per row
        rows = []
        for b, (t, n) in enumerate(zip(token_ids, past_lens)):
            self.kv[start + b, n] = t
            rows.append(self._logits(self.kv[start + b, :n + 1]))
        return np.stack(rows)

    def move(self, src, dst, length):
        self.kv[dst, :length] = self.kv[src, :length]
        self.kv[src] = -1

    def swap(self, a, len_a, b, len_b):
        tmp = self.kv[a].copy()
        self.kv[a] = self.kv[b]
        self.kv[b] = tmp

    def read_kv(self, slot, start, end):
        return [self.kv[slot, start:end].copy()]

    def write_kv(self, slot, start, blocks):
        self.kv[slot, start:start + len(blocks[0])] = blocks[0]
