"""npc-export: turns built-in and Hugging Face decoder models into ONNX model packages
(see docs/model-package.md)."""

__version__ = "0.1.0"
