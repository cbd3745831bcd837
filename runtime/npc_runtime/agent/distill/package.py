"""Reading a base policy package and writing a distilled one (a normal `kind: policy` model package).

The written package is what `npcrt export` writes for the built-in policy (model.onnx, policy.json,
manifest.json with sha256 of every file and a validation block), plus:
  - manifest `lineage`: the base version and its sha256, the root of the chain and its base held-out
    accuracy (the gate's reference), how many records trained it and their time range, the generation;
  - manifest `distillation` and `training_report.json`: the held-out report of train.py.
Written through the exporter's PackageWriter (temp dir, manifest last, one rename), so a package directory
with a manifest is always complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npc_runtime.agent.distill.mlp import PolicyWeights
from npc_runtime.agent.distill.onnx_io import OPSET, policy_onnx, read_policy_weights
from npc_runtime.errors import InvalidArgument, ModelPackageError

PARITY_LIMIT = 1e-4       # the exporter's fp32 policy threshold (npc_export.policy.MAX_ABS_DIFF)


@dataclass(frozen=True)
class BasePolicy:
    directory: Path
    weights: PolicyWeights
    spec: dict                 # policy.json
    manifest: dict
    sha256: str                # of model.onnx

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.directory.name))

    @property
    def lineage(self) -> dict:
        return dict(self.manifest.get("lineage") or {})


def resolve_base(base: str) -> Path:
    """`builtin:npc-policy` (the shipped package) or a package directory."""
    if base.startswith("builtin:"):
        from npc_runtime.builtin_packages import locate

        name = base.split(":", 1)[1]
        found = locate(name) if name == "npc-policy" else None
        if found is None:
            raise InvalidArgument(f"--base {base}: not a built-in policy this installation has (builtin:npc-policy)")
        return Path(found)
    path = Path(base)
    if not (path / "manifest.json").is_file():
        raise InvalidArgument(f"--base {base}: not a model package directory (no manifest.json)")
    return path


def load_base(base: str) -> BasePolicy:
    directory = resolve_base(base)
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        spec = json.loads((directory / "policy.json").read_text(encoding="utf-8"))
        model = (directory / "model.onnx").read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"--base {base}: cannot read the policy package ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") != "policy" or not isinstance(spec, dict):
        raise ModelPackageError(f"--base {base}: not a policy package (manifest kind {manifest.get('kind')!r})")
    if (directory / "model.onnx.data").exists():
        raise ModelPackageError(f"--base {base}: policies with external weight data are not supported")
    weights = read_policy_weights(model, str(directory / "model.onnx"))
    features = [f["name"] if isinstance(f, dict) else str(f) for f in spec.get("features", [])]
    if len(features) != weights.num_features or len(spec.get("actions", [])) != weights.num_actions:
        raise ModelPackageError(f"--base {base}: policy.json's features/actions do not match the graph's shapes")
    return BasePolicy(directory, weights, spec, manifest, hashlib.sha256(model).hexdigest())


def parity(model_bytes: bytes, w: PolicyWeights, probes: np.ndarray) -> dict:
    """ONNX Runtime running the written graph vs the numpy forward pass: the package's validation block."""
    from npc_runtime._ort import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    logits, conf = session.run(["action_logits", "confidence"], {"observations": probes.astype(np.float32)})
    ref = w.logits(probes)
    ref_conf = np.exp(ref - ref.max(-1, keepdims=True))
    ref_conf = (ref_conf / ref_conf.sum(-1, keepdims=True)).max(-1)
    diff = float(max(np.abs(logits - ref).max(), np.abs(conf - ref_conf).max()))
    return {"precision": "fp32", "max_abs_diff": diff,
            "action_agreement": float((logits.argmax(-1) == ref.argmax(-1)).mean()),
            "thresholds": {"max_abs_diff": PARITY_LIMIT}, "passed": diff <= PARITY_LIMIT, "failures": [],
            "overridden": False, "checked_by": "npcrt distill (ONNX Runtime vs the numpy forward pass)"}


def lineage_for(base: BasePolicy, report: dict, *, version: str) -> dict:
    parent = base.lineage
    root_acc = parent.get("root_heldout_accuracy_clean_rule", report["base"]["base_heldout_accuracy_clean_rule"])
    return {
        "version": version,
        "base_version": base.name, "base_model_sha256": base.sha256,
        "base_source": base.manifest.get("source"),
        "root_version": parent.get("root_version", base.name),
        "root_heldout_accuracy_clean_rule": root_acc,
        "generation": int(parent.get("generation", 0)) + 1,
        "records": report["accepted"], "time_range_unix": report["time_range_unix"],
    }


def write_package(out_dir: Path, student: PolicyWeights, base: BasePolicy, report: dict, *, version: str,
                  probes: np.ndarray, force: bool) -> dict:
    """Write the distilled package; returns its manifest."""
    from npc_export.package import PackageWriter

    model = policy_onnx(student)
    validation = parity(model, student, probes)
    if not validation["passed"]:   # a bug here, never the user's input
        raise ModelPackageError(f"the written policy graph differs from the trained one by "
                                f"{validation['max_abs_diff']:.3g} (> {PARITY_LIMIT:g})")
    lineage = lineage_for(base, report, version=version)
    spec = {k: v for k, v in base.spec.items() if k != "training"}
    spec.update(name=version, lineage=lineage, training={
        "distilled": True, **{k: report["student"][k] for k in ("base_heldout_accuracy",
                                                                "base_heldout_accuracy_clean_rule",
                                                                "agreement_with_teacher")}})
    with PackageWriter(Path(out_dir), force=force) as writer:
        (writer.dir / "model.onnx").write_bytes(model)
        (writer.dir / "policy.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        (writer.dir / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        manifest = {
            "format_version": 1, "kind": "policy", "name": version, "source": f"distill:{base.name}",
            "architecture": None, "precision": "fp32", "quantization": None, "target": "ort", "opset": OPSET,
            "kv_cache": None,
            "inputs": [{"name": "observations", "dtype": "float32", "shape": ["batch", student.num_features]}],
            "outputs": [{"name": "action_logits", "dtype": "float32", "shape": ["batch", student.num_actions]},
                        {"name": "confidence", "dtype": "float32", "shape": ["batch"]}],
            "special_tokens": None, "chat_template": None, "files": {}, "validation": validation,
            "policy": {"num_features": student.num_features, "num_actions": student.num_actions},
            "lineage": lineage,
            "distillation": {k: report[k] for k in ("accepted", "train_escalations", "heldout_escalations",
                                                    "base", "student", "gate")},
        }
        return writer.commit(manifest)
