"""Signals during an export become an exception, so the partial package is removed on the way out.

By default SIGTERM and SIGHUP end a Python process without unwinding its stack: `DIR.tmp-<hex>` would stay
behind. While `interruptible()` is active they (and SIGINT) raise `ExportInterrupted` in the main thread;
`PackageWriter.__exit__` then removes the temp folder and the caller exits with 128 + the signal number.
The handlers are installed only for the export and the previous ones restored after. A signal the process
ignores (`nohup` ignores SIGHUP) stays ignored. Outside the main thread, signals cannot be handled in
Python; there the exporter relies on the next export's stale-folder cleanup (package.py).
"""

from __future__ import annotations

import contextlib
import signal
import threading

from .errors import ExportInterrupted

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))


@contextlib.contextmanager
def interruptible(signals=SIGNALS):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if fired:  # the first signal's cleanup is running: let it finish
            return
        fired.append(signum)
        raise ExportInterrupted(signum)

    previous = {}
    try:
        for sig in signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
