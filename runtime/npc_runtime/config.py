"""Engine configuration: keyword-only dataclasses with named defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument

DEFAULT_MAX_SESSIONS = 64
DEFAULT_MAX_CONTEXT = 512
DEFAULT_IDLE_TIMEOUT_S = 600.0
DEFAULT_PREFIX_CACHE_BYTES = 64 << 20
DEFAULT_PREFILL_CHUNK = 256
DEFAULT_PREFIX_BLOCK = 32
AUTO = -1
SPIN_POLICIES = ("step", "always", "never")   # EngineConfig.intra_op_spinning (decode/onnx_model.py)


@dataclass(frozen=True, kw_only=True)
class SessionLimits:
    max_new_tokens: int = 256            # per turn; the turn ends with finish_reason "length"
    max_context: int | None = None       # tokens; None: the engine's max_context
    idle_timeout_s: float | None = None  # None: the engine's idle_timeout_s

    def validate(self) -> "SessionLimits":
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InvalidArgument("limits: max_new_tokens must be an integer >= 1")
        if self.max_context is not None and (not isinstance(self.max_context, int) or self.max_context < 2):
            raise InvalidArgument("limits: max_context must be an integer >= 2")
        if self.idle_timeout_s is not None and not self.idle_timeout_s > 0:
            raise InvalidArgument("limits: idle_timeout_s must be > 0")
        return self


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    max_sessions: int = DEFAULT_MAX_SESSIONS       # per model: KV pool slots
    max_context: int = DEFAULT_MAX_CONTEXT         # tokens per session (capped by the package's capacity)
    sliding_window: bool = False                   # context full: keep the last max_context/2 tokens (re-prefilled)
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S # sessions idle longer are evicted by evict_idle()
    intra_op_threads: int = 0                      # ONNX Runtime intra-op threads; 0: all cores
    intra_op_spinning: str | bool = "step"         # "step": ORT's threads spin while a step runs and sleep once it
                                                   # returns (the reply, streams and I/O get the cores between steps);
                                                   # "always": they keep spinning between steps (ORT's default);
                                                   # "never": they sleep whenever idle (slowest steps, steadiest on a
                                                   # shared CPU). true / false are read as "always" / "never".
    small_batch_threads: int = AUTO                # threads of a second ORT session for small decode batches
                                                   # (thread count per batch size); -1: warm-up picks the fastest of
                                                   # 1, 1/4 and 1/2 of the main pool (none if the main pool is
                                                   # faster, or has <= 2 threads, or warmup is off); 0: off
    small_batch_max: int = AUTO                    # decode batches up to this run on it; -1: measured at warm-up
    flush_denormals: bool = False                  # True: ORT FTZ/DAZ, fp32 ~15 % faster, but it also sets the FP
                                                   # mode of the thread creating the engine (process-visible)
    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES   # 0 disables the prefix cache
    prefix_block_tokens: int = DEFAULT_PREFIX_BLOCK        # prefix cache granularity
    max_prefill_chunk: int = DEFAULT_PREFILL_CHUNK          # long prompts are prefilled in chunks
    tick_min_progress: bool = False                # True: a tick always runs at least one step, even over budget;
                                                   # False: starved ticks save their budget up for one single-row step
    tick_strict_budget: bool = False               # True: a tick never runs a step predicted past its budget, so a
                                                   # budget below one step never progresses (no starvation guard)
    warmup: bool = True                            # measure step costs at start (seeds the tick cost model)
    verify_hashes: bool = True                     # sha256 of package files at load
    # tiered KV (sessions/parking.py): a session idle this long leaves the KV pool for host memory (restored
    # exactly, without a prefill, on its next request), as does the least recently used idle session when a
    # slot is needed; 0 = off (a full pool refuses new sessions)
    park_after_s: float = 0.0
    park_host_bytes: int = 1 << 30                 # host-memory budget of parked sessions; past it the oldest go to disk
    park_dir: str | None = None                    # disk tier folder; None = no disk tier (the budget is then soft)
    park_disk_after_s: float = 300.0               # parked longer than this in host memory: moved to disk
    default_sampling: SamplingParams = field(default_factory=SamplingParams)
    default_limits: SessionLimits = field(default_factory=SessionLimits)

    @property
    def spin_policy(self) -> str:
        """intra_op_spinning with the boolean spellings resolved: "step", "always" or "never"."""
        if isinstance(self.intra_op_spinning, bool):
            return "always" if self.intra_op_spinning else "never"
        return self.intra_op_spinning

    def validate(self) -> "EngineConfig":
        checks = [
            (self.max_sessions >= 1, "max_sessions must be >= 1"),
            (self.intra_op_spinning in SPIN_POLICIES or isinstance(self.intra_op_spinning, bool),
             f"intra_op_spinning must be one of {', '.join(map(repr, SPIN_POLICIES))}, got {self.intra_op_spinning!r}"),
            (not (self.tick_strict_budget and self.tick_min_progress),
             "tick_strict_budget and tick_min_progress contradict each other: choose one"),
            (self.max_context >= 2, "max_context must be >= 2"),
            (self.idle_timeout_s > 0, "idle_timeout_s must be > 0"),
            (self.intra_op_threads >= 0, "intra_op_threads must be >= 0"),
            (self.small_batch_threads >= AUTO, "small_batch_threads must be >= 0, or -1 (auto)"),
            (self.small_batch_max >= AUTO, "small_batch_max must be >= 0, or -1 (measured at warm-up)"),
            (self.prefix_cache_bytes >= 0, "prefix_cache_bytes must be >= 0"),
            (self.prefix_block_tokens >= 1, "prefix_block_tokens must be >= 1"),
            (self.max_prefill_chunk >= 1, "max_prefill_chunk must be >= 1"),
            (self.park_after_s >= 0 and self.park_disk_after_s >= 0, "park_after_s and park_disk_after_s must be >= 0"),
            (self.park_host_bytes >= 0, "park_host_bytes must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgument(f"engine config: {message}")
        self.default_sampling.validate()
        self.default_limits.validate()
        return self

