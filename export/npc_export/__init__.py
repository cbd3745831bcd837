"""npc-export: turns built-in and Hugging Face decoder models into ONNX model packages
(see docs/model-package.md and docs/exporter.md).

    from npc_export import export_model, validate_package
    result = export_model("path/to/hf-dir", "packages/my-model", precision="int4", target="ort")
    report = validate_package(result.out_dir)
"""

__version__ = "0.1.0"

from .errors import ExportError  # noqa: E402


def __getattr__(name):
    # Lazy: `import npc_export` stays cheap (torch / onnx load only when exporting or validating).
    if name in ("export_model", "ExportResult"):
        from . import api

        return getattr(api, name)
    if name in ("validate_package", "ValidationReport"):
        from . import checks

        return getattr(checks, name)
    raise AttributeError(f"module 'npc_export' has no attribute {name!r}")


__all__ = ["ExportError", "ExportResult", "ValidationReport", "export_model", "validate_package", "__version__"]
