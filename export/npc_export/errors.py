"""Errors of the exporter. All derive from `ExportError` (itself an `NpcRuntimeError`), so a CLI
prints one line and exits non-zero, and library callers catch one class."""

from __future__ import annotations

from npc_runtime.errors import ModelPackageError, NpcRuntimeError


class ExportError(NpcRuntimeError):
    """Base of every error `npc_export` raises on purpose. The message says what to fix."""


class SourceError(ExportError):
    """The model source is missing, unreadable or corrupt (config.json, weights, tokenizer)."""


class UnsupportedArchitecture(ExportError):
    """The model's architecture is not one the exporter supports."""


class InvalidOptions(ExportError):
    """An impossible combination of options (int4 + portable, unknown precision, bad context length)."""


class OutputError(ExportError):
    """The output directory cannot be written (exists without --force, read-only, no space)."""


class ConversionError(ExportError):
    """ONNX export / quantization failed inside a lower layer (torch.onnx, the genai builder, ORT)."""


class ValidationFailed(ExportError):
    """The exported graph's self-check is past its thresholds (override: allow_validation_failure)."""


class PackageInvalid(ExportError, ModelPackageError):
    """A package on disk does not follow docs/model-package.md (hash mismatch, forbidden op...)."""


class ExportInterrupted(KeyboardInterrupt):
    """SIGTERM / SIGHUP / SIGINT arrived while exporting (see interrupt.py). A KeyboardInterrupt, not an
    ExportError: like Ctrl-C it must pass through the `except Exception` of lower layers so the partial
    package is removed on the way out. `exit_code` is the shell convention, 128 + signal number."""

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
