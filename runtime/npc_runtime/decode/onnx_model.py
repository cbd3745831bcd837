"""ONNX Runtime decoder over a KV pool.

Two backends, picked by the package's `kv_cache.layout` (a registry, see `open_decoder`):

* `shared-buffer` (GroupQueryAttention graphs, e.g. the `ort` profile): one preallocated pool per layer and
  per key/value, `[max_slots, kv_heads, capacity, head_dim]`. A batch is always a contiguous slot range
  `pool[start:start+B]` (a view, bound by pointer with IO binding, past and present on the same memory), so a
  step copies nothing; `attention_mask` is `[B, max_len + new]` right-padded, row b has `len_b + new` ones:
  rows of different lengths decode together (ragged batching). Prefill runs on `pool[i:i+1]`.
* `growing` (Optimum-style graphs, e.g. `portable` packages): per-slot past arrays
  `[1, kv_heads, len, head_dim]`, present = concat(past, new). Slower: one run per row.

Both expose the same small interface (`DecoderModel`), which the scheduler and its fake test model use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from npc_runtime._ort import import_onnxruntime
from npc_runtime.decode.package import ModelPackage
from npc_runtime.errors import InternalError, InvalidArgument, ModelPackageError

ort = import_onnxruntime()  # telemetry off (environment + library call), see npc_runtime._ort

_NP_DTYPES = {"float32": np.float32, "float16": np.float16}
_ALIGN = 64   # bytes: a cache line / one AVX-512 vector (numpy's large allocations are only 16-byte aligned)


def aligned_zeros(shape: tuple[int, ...], dtype, *, align: int = _ALIGN) -> np.ndarray:
    """A zeroed C-contiguous array whose data starts on an `align`-byte boundary (buffers bound to ORT)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(nbytes + align, np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


class DecoderModel(Protocol):
    """What the scheduler needs from a model. Slots are rows of the KV pool; lengths are tracked by the caller."""

    max_slots: int
    capacity: int        # max positions per slot
    vocab_size: int
    kv_bytes_per_token: int

    def prefill(self, slot: int, token_ids: np.ndarray, past_len: int) -> np.ndarray:
        """Feed `token_ids` [n] to `slot` whose KV holds `past_len` positions; return the last logits [vocab]."""

    def decode(self, start: int, token_ids: np.ndarray, past_lens: np.ndarray) -> np.ndarray:
        """One token per slot for slots start..start+B-1 (ragged `past_lens` [B]); return logits [B, vocab]."""

    def move(self, src: int, dst: int, length: int) -> None: ...

    def swap(self, a: int, len_a: int, b: int, len_b: int) -> None: ...

    def read_kv(self, slot: int, start: int, end: int) -> list[np.ndarray]:
        """A copy of positions [start, end) of a slot, one array [kv_heads, end-start, head_dim] per pool."""

    def write_kv(self, slot: int, start: int, blocks: list[np.ndarray]) -> None: ...


@dataclass(frozen=True)
class DecoderOptions:
    max_slots: int = 16
    capacity: int | None = None          # default: the package's kv capacity
    intra_op_threads: int = 0            # 0: ONNX Runtime's default (all cores)
    spinning: str = "step"               # "step": intra-op threads spin during a run, sleep once it returns;
                                         # "always": they also spin between runs; "never": they never spin
    flush_denormals: bool = False        # flush-to-zero / denormals-as-zero (fp32 ~15 % faster; see EngineConfig)
    small_batch_threads: int = 0         # > 0: a second session with this many threads for small decode batches;
                                         # -1: tune_threads() picks among small_batch_candidates() (none before)
    small_batch_max: int = 1             # decode batches up to this run on it; -1: measured by tune_threads()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def small_batch_candidates(threads: int) -> list[int]:
    """Thread counts tune_threads() tries for the small-batch session (auto): 1, a quarter and a half of the
    main pool, where it has more than 2 threads. Measured (bench/bench_step_profile.py): a one-row int4 step
    of the reference model on a 16-vCPU Xeon takes 1.0 ms on 1 thread and 0.6 to 0.8 on 4, 8 or 16 (the best
    of them varies run to run); on issue 10's 16-core machine genai on 1 thread ran a token in 0.66 ms and
    the engine on 16 in 1.1; on 2 cores, 2 threads beat 1. While one session runs, the other's pool may
    still be spinning from its last step: on a machine with fewer cores than both pools' threads, batch
    sizes that alternate across the boundary pay for that (the tuner measures each size on its own)."""
    if threads <= 2:
        return []
    return sorted({1, max(1, threads // 4), threads // 2})


AUTO = -1
TUNE_MARGIN = 0.05   # tune_threads uses the small-batch session only where it is this much faster


def _session(package: ModelPackage, threads: int, spinning: str = "step",
             flush_denormals: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    if spinning == "never":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spinning == "step":
        # Spinning while a step runs keeps the kernels' hand-offs fast (sleeping threads made the batched step
        # ~1.5x slower); spinning *after* it returns held every core while the server built the reply and fed
        # the streams (Tick p99 3.8 ms over budget on 16 cores). ORT stops the spin when the last Run returns.
        so.add_session_config_entry("session.force_spinning_stop", "1")
    elif spinning != "always":
        raise InvalidArgument(f"spinning must be 'step', 'always' or 'never', got {spinning!r}")
    if flush_denormals:
        # random-weight / long-context fp32 activations hit denormals (softmax tails); FTZ/DAZ applies to ORT's
        # pool threads and to the thread that creates the session (not to another thread that runs it alone)
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # shapes change every step (the mask grows by one): a memory pattern planned per shape is never reused
    so.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(package.model_file), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph...)
        raise ModelPackageError(f"{package.path}: ONNX Runtime cannot load model.onnx ({exc})") from exc


class _OrtDecoderBase:
    def __init__(self, package: ModelPackage, options: DecoderOptions) -> None:
        arch, kv = package.architecture, package.kv_cache
        if arch is None or kv is None:
            raise ModelPackageError(f"{package.path}: kind {package.kind!r} is not a decoder package")
        self.package = package
        self.num_layers = arch.num_layers
        self.kv_heads = arch.num_kv_heads
        self.head_dim = arch.head_dim
        self.vocab_size = arch.vocab_size
        self.capacity = int(min(options.capacity or kv.capacity, kv.capacity))
        self.max_slots = int(options.max_slots)
        if self.max_slots < 1 or self.capacity < 2:
            raise InvalidArgument(f"max_slots ({self.max_slots}) must be >= 1 and capacity ({self.capacity}) >= 2")
        self.dtype = _NP_DTYPES.get(kv.dtype)
        if self.dtype is None:
            raise ModelPackageError(f"{package.path}: kv_cache.dtype {kv.dtype!r} unsupported")
        self.session = _session(package, options.intra_op_threads, options.spinning, options.flush_denormals)
        self.threads = options.intra_op_threads or available_cores()
        self.has_position_ids = "position_ids" in package.input_names
        # pool order: layer0.key, layer0.value, layer1.key, ...
        self.past_names = [f"past_key_values.{i}.{kv_}" for i in range(self.num_layers) for kv_ in ("key", "value")]
        self.present_names = [f"present.{i}.{kv_}" for i in range(self.num_layers) for kv_ in ("key", "value")]
        self.kv_bytes_per_token = 2 * self.num_layers * self.kv_heads * self.head_dim * np.dtype(self.dtype).itemsize

    def _run(self, feeds: dict, outputs: list[str]):
        try:
            return self.session.run(outputs, feeds)
        except Exception as exc:
            raise InternalError(f"ONNX Runtime run failed: {exc}") from exc


class SharedBufferDecoder(_OrtDecoderBase):
    """GQA graphs: past and present bound to the same preallocated pool views (no copies per step).

    IO bindings are cached per (start slot, batch, session) with EVERY decode input and output bound once: the KV
    views, input_ids, the logits buffer and a full-width attention mask `[B, capacity]` (row b: `len_b + 1`
    ones, then zeros; the graph takes each row's length from the mask's sum, as in ragged batching, and its
    total length from the width, the KV buffer's capacity). A decode step only writes ids and mask in place:
    no binding calls, little Python between ONNX Runtime runs (whose weight streaming evicts the
    interpreter's caches, so every Python call after a run costs several times its warm cost)."""

    _MAX_BINDINGS = 2048

    def __init__(self, package: ModelPackage, options: DecoderOptions) -> None:
        super().__init__(package, options)
        shape = (self.max_slots, self.kv_heads, self.capacity, self.head_dim)
        self.pools = [aligned_zeros(shape, self.dtype) for _ in self.past_names]   # [slots, kv_heads, capacity, head_dim]
        self._slot_bytes = self.kv_heads * self.capacity * self.head_dim * np.dtype(self.dtype).itemsize
        self._logits = aligned_zeros((self.max_slots, 1, self.vocab_size), np.float32)   # decode logits [B, 1, vocab]
        self._ids = aligned_zeros((self.max_slots, 1), np.int64)                        # decode input_ids [B, 1]
        self._positions = aligned_zeros((self.max_slots, 1), np.int64)
        self._mask = aligned_zeros((self.max_slots * (self.capacity + 1),), np.int64)   # [B, total] views of it
        self._columns = np.arange(self.capacity + 1, dtype=np.int64)[None, :]           # [1, capacity + 1]
        self._bindings: dict[tuple[int, int, bool], tuple[ort.InferenceSession, ort.IOBinding]] = {}
        # thread count per batch size: a second session with fewer threads for small decode batches, whose
        # steps are ~200 short kernels that a wide pool slows with a fork/join each. Its weights are loaded
        # (and prepacked) a second time; tune_threads() drops it where it does not pay.
        self.small_session: ort.InferenceSession | None = None
        self.small_batch_threads = 0
        self.small_batch_max = 0
        self._options = options
        wanted = options.small_batch_max != 0
        self._candidates = (small_batch_candidates(self.threads)
                            if wanted and options.small_batch_threads == AUTO else [])
        if wanted and 0 < options.small_batch_threads < self.threads:
            self._set_small(options.small_batch_threads, options.small_batch_max)
        # tune_threads() (engine warm-up) has something to choose: the threads, or up to which batch
        self.tune_pending = bool(self._candidates) or (self.small_session is not None and options.small_batch_max == AUTO)

    def _set_small(self, threads: int, max_batch: int, session: ort.InferenceSession | None = None) -> None:
        if threads and session is None:
            session = _session(self.package, threads, self._options.spinning, self._options.flush_denormals)
        self.small_session, self.small_batch_threads = session, threads
        self.small_batch_max = min(max_batch, self.max_slots) if max_batch > 0 and threads else (1 if threads else 0)
        self._bindings.clear()

    @property
    def pool_bytes(self) -> int:
        return sum(p.nbytes for p in self.pools)

    def _bind_kv(self, io: ort.IOBinding, start: int, batch: int) -> None:
        shape = [batch, self.kv_heads, self.capacity, self.head_dim]
        for past, present, pool in zip(self.past_names, self.present_names, self.pools):
            ptr = pool.ctypes.data + start * self._slot_bytes
            io.bind_input(past, "cpu", 0, self.dtype, shape, ptr)
            io.bind_output(present, "cpu", 0, self.dtype, shape, ptr)

    @staticmethod
    def _bind_array(io: ort.IOBinding, name: str, array: np.ndarray) -> None:
        io.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

    def _decode_binding(self, start: int, batch: int) -> tuple[ort.InferenceSession, ort.IOBinding]:
        small = batch <= self.small_batch_max
        bound = self._bindings.get((start, batch, small))
        if bound is None:
            if len(self._bindings) >= self._MAX_BINDINGS:
                self._bindings.clear()
            session = self.small_session if small else self.session
            io = session.io_binding()
            self._bind_kv(io, start, batch)
            self._bind_array(io, "input_ids", self._ids[:batch])
            self._bind_array(io, "attention_mask", self._decode_mask(batch))
            if self.has_position_ids:
                self._bind_array(io, "position_ids", self._positions[:batch])
            io.bind_output("logits", "cpu", 0, np.float32, [batch, 1, self.vocab_size], self._logits.ctypes.data)
            bound = self._bindings[(start, batch, small)] = (session, io)
        return bound

    def _decode_mask(self, batch: int) -> np.ndarray:
        return self._mask[: batch * self.capacity].reshape(batch, self.capacity)   # [B, capacity]

    def prefill(self, slot: int, token_ids: np.ndarray, past_len: int) -> np.ndarray:
        ids = np.ascontiguousarray(token_ids, dtype=np.int64).reshape(1, -1)
        n = ids.shape[1]
        if n < 1 or past_len + n > self.capacity:
            raise InvalidArgument(f"prefill of {n} tokens after {past_len} exceeds capacity {self.capacity}")
        mask = np.ones((1, past_len + n), np.int64)
        logits = np.empty((1, n, self.vocab_size), np.float32)
        io = self.session.io_binding()
        self._bind_array(io, "input_ids", ids)
        self._bind_array(io, "attention_mask", mask)
        if self.has_position_ids:
            self._bind_array(io, "position_ids", np.arange(past_len, past_len + n, dtype=np.int64).reshape(1, -1))
        self._bind_kv(io, slot, 1)
        io.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self._run_binding(io)
        return logits[0, -1]

    def decode(self, start: int, token_ids: np.ndarray, past_lens: np.ndarray) -> np.ndarray:
        batch = len(token_ids)
        lens = np.asarray(past_lens, dtype=np.int64)
        total = int(lens.max()) + 1
        if total > self.capacity or start + batch > self.max_slots:
            raise InvalidArgument(f"decode over slots {start}..{start + batch} to length {total} exceeds the pool")
        session, io = self._decode_binding(start, batch)
        self._ids[:batch, 0] = token_ids
        if self.has_position_ids:
            self._positions[:batch, 0] = lens
        # right-padded to the capacity: row b has len_b + 1 ones  [B, capacity] (bound once, written in place)
        np.less_equal(self._columns[:, :self.capacity], lens[:, None], out=self._decode_mask(batch),
                      casting="unsafe")
        self._run_binding(io, session)
        return self._logits[:batch, 0]

    def _run_binding(self, io: ort.IOBinding, session: ort.InferenceSession | None = None) -> None:
        try:
            (session or self.session).run_with_iobinding(io)
        except Exception as exc:
            raise InternalError(f"ONNX Runtime run failed: {exc}") from exc

    def tune_threads(self, *, past_len: int = 32, repeats: int = 5) -> dict:
        """Thread count per batch size, measured on decode steps (slots from 0, which must be free). Auto
        threads: each candidate's one-row step against the main session's; the fastest is kept if it beats the
        main session by TUNE_MARGIN, else none. Auto range: then batch 2, 4, ... on both sessions; the small one
        runs the batches up to the last size where it was TUNE_MARGIN faster at every size so far.
        Returns {"threads": {candidate: s, "main": s}, "batches": {batch: (small s, main s)}}, best of `repeats`."""
        self.tune_pending = False
        ids = np.ones(self.max_slots, np.int64)
        lens = np.full(self.max_slots, min(past_len, self.capacity - 2), np.int64)
        report: dict = {"threads": {}, "batches": {}}
        if self._candidates:
            kept = self.small_session, self.small_batch_threads
            self._set_small(0, 0)
            main = report["threads"]["main"] = self._best_decode_time(ids[:1], lens[:1], repeats)
            best = main * (1.0 - TUNE_MARGIN)   # a second session (weights twice) must clearly pay
            for threads in self._candidates:
                self._set_small(threads, 1)
                report["threads"][threads] = took = self._best_decode_time(ids[:1], lens[:1], repeats)
                if took < best:
                    best, kept = took, (self.small_session, threads)
            self._set_small(kept[1], 1, kept[0])
            if self.small_session is None:
                return report
        if self._options.small_batch_max != AUTO:
            self._set_small(self.small_batch_threads, self._options.small_batch_max, self.small_session)
            return report
        longest, batch = 0, 1
        while True:
            self.small_batch_max = batch
            small = self._best_decode_time(ids[:batch], lens[:batch], repeats)
            self.small_batch_max = 0
            large = self._best_decode_time(ids[:batch], lens[:batch], repeats)
            report["batches"][batch] = (small, large)
            faster = small < large * (1.0 - TUNE_MARGIN)
            if not faster or batch == self.max_slots:
                longest = batch if faster else longest
                break
            longest, batch = batch, min(2 * batch, self.max_slots)
        if longest == 0:
            self._set_small(0, 0)   # never faster: free its weights and threads
        else:
            self._set_small(self.small_batch_threads, longest, self.small_session)
        return report

    def _best_decode_time(self, ids: np.ndarray, lens: np.ndarray, repeats: int) -> float:
        self.decode(0, ids, lens)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.decode(0, ids, lens)
            best = min(best, time.perf_counter() - t0)
        return best

    def move(self, src: int, dst: int, length: int) -> None:
        if src != dst:
            for pool in self.pools:
                pool[dst, :, :length] = pool[src, :, :length]

    def swap(self, a: int, len_a: int, b: int, len_b: int) -> None:
        if a == b:
            return
        for pool in self.pools:
            tmp = pool[a, :, :len_a].copy()
            pool[a, :, :len_b] = pool[b, :, :len_b]
            pool[b, :, :len_a] = tmp

    def read_kv(self, slot: int, start: int, end: int) -> list[np.ndarray]:
        return [pool[slot, :, start:end].copy() for pool in self.pools]

    def write_kv(self, slot: int, start: int, blocks: list[np.ndarray]) -> None:
        for pool, block in zip(self.pools, blocks):
            pool[slot, :, start:start + block.shape[1]] = block


class GrowingDecoder(_OrtDecoderBase):
    """Optimum-style graphs (past in, concatenated present out): per-slot past arrays, one run per row."""

    def __init__(self, package: ModelPackage, options: DecoderOptions) -> None:
        super().__init__(package, options)
        self._empty = np.zeros((1, self.kv_heads, 0, self.head_dim), self.dtype)
        self.past: list[list[np.ndarray]] = [[self._empty] * len(self.past_names) for _ in range(self.max_slots)]

    def _forward(self, slot: int, ids: np.ndarray, past_len: int) -> np.ndarray:
        past = [p[:, :, :past_len] for p in self.past[slot]]
        n = ids.shape[1]
        feeds = {"input_ids": ids, "attention_mask": np.ones((1, past_len + n), np.int64)}
        if self.has_position_ids:
            feeds["position_ids"] = np.arange(past_len, past_len + n, dtype=np.int64).reshape(1, -1)
        feeds.update(zip(self.past_names, past))
        out = self._run(feeds, ["logits", *self.present_names])
        self.past[slot] = out[1:]
        return out[0][0, -1]

    def prefill(self, slot: int, token_ids: np.ndarray, past_len: int) -> np.ndarray:
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
        if past_len + ids.shape[1] > self.capacity:
            raise InvalidArgument(f"prefill after {past_len} exceeds capacity {self.capacity}")
        return self._forward(slot, ids, past_len)

    def decode(self, start: int, token_ids: np.ndarray, past_lens: np.ndarray) -> np.ndarray:
        rows = [self._forward(start + b, np.array([[int(t)]], np.int64), int(n))
                for b, (t, n) in enumerate(zip(token_ids, past_lens))]
        return np.stack(rows)

    def move(self, src: int, dst: int, length: int) -> None:
        if src != dst:
            self.past[dst] = [p[:, :, :length] for p in self.past[src]]
            self.past[src] = [self._empty] * len(self.past_names)

    def swap(self, a: int, len_a: int, b: int, len_b: int) -> None:
        self.past[a], self.past[b] = self.past[b], self.past[a]

    def read_kv(self, slot: int, start: int, end: int) -> list[np.ndarray]:
        return [p[0, :, start:end].copy() for p in self.past[slot]]

    def write_kv(self, slot: int, start: int, blocks: list[np.ndarray]) -> None:
        merged = []
        for p, block in zip(self.past[slot], blocks):
            head = p[:, :, :start]
            if head.shape[2] != start:
                raise InternalError(f"write_kv at {start} but slot {slot} holds {head.shape[2]} positions")
            merged.append(np.concatenate([head, block[None]], axis=2))
        self.past[slot] = merged


_BACKENDS = {"shared-buffer": SharedBufferDecoder, "growing": GrowingDecoder}


def open_decoder(package: ModelPackage, options: DecoderOptions = DecoderOptions()) -> DecoderModel:
    """The decoder for a package's KV layout."""
    layout = package.kv_cache.layout if package.kv_cache else None
    backend = _BACKENDS.get(layout)
    if backend is None:
        raise ModelPackageError(f"{package.path}: kv_cache.layout {layout!r} cannot be served "
                                f"(supported: {sorted(_BACKENDS)})")
    return backend(package, options)
