"""One BLAS thread while the student trains.

The policy network is tiny (16 -> 64 -> 64 -> 12, batches of 256): every matrix product takes microseconds,
and OpenBLAS splitting each one over its threads costs more than the product. On a loaded 2-core machine it
is far worse: each product waits for a scheduler slice for its second thread. Measured on the project's
2-core VM under load: 31 ms per training step with the default threads, 0.8 ms with one (a day's
distillation 48 s -> 1.2 s). `OPENBLAS_NUM_THREADS=1` only works before numpy loads, which a server or the
demo has long done, so the count is set through OpenBLAS's own API for the duration of the training (what
threadpoolctl does, without the dependency) and restored after. Process-wide, as BLAS threads are: a
numpy product elsewhere in the process meanwhile runs on one thread too (the runtime's models run on
ONNX Runtime, not numpy BLAS). Where no OpenBLAS is found (another BLAS, another OS) it does nothing.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# (get, set) symbol pairs: numpy's bundled scipy-openblas (64-bit ints), then a system OpenBLAS
_SYMBOLS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads"))
_lock = threading.Lock()       # nested / concurrent trainings restore the count once, in order
_depth = 0
_saved: int | None = None


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux: /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower() and "/" in line})


def _api():
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)           # already loaded: the same handle numpy uses
        except OSError:
            continue
        for get, set_ in _SYMBOLS:
            if hasattr(lib, get) and hasattr(lib, set_):
                getter, setter = getattr(lib, get), getattr(lib, set_)
                getter.restype = ctypes.c_int
                setter.argtypes = [ctypes.c_int]
                return getter, setter
    return None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _depth, _saved
    import numpy  # noqa: F401 - numpy must have loaded its BLAS for it to be found

    api = _api()
    if api is None:
        yield
        return
    getter, setter = api
    with _lock:
        if _depth == 0:
            _saved = int(getter())
            setter(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                setter(_saved)
