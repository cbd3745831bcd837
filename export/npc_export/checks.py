"""`validate_package(DIR)`: `npcrt validate`'s check of a model package on disk.

The contract itself (manifest, path confinement, sha256 of every file, external data listed, graph I/O
names and opset, the portable profile's ops) is `npc_package.check_package`, the same function the
runtime's loaders call, so validate and serve accept exactly the same packages. Added here: the
onnxruntime-genai config's agreement with the manifest, and warnings (unlisted files, an overridden
self-check)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from npc_package import PackageError, check_package
from npc_package.contract import PORTABLE_FORBIDDEN_OPS as FORBIDDEN_OPS  # noqa: F401 - re-exported
from npc_package.contract import PORTABLE_OPSET, PORTABLE_PRECISIONS  # noqa: F401 - re-exported


@dataclass
class ValidationReport:
    path: Path
    ok: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked_files: list[str] = field(default_factory=list)
    manifest: dict | None = None
    # the PackageError rule of the first error ("json", "missing", "hash"...; docs/package.md), None when ok
    rule: str | None = None
    manifest_problem: bool = False   # the manifest itself is malformed (npcrt validate exits 2)

    def error(self, message: str, *, rule: str | None = None, manifest_problem: bool = False) -> None:
        if self.ok:
            self.rule, self.manifest_problem = rule, manifest_problem
        self.ok = False
        self.errors.append(message)

    def as_dict(self) -> dict:
        return {"path": str(self.path), "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "checked_files": self.checked_files, "rule": self.rule}


def _check_genai_config(report: ValidationReport, manifest: dict, config_path: Path) -> None:
    """genai_config.json must point at model.onnx and agree with the manifest's architecture."""
    try:
        decoder = json.loads(config_path.read_text(encoding="utf-8"))["model"]["decoder"]
        if not isinstance(decoder, dict):
            raise TypeError("model.decoder is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.error(f"genai_config.json is not a valid onnxruntime-genai config ({exc})", rule="value")
        return
    if decoder.get("filename") != "model.onnx":
        report.error(f"genai_config.json points at {decoder.get('filename')!r}, not model.onnx", rule="value")
    arch = manifest.get("architecture") or {}
    for ours, theirs in (("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
                         ("num_kv_heads", "num_key_value_heads"), ("head_dim", "head_size")):
        if ours in arch and decoder.get(theirs) not in (None, arch[ours]):
            report.error(f"genai_config.json {theirs}={decoder.get(theirs)} but manifest architecture.{ours}={arch[ours]}",
                         rule="value")


def validate_package(path: str | Path) -> ValidationReport:
    """Check a package directory; never raises for a bad package (see `report.ok` / `report.errors`)."""
    pkg = Path(path)
    report = ValidationReport(path=pkg)
    try:
        checked = check_package(pkg)
    except PackageError as exc:
        report.error(str(exc), rule=exc.rule, manifest_problem=exc.is_manifest_problem)
        return report
    manifest = checked.manifest
    report.manifest = manifest.raw
    report.checked_files = list(checked.hashed)
    report.warnings.extend(checked.warnings)
    if manifest.target == "ort" and manifest.kind == "causal-lm":
        _check_genai_config(report, manifest.raw, checked.path("genai_config.json"))
    validation = manifest.validation
    if isinstance(validation, dict) and validation.get("passed") is False:
        failures = validation.get("failures")
        report.warnings.append("the export's self-check failed and was overridden: "
                               + "; ".join(map(str, failures if isinstance(failures, list) else [])))
    return report
