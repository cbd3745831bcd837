"""Decode layer: model packages, the ONNX decoder over a KV pool, tokenizer, sampling, constraints.

Knows nothing of sessions, NPCs or gRPC.
"""
