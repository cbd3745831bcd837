"""`portable` profile: opset 15 ai.onnx only, growing + fixed-capacity graphs, fp32 / fp16."""

import numpy as np
import onnx
import pytest

from npc_export import ExportError, export_model, validate_package
from npc_export.checks import FORBIDDEN_OPS
from npc_export.runner import FixedCapacityDecoder, GrowingDecoder


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_portable_fp32(tmp_path, tiny_models, fast_validation, family):
    result = export_model(tiny_models(family), tmp_path / "pkg", target="portable", progress=False,
                          validation=fast_validation)
    m, pkg = result.manifest, result.out_dir
    assert m["target"] == "portable" and m["opset"] == 15 and m["kv_cache"]["layout"] == "growing"
    v = m["validation"]
    assert v["fp32_max_abs_diff"] <= 1e-3 and v["fixed_max_abs_diff"] <= 1e-3
    assert "genai_config.json" not in m["files"] and "model.fixed.onnx" in m["files"]
    fixed = m["variants"]["fixed-capacity"]
    capacity = m["architecture"]["context_length"]
    assert fixed["capacity"] == capacity
    shapes = {i["name"]: i["shape"] for i in fixed["inputs"]}
    arch = m["architecture"]
    assert shapes["attention_mask"] == [1, capacity + 1]
    assert shapes["past_key_values.0.key"] == [1, arch["num_kv_heads"], capacity, arch["head_dim"]]
    for name in ("model.onnx", "model.fixed.onnx"):
        model = onnx.load(str(pkg / name))
        assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
        ops = {n.op_type for n in model.graph.node}
        assert not ops & FORBIDDEN_OPS and not any(op.startswith("QLinear") for op in ops)
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert validate_package(pkg).ok


def test_portable_growing_and_fixed_agree(tmp_path, tiny_models, fast_validation):
    result = export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", context_length=32,
                          progress=False, validation=fast_validation)
    pkg, arch = result.out_dir, result.manifest["architecture"]
    ids = [4, 8, 15, 16, 23, 42]
    growing = GrowingDecoder(pkg / "model.onnx", kv_heads=arch["num_kv_heads"], head_dim=arch["head_dim"])
    logits, _ = growing.step(np.array([ids]))
    fixed = FixedCapacityDecoder(pkg / "model.fixed.onnx")
    assert fixed.capacity == 32
    assert np.abs(fixed.run(ids) - logits[0]).max() < 1e-4


def test_portable_fp16(tmp_path, tiny_models, fast_validation):
    result = export_model(tiny_models("gpt2"), tmp_path / "pkg", target="portable", precision="fp16",
                          progress=False, validation=fast_validation)
    m = result.manifest
    assert m["precision"] == "fp16" and m["validation"]["passed"]
    model = onnx.load(str(result.out_dir / "model.onnx"))
    big = [i for i in model.graph.initializer if len(i.dims) == 2]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    assert validate_package(result.out_dir).ok


@pytest.mark.parametrize("precision", ["int4", "int8"])
def test_quantized_portable_is_refused(tmp_path, tiny_models, precision):
    with pytest.raises(ExportError, match="portable"):
        export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", precision=precision, progress=False)
    assert not (tmp_path / "pkg").exists()
