"""A tiny policy package (model.onnx + policy.json) built with onnx.helper, for tests and the bench.

Linear: action_logits = observations @ W + b, confidence = max softmax. W maps a few named features to
actions so tests can check feature-by-name wiring (hostility -> warn, stealing -> call_guards...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from npc_runtime.agent.actions import ACTIONS

FEATURES = ("player_distance", "player_hostility", "player_armed", "player_is_stealing", "gold_offered",
            "npc_health", "npc_is_guard", "player_talking")
# feature -> action it pushes up, and by how much
PUSH = {"player_hostility": ("warn", 6.0), "player_is_stealing": ("call_guards", 8.0), "gold_offered": ("trade", 0.5),
        "player_talking": ("talk", 3.0), "player_armed": ("refuse", 2.0)}


def build_policy_package(out_dir: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out_dir.mkdir(parents=True, exist_ok=True)
    w = np.zeros((len(FEATURES), len(ACTIONS)), dtype=np.float32)
    for feature, (action, weight) in PUSH.items():
        w[FEATURES.index(feature), ACTIONS.index(action)] = weight
    b = np.zeros(len(ACTIONS), dtype=np.float32)
    b[ACTIONS.index("idle")] = 1.0
    b[ACTIONS.index("patrol")] = 1.2
    nodes = [
        helper.make_node("MatMul", ["observations", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["action_logits"]),
        helper.make_node("Softmax", ["action_logits"], ["probs"], axis=-1),
        helper.make_node("ReduceMax", ["probs"], ["confidence"], axes=[-1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "policy",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["batch", len(FEATURES)])],
        [helper.make_tensor_value_info("action_logits", TensorProto.FLOAT, ["batch", len(ACTIONS)]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["batch"])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out_dir / "model.onnx"))
    spec = {"name": "tiny-policy", "features": [{"index": i, "name": f} for i, f in enumerate(FEATURES)],
            "actions": list(ACTIONS)}
    (out_dir / "policy.json").write_text(json.dumps(spec))
    from npc_package import sha256_of

    # a complete manifest: policy packages are checked like every package (docs/package.md)
    (out_dir / "manifest.json").write_text(json.dumps({
        "format_version": 1, "kind": "policy", "name": "tiny-policy", "precision": "fp32", "target": "ort", "opset": 17,
        "inputs": [{"name": "observations"}], "outputs": [{"name": "action_logits"}, {"name": "confidence"}],
        "files": {name: sha256_of(out_dir / name) for name in ("model.onnx", "policy.json")}}))
    return out_dir
