"""Minimal ONNX Runtime drivers for exported decoders, used by the self-check (validation.py), tests
and benchmarks. Not the server's engine (that lives in npc_runtime.decode); these keep one sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .threads import DEFAULT_THREADS, ort_session_options

_NP_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32}


def make_session(path: str | Path, *, threads: int = DEFAULT_THREADS):
    """A CPU session with the exporter's settings (threads.py: bounded pool, no spinning, telemetry off)."""
    from npc_runtime._ort import import_onnxruntime

    ort = import_onnxruntime()
    return ort.InferenceSession(str(path), sess_options=ort_session_options(threads),
                                providers=["CPUExecutionProvider"])


def _kv_names(inputs) -> tuple[list[str], list[str]]:
    """(past_key_values.{i}.key|value input names ordered by layer, key before value; matching present.* names)."""
    past = sorted((n for n in inputs if n.startswith("past_key_values.")),
                  key=lambda n: (int(n.split(".")[1]), n.endswith(".value")))
    return past, [n.replace("past_key_values.", "present.") for n in past]


class GrowingDecoder:
    """Drives a decoder with `growing` (or shared-buffer, used as growing) KV for batch 1:
    past [1, kv_heads, past_len, head_dim] in, present [1, kv_heads, past_len + T, head_dim] out."""

    def __init__(self, path: str | Path, *, kv_heads: int, head_dim: int, session=None,
                 threads: int = DEFAULT_THREADS):
        self.session = session or make_session(path, threads=threads)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names, self.present_names = _kv_names(self.inputs)
        first = self.inputs[self.past_names[0]]
        self.kv_heads, self.head_dim = kv_heads, head_dim  # the builder's graph names these dims
        self.kv_dtype = _NP_OF_ORT[first.type]
        self.mask_dtype = _NP_OF_ORT[self.inputs["attention_mask"].type]
        self.output_names = ["logits", *self.present_names]

    def empty_past(self) -> list[np.ndarray]:
        return [np.zeros((1, self.kv_heads, 0, self.head_dim), self.kv_dtype) for _ in self.past_names]

    def step(self, ids: np.ndarray, past: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """ids [1, T] -> (logits [1, T, vocab] float32, present list)."""
        past = past if past is not None else self.empty_past()
        past_len = past[0].shape[2]
        total = past_len + ids.shape[1]
        feed = {"input_ids": ids.astype(np.int64), "attention_mask": np.ones((1, total), self.mask_dtype)}
        if "position_ids" in self.inputs:
            feed["position_ids"] = np.arange(past_len, total, dtype=np.int64)[None, :]
        feed.update(zip(self.past_names, past))
        out = self.session.run(self.output_names, feed)
        return out[0].astype(np.float32), out[1:]


class FixedCapacityDecoder:
    """Drives `model.fixed.onnx`: one new token per call; past/present [1, kv_heads, capacity, head_dim];
    attention_mask [1, capacity + 1]: slots 0..capacity-1 are cache slots, the last is the new token.
    The graph writes the new token's key/value at slot `position_ids` of present."""

    def __init__(self, path: str | Path, *, session=None, threads: int = DEFAULT_THREADS):
        self.session = session or make_session(path, threads=threads)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names, self.present_names = _kv_names(self.inputs)
        first = self.inputs[self.past_names[0]]
        self.kv_heads, self.capacity, self.head_dim = (int(d) for d in first.shape[1:])
        self.kv_dtype = _NP_OF_ORT[first.type]

    def run(self, ids: list[int]) -> np.ndarray:
        """Feed ids one by one from an empty cache; returns logits [len(ids), vocab] float32."""
        past = [np.zeros((1, self.kv_heads, self.capacity, self.head_dim), self.kv_dtype) for _ in self.past_names]
        mask = np.zeros((1, self.capacity + 1), np.int64)
        mask[0, -1] = 1  # the new token always sees itself
        rows = []
        for pos, tok in enumerate(ids):
            feed = {"input_ids": np.array([[tok]], np.int64), "position_ids": np.array([[pos]], np.int64),
                    "attention_mask": mask}
            feed.update(zip(self.past_names, past))
            out = self.session.run(["logits", *self.present_names], feed)
            rows.append(out[0][0, -1].astype(np.float32))
            past = out[1:]
            mask = mask.copy()
            mask[0, pos] = 1  # slot `pos` now holds this token
        return np.stack(rows)
