"""ONNX Runtime process settings: the one place this project imports onnxruntime / onnxruntime-genai.

Why: onnxruntime (1.32) starts Microsoft's 1DS telemetry when the module is imported; a few seconds later it
resolves `mobile.events.data.microsoft.com` and would upload events. An NPC runtime must be offline (a game
server, a developer's laptop on a plane), so telemetry is off for every use, by two means:

* the environment: `ORT_DISABLE_TELEMETRY=1`, the switch that works. onnxruntime reads it when its native
  library loads, i.e. at the first `import onnxruntime` in the process (measured: the import alone resolves
  the host ~9 s later; `disable_telemetry_events()` after the import does not stop that lookup).
  onnxruntime-genai reads it when it creates a model (`og.Model`), and its own library call does not stop
  the lookup either. So the variable is set when this module is imported, which `import npc_runtime` does
  first thing; child processes (the genai builder, tests) inherit it.
* the library calls: `onnxruntime.disable_telemetry_events()` and
  `onnxruntime_genai.disable_telemetry_events()`, made on every session path as well, for whatever events
  they do govern. If onnxruntime was imported before npc_runtime without the variable, a warning says to set
  it in the environment (it is too late to fix from inside the process).

Session creation paths call `import_onnxruntime()` / `import_onnxruntime_genai()` instead of importing the
modules themselves. See docs/install.md ("Offline").
"""

from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType

TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def _set_environment() -> None:
    # Forced, not setdefault: a stray ORT_DISABLE_TELEMETRY=0 in a shell must not make the runtime phone home.
    # (onnxruntime_genai imported earlier is fine: it loads onnxruntime, and reads the variable, per model)
    if "onnxruntime" in sys.modules and os.environ.get(TELEMETRY_ENV) != "1":
        warnings.warn(f"onnxruntime was imported before npc_runtime with {TELEMETRY_ENV} unset: its telemetry "
                      f"may already have started; set {TELEMETRY_ENV}=1 in the environment to stay offline",
                      RuntimeWarning, stacklevel=3)
    os.environ[TELEMETRY_ENV] = "1"


_set_environment()


def import_onnxruntime() -> ModuleType:
    """`onnxruntime`, with telemetry disabled (environment already set; library call made here)."""
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def import_onnxruntime_genai() -> ModuleType:
    """`onnxruntime_genai` (the `export` extra), with telemetry disabled like `import_onnxruntime`."""
    import onnxruntime_genai

    onnxruntime_genai.disable_telemetry_events()
    return onnxruntime_genai
