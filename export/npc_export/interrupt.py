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
import sys
import threading

from .errors import ExportInterrupted

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))

# Signals that arrived during the current export (main thread). The handler's exception can be swallowed:
# raised while a finalizer (`__del__`) runs, Python prints "Exception ignored in ..." and goes on (seen in CI:
# inside regex's Group.__del__), so the export would finish and exit 0. The commit checks this list first.
_fired: list[int] = []


def check_interrupted() -> None:
    """Raises ExportInterrupted if a signal arrived during this export, even one whose exception was
    swallowed; `PackageWriter.commit` calls it before the package takes its place."""
    if _fired:
        raise ExportInterrupted(_fired[0])


@contextlib.contextmanager
def interruptible(signals=SIGNALS):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _fired.clear()

    def handler(signum, frame):
        if _fired:  # the first signal's cleanup is running: let it finish
            return
        _fired.append(signum)
        raise ExportInterrupted(signum)

    previous = {}
    unraisable = sys.unraisablehook

    def quiet_interrupt(info) -> None:   # the swallowed interrupt is recorded in _fired: no traceback printed
        if not isinstance(info.exc_value, ExportInterrupted):
            unraisable(info)

    sys.unraisablehook = quiet_interrupt
    try:
        for sig in signals:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        yield
    finally:
        _fired.clear()   # the next export (or a commit outside one) starts clean
        sys.unraisablehook = unraisable
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
