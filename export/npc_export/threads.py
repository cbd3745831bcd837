"""Thread settings for everything the exporter computes with: ONNX Runtime sessions and PyTorch.

Library defaults take every core and keep idle workers spinning (ONNX Runtime's intra-op pool) or waiting
at barriers (PyTorch's OpenMP pool). On a machine where something else is busy, a worker that loses its
core stalls every operator of a small model until it is scheduled again: measured on 2 cores with one
busy process beside it, the built-in int4 export's self-check went from 2.8 s to 13 s (docs/exporter.md).
The exporter's graphs are small and its runs short, so it uses a bounded pool that does not spin.
"""

from __future__ import annotations

import contextlib
import os

from .errors import InvalidOptions


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Half the cores, at most 4: leaves room for a neighbour (one busy process on 2 cores leaves 1), and the
# exporter's small models gain little past 4 threads. `export_model(..., threads=N)` / `--threads N`.
MAX_DEFAULT_THREADS = 4
DEFAULT_THREADS = max(1, min(MAX_DEFAULT_THREADS, available_cores() // 2))


def check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidOptions(f"threads must be a positive whole number, got {threads!r}")
    return threads


def ort_session_options(threads: int = DEFAULT_THREADS):
    """onnxruntime.SessionOptions: `threads` intra-op workers that sleep when idle, one inter-op thread,
    warnings and up only, telemetry off (the exporter works offline)."""
    from npc_runtime._ort import import_onnxruntime

    ort = import_onnxruntime()  # telemetry off: environment + library call (docs/install.md, "Offline")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = check_threads(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


@contextlib.contextmanager
def torch_threads(threads: int = DEFAULT_THREADS):
    """PyTorch's intra-op pool bounded to `threads` for the block, the caller's setting restored after.
    (Its OpenMP wait policy is fixed when the pool starts, so the count is the lever left.)"""
    try:
        import torch
    except ImportError:  # a policy-only or validate-only path without torch: nothing to bound
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(check_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
