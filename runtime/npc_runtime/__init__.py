"""npc-runtime: the server side of NPC brains.

Layers, bottom up (each knows nothing of the ones above it):
  decode/   model packages, ONNX Runtime decoder with a KV pool, tokenizer, sampling, constraints
  sessions/ session state and the scheduler (one step = one forward pass over a batch)
  agent/    the NPC brain: FSM, memory, planner, escalation to cloud LLMs
  serving/  gRPC + HTTP translation only
"""

__version__ = "0.1.0"
