"""Policy models (observation features -> action logits + confidence) as model packages.

The graph: `observations` float32 [batch, F] -> `action_logits` float32 [batch, A], `confidence`
float32 [batch] (max softmax probability). Plain ai.onnx ops at opset 15, so one graph serves both
profiles; `policy.json` (feature names, action names, normalisation) is copied into the package.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from .api import ExportResult
from .errors import ConversionError, InvalidOptions, SourceError, ValidationFailed
from .package import DEFAULT_FILE_MODE, PackageWriter, graph_io
from .progress import Stages
from .threads import DEFAULT_THREADS

POLICY_PRECISIONS = ("fp32", "fp16")
OPSET = {"ort": 17, "portable": 15}
MAX_ABS_DIFF = {"fp32": 1e-4, "fp16": 1e-2}


def _load_builtin_policy():
    try:
        from . import builtin

        return builtin.load_policy()
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"the built-in policy model is not available in this checkout ({exc})") from exc
    except FileNotFoundError as exc:
        raise SourceError(f"the built-in policy model's weights are missing ({exc}); train them first") from exc


def _num_features(meta: dict) -> int:
    for key in ("num_features", "features", "feature_names"):
        value = meta.get(key)
        if isinstance(value, int):
            return value
        if isinstance(value, list):
            return len(value)
    raise SourceError("policy.json must give the features (feature_names list or num_features)")


POLICY_STAGES = [("export", "export policy graph (torch.onnx)"), ("validate", "self-check vs PyTorch"),
                 ("write", "write package")]


def export_policy(out_dir, *, precision="fp32", target="ort", validate=True, force=False, progress=True,
                  source_name="builtin:npc-policy", module=None, meta=None, name="npc-policy",
                  threads: int = DEFAULT_THREADS, file_mode: int = DEFAULT_FILE_MODE) -> ExportResult:
    """Export a policy module (default: the built-in one) to a package. (Signal handling and the PyTorch
    thread bound are export_model's; call that for `builtin:npc-policy`.)"""
    if precision not in POLICY_PRECISIONS:
        raise InvalidOptions(f"policy models export as fp32 or fp16 (they are tiny; {precision} buys nothing)")
    if module is None:
        module, meta = _load_builtin_policy()
    meta = dict(meta or {})
    features = _num_features(meta)
    module = module.eval()
    stages = [s for s in POLICY_STAGES if validate or s[0] != "validate"]
    steps = Stages(stages, enabled=progress, desc=f"{name} {target}/{precision}")
    try:
        with PackageWriter(Path(out_dir), force=force, file_mode=file_mode) as writer:
            for note in writer.notes:
                steps.note(note)
            stage = writer.dir
            steps.run("export", _export_graph, module, features, stage / "model.onnx", OPSET[target], precision)
            (stage / "policy.json").write_text(json.dumps(meta, indent=2))
            validation = steps.run("validate", _check, module, features, stage / "model.onnx", precision, threads) if validate else None
            if validation is not None and not validation["passed"]:
                raise ValidationFailed(f"policy export differs from PyTorch: max |diff| "
                                       f"{validation['max_abs_diff']:.3g} > {validation['thresholds']['max_abs_diff']:g}")
            inputs, outputs, opset = graph_io(stage / "model.onnx")
            num_actions = int(outputs[0]["shape"][1]) if isinstance(outputs[0]["shape"][1], int) else None
            manifest = {
                "format_version": 1, "kind": "policy", "name": name, "source": source_name, "architecture": None,
                "precision": precision, "quantization": None, "target": target, "opset": opset, "kv_cache": None,
                "inputs": inputs, "outputs": outputs, "special_tokens": None, "chat_template": None, "files": {},
                "validation": validation, "policy": {"num_features": features, "num_actions": num_actions},
            }
            manifest = steps.run("write", writer.commit, manifest)
    finally:
        steps.close()
    return ExportResult(out_dir=writer.out_dir, manifest=manifest, timings=steps.timings, notes=steps.notes)


def _export_graph(module, features: int, path: Path, opset: int, precision: str) -> None:
    import torch

    dummy = torch.zeros(2, features)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(path), input_names=["observations"],
                              output_names=["action_logits", "confidence"],
                              dynamic_axes={"observations": {0: "batch"}, "action_logits": {0: "batch"},
                                            "confidence": {0: "batch"}},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"torch.onnx.export failed for the policy: {exc}") from exc
    if precision == "fp16":
        from .ort_profile import convert_fp16

        convert_fp16(path, keep_io_types=True, single_file=True)


def _check(module, features: int, path: Path, precision: str, threads: int) -> dict:
    import torch

    from .runner import make_session

    obs = np.random.default_rng(0).standard_normal((64, features)).astype(np.float32)
    with torch.no_grad():
        ref_logits, ref_conf = (t.numpy() for t in module(torch.from_numpy(obs)))
    logits, conf = make_session(path, threads=threads).run(["action_logits", "confidence"], {"observations": obs})
    diff = float(max(np.abs(logits - ref_logits).max(), np.abs(conf - ref_conf).max()))
    agreement = float((logits.argmax(-1) == ref_logits.argmax(-1)).mean())
    limit = MAX_ABS_DIFF[precision]
    return {"precision": precision, "max_abs_diff": diff, "action_agreement": agreement,
            "thresholds": {"max_abs_diff": limit}, "passed": diff <= limit, "failures": [], "overridden": False}
