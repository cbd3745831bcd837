"""Wire contract of npc-runtime. `v1/` holds the .proto files and the Python code generated from them
(regenerate with `python proto/generate.py`; never edit the *_pb2*.py files by hand)."""
