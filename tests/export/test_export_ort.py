"""`ort` profile: genai builder graphs (llama, qwen2) and our own graph (gpt2); self-check figures;
onnxruntime-genai loads the package unchanged and generates what our ONNX driver generates."""

import json

import numpy as np
import onnx
import pytest

from npc_export import export_model, validate_package
from npc_export.runner import GrowingDecoder


def _greedy_onnx(pkg, manifest, prompt, n):
    arch = manifest["architecture"]
    dec = GrowingDecoder(pkg / "model.onnx", kv_heads=arch["num_kv_heads"], head_dim=arch["head_dim"])
    logits, past = dec.step(np.array([prompt]))
    out = []
    for _ in range(n):
        tok = int(logits[0, -1].argmax())
        out.append(tok)
        logits, past = dec.step(np.array([[tok]]), past)
    return out


def _greedy_genai(pkg, prompt, n):
    import onnxruntime_genai as og

    model = og.Model(str(pkg))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + n, min_length=len(prompt) + n)
    gen = og.Generator(model, params)
    gen.append_tokens(np.array(prompt, dtype=np.int32))
    while not gen.is_done():
        gen.generate_next_token()
    return [int(t) for t in gen.get_sequence(0)][len(prompt):]


@pytest.mark.parametrize("family,precision", [("llama", "fp32"), ("llama", "int4"), ("llama", "int8"),
                                              ("qwen2", "fp32"), ("gpt2", "fp32"), ("gpt2", "int4")])
def test_ort_export_validates_and_runs_in_genai(tmp_path, tiny_models, fast_validation, family, precision):
    result = export_model(tiny_models(family), tmp_path / "pkg", precision=precision, progress=False,
                          validation=fast_validation)
    m = result.manifest
    pkg = result.out_dir
    assert m["kind"] == "causal-lm" and m["target"] == "ort" and m["precision"] == precision
    assert m["architecture"]["family"] == family
    assert m["validation"]["passed"]
    if precision == "fp32":
        assert m["validation"]["fp32_max_abs_diff"] <= 1e-3
        assert m["quantization"] is None
    else:
        q = m["quantization"]
        assert q["method"] == "MatMulNBits" and q["bits"] == (4 if precision == "int4" else 8)
        assert q["block_size"] == 32 and q["accuracy_level"] == 4
        assert 0 <= m["validation"]["greedy_agreement"] <= 1 and m["validation"]["perplexity"] > 0
        ops = {n.op_type for n in onnx.load(str(pkg / "model.onnx"), load_external_data=False).graph.node}
        assert "MatMulNBits" in ops
    assert m["kv_cache"]["layout"] == ("growing" if family == "gpt2" else "shared-buffer")
    names = [i["name"] for i in m["inputs"]]
    assert names[:2] == ["input_ids", "attention_mask"]
    assert "past_key_values.1.value" in names and "present.1.value" in [o["name"] for o in m["outputs"]]
    assert m["special_tokens"] == {"bos": 1, "eos": [2], "pad": 0}
    assert m["chat_template"] and "add_generation_prompt" in m["chat_template"]
    assert set(m["files"]) >= {"model.onnx", "genai_config.json", "tokenizer.json", "tokenizer_config.json"}
    assert validate_package(pkg).ok
    # onnxruntime-genai loads the package unchanged and its greedy tokens equal our driver's
    prompt = [5, 17, 42, 99, 7]
    assert _greedy_genai(pkg, prompt, 12) == _greedy_onnx(pkg, m, prompt, 12)


def test_ort_fp16_llama(tmp_path, tiny_models, fast_validation):
    result = export_model(tiny_models("llama"), tmp_path / "pkg", precision="fp16", progress=False,
                          validation=fast_validation)
    m = result.manifest
    assert m["kv_cache"]["dtype"] == "float16" and m["validation"]["passed"]
    assert m["validation"]["greedy_agreement"] >= 0.9


def test_context_length_override(tmp_path, tiny_models, fast_validation):
    result = export_model(tiny_models("llama"), tmp_path / "pkg", context_length=128, progress=False,
                          validation=fast_validation)
    assert result.manifest["architecture"]["context_length"] == 128
    assert result.manifest["kv_cache"]["capacity"] == 128
    genai = json.loads((result.out_dir / "genai_config.json").read_text())
    assert genai["model"]["context_length"] == 128


@pytest.mark.parametrize("target,precision", [("ort", "int8"), ("portable", "fp32")])
def test_smollm_shape_tied_embeddings(tmp_path, smollm_like, fast_validation, target, precision):
    result = export_model(smollm_like, tmp_path / "pkg", target=target, precision=precision, progress=False,
                          validation=fast_validation)
    m = result.manifest
    assert m["architecture"]["num_kv_heads"] == 1 and m["architecture"]["head_dim"] == 32
    assert m["validation"]["passed"], m["validation"]
    assert validate_package(result.out_dir).ok
    if target == "ort":
        prompt = [5, 17, 42]
        assert _greedy_genai(result.out_dir, prompt, 8) == _greedy_onnx(result.out_dir, m, prompt, 8)
