import numpy as np
import pytest
import torch
from torch import nn

from npc_export import ExportError, validate_package
from npc_export.policy import export_policy
from npc_export.runner import make_session


class TinyPolicy(nn.Module):
    def __init__(self, features=6, actions=4):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, actions))

    def forward(self, x):
        logits = self.net(x)
        return logits, torch.softmax(logits, -1).max(-1).values


META = {"feature_names": list("abcdef"), "action_names": ["idle", "flee", "attack", "talk"]}


@pytest.mark.parametrize("target", ["ort", "portable"])
def test_policy_package(tmp_path, target):
    module = TinyPolicy()
    result = export_policy(tmp_path / "pkg", target=target, module=module, meta=META, progress=False)
    m = result.manifest
    assert m["kind"] == "policy" and m["policy"] == {"num_features": 6, "num_actions": 4}
    assert [i["name"] for i in m["inputs"]] == ["observations"]
    assert [o["name"] for o in m["outputs"]] == ["action_logits", "confidence"]
    assert m["validation"]["passed"] and m["validation"]["max_abs_diff"] < 1e-4
    assert "policy.json" in m["files"]
    assert validate_package(result.out_dir).ok
    obs = np.ones((3, 6), np.float32)
    logits, conf = make_session(result.out_dir / "model.onnx").run(None, {"observations": obs})
    assert logits.shape == (3, 4) and conf.shape == (3,)


def test_policy_refuses_int4(tmp_path):
    with pytest.raises(ExportError, match="fp32 or fp16"):
        export_policy(tmp_path / "pkg", precision="int4", module=TinyPolicy(), meta=META, progress=False)
