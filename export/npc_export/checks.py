"""`validate_package(DIR)`: check a model package on disk against docs/model-package.md and its
profile: manifest fields, sha256 of every file, graph I/O names vs the manifest, and for the
`portable` profile the ops it may use (naming the offending nodes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from npc_runtime.errors import ModelPackageError

from .package import MANIFEST, graph_io, read_manifest, sha256_of

REQUIRED_KEYS = ("format_version", "kind", "name", "precision", "target", "opset", "inputs", "outputs", "files")
KIND_FILES = {"causal-lm": ("model.onnx", "tokenizer.json"), "policy": ("model.onnx", "policy.json")}
TARGET_FILES = {("ort", "causal-lm"): ("genai_config.json",), ("portable", "causal-lm"): ("model.fixed.onnx",)}
PORTABLE_OPSET = 15
PORTABLE_PRECISIONS = ("fp32", "fp16")
# ops the portable profile forbids (Sentis / NNE): control flow and quantized ops
FORBIDDEN_OPS = {"If", "Loop", "Scan", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                 "ConvInteger"}
FORBIDDEN_PREFIXES = ("QLinear",)
PORTABLE_WEIGHT_TYPES = {1, 10, 6, 7, 9}  # float, float16, int32, int64, bool

_PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_PRESENT = re.compile(r"^present\.(\d+)\.(key|value)$")


@dataclass
class ValidationReport:
    path: Path
    ok: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked_files: list[str] = field(default_factory=list)
    manifest: dict | None = None

    def error(self, message: str) -> None:
        self.ok = False
        self.errors.append(message)

    def as_dict(self) -> dict:
        return {"path": str(self.path), "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "checked_files": self.checked_files}


def _portable_violations(model_path: Path) -> list[str]:
    """One message per offending node / initializer of a portable graph."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != PORTABLE_OPSET:
        problems.append(f"{model_path.name}: ai.onnx opset {opset}, the portable profile needs {PORTABLE_OPSET}")
    extra_domains = [o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    if extra_domains:
        problems.append(f"{model_path.name}: imports non-default domains {extra_domains}")

    def visit(graph, where: str):
        for node in graph.node:
            label = f"{model_path.name}: node {node.name or '(unnamed)'!r} ({node.domain + '.' if node.domain else ''}{node.op_type}){where}"
            if node.domain not in ("", "ai.onnx"):
                problems.append(f"{label}: domain {node.domain!r} is not ai.onnx")
            elif node.op_type in FORBIDDEN_OPS or node.op_type.startswith(FORBIDDEN_PREFIXES):
                problems.append(f"{label}: op {node.op_type} is forbidden in the portable profile")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g, f" in subgraph of {node.name!r}")
        for init in graph.initializer:
            if init.data_type not in PORTABLE_WEIGHT_TYPES:
                problems.append(f"{model_path.name}: initializer {init.name!r} has type "
                                f"{onnx.TensorProto.DataType.Name(init.data_type)} (portable: fp32/fp16 weights only)")

    visit(model.graph, "")
    return problems


def _check_io(report: ValidationReport, manifest: dict, pkg: Path) -> None:
    model = pkg / "model.onnx"
    if not model.is_file():
        return
    try:
        inputs, outputs, opset = graph_io(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        report.error(f"model.onnx cannot be parsed as ONNX: {exc}")
        return
    names = lambda items: [i.get("name") for i in items]  # noqa: E731
    if names(inputs) != names(manifest.get("inputs", [])):
        report.error(f"model.onnx inputs {names(inputs)} differ from manifest inputs {names(manifest.get('inputs', []))}")
    if names(outputs) != names(manifest.get("outputs", [])):
        report.error(f"model.onnx outputs {names(outputs)} differ from manifest outputs {names(manifest.get('outputs', []))}")
    if opset != manifest.get("opset"):
        report.error(f"model.onnx has ai.onnx opset {opset}, manifest says {manifest.get('opset')}")
    if manifest.get("kind") == "causal-lm":
        in_names, out_names = names(inputs), names(outputs)
        for required in ("input_ids", "attention_mask"):
            if required not in in_names:
                report.error(f"model.onnx lacks decoder input {required!r}")
        if "logits" not in out_names:
            report.error("model.onnx lacks decoder output 'logits'")
        layers = (manifest.get("architecture") or {}).get("num_layers")
        past = sorted({int(m.group(1)) for n in in_names if (m := _PAST.match(n))})
        present = sorted({int(m.group(1)) for n in out_names if (m := _PRESENT.match(n))})
        if layers is not None and (past != list(range(layers)) or present != list(range(layers))):
            report.error(f"model.onnx KV names do not cover layers 0..{layers - 1} "
                         f"(past layers {past}, present layers {present})")
    elif manifest.get("kind") == "policy":
        if names(inputs) != ["observations"] or names(outputs) != ["action_logits", "confidence"]:
            report.error("policy graph I/O must be observations -> action_logits, confidence")


def _check_genai_config(report: ValidationReport, manifest: dict, pkg: Path) -> None:
    """genai_config.json must point at model.onnx and agree with the manifest's architecture."""
    import json

    path = pkg / "genai_config.json"
    if not path.is_file():
        return
    try:
        decoder = json.loads(path.read_text(encoding="utf-8"))["model"]["decoder"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.error(f"genai_config.json is not a valid onnxruntime-genai config ({exc})")
        return
    if decoder.get("filename") != "model.onnx":
        report.error(f"genai_config.json points at {decoder.get('filename')!r}, not model.onnx")
    arch = manifest.get("architecture") or {}
    for ours, theirs in (("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
                         ("num_kv_heads", "num_key_value_heads"), ("head_dim", "head_size")):
        if ours in arch and decoder.get(theirs) not in (None, arch[ours]):
            report.error(f"genai_config.json {theirs}={decoder.get(theirs)} but manifest architecture.{ours}={arch[ours]}")


def validate_package(path: str | Path) -> ValidationReport:
    """Check a package directory; never raises for a bad package (see `report.ok` / `report.errors`)."""
    pkg = Path(path)
    report = ValidationReport(path=pkg)
    if not pkg.is_dir():
        report.error(f"{pkg} is not a directory")
        return report
    try:
        manifest = read_manifest(pkg)
    except ModelPackageError as exc:  # no/unreadable manifest.json: the message says so
        report.error(str(exc))
        return report
    report.manifest = manifest
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        report.error(f"{MANIFEST} lacks {', '.join(missing)}")
        return report
    if manifest["format_version"] != 1:
        report.error(f"unsupported format_version {manifest['format_version']} (this exporter reads 1)")
    kind, target = manifest["kind"], manifest["target"]
    if kind not in KIND_FILES:
        report.error(f"unknown kind {kind!r} (causal-lm | policy)")
        return report

    # every file listed exists and matches its hash; required files are listed
    files: dict = manifest["files"] or {}
    for rel, digest in files.items():
        file = pkg / rel
        report.checked_files.append(rel)
        if not file.is_file():
            report.error(f"{rel} is listed in the manifest but missing")
        elif sha256_of(file) != digest:
            report.error(f"{rel} does not match its sha256 in the manifest (modified or corrupt)")
    for required in KIND_FILES[kind] + TARGET_FILES.get((target, kind), ()):
        if required not in files:
            report.error(f"{required} is required for a {target} {kind} package but not in the manifest")
    for extra in sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()):
        if extra != MANIFEST and extra not in files:
            report.warnings.append(f"{extra} is not listed in the manifest (ignored by loaders)")

    _check_io(report, manifest, pkg)

    if target == "portable":
        if manifest["precision"] not in PORTABLE_PRECISIONS:
            report.error(f"portable packages hold fp32/fp16 weights, this one is {manifest['precision']}")
        for graph in sorted(pkg.glob("*.onnx")):
            for problem in _portable_violations(graph):
                report.error(problem)
    elif target == "ort":
        if kind == "causal-lm":
            _check_genai_config(report, manifest, pkg)
    else:
        report.error(f"unknown target {target!r} (ort | portable)")
    validation = manifest.get("validation")
    if isinstance(validation, dict) and validation.get("passed") is False:
        report.warnings.append("the export's self-check failed and was overridden: "
                               + "; ".join(validation.get("failures", [])))
    return report
