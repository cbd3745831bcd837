"""npc-runtime: the server side of NPC brains.

Layers, bottom up (each knows nothing of the ones above it):
  decode/   model packages, ONNX Runtime decoder with a KV pool, tokenizer, sampling, constraints
  sessions/ session state and the scheduler (one step = one forward pass over a batch)
  agent/    the NPC brain: FSM, memory, planner, escalation to cloud LLMs
  serving/  gRPC + HTTP translation only
"""

__version__ = "0.1.0"

# First thing: ORT_DISABLE_TELEMETRY=1 before anything in the process imports onnxruntime (see _ort.py).
from npc_runtime import _ort  # noqa: E402,F401
