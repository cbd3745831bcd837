"""Serving layer: gRPC servicers, the OpenAI-compatible HTTP API, the one error -> status mapping,
the server and `npcrt serve`. Translation only: no decoding logic lives here.
"""
