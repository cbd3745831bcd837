"""Graphs exported from our own `modeling.Decoder` with torch.onnx (TorchScript exporter, plain ai.onnx ops):

- `portable` profile (Unity Sentis / Unreal NNE): opset 15, growing KV in `model.onnx`, fixed-capacity
  KV in `model.fixed.onnx`; fp32, or fp16 weights (I/O stays fp32, Cast nodes at the edges).
- `ort` profile for families onnxruntime-genai's builder does not cover (gpt2): the same growing graph,
  then MatMulNBits (int4 / int8) or fp16, plus a genai_config.json so `og.Model(DIR)` loads it.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch

from .errors import ConversionError
from .hf_import import HFSource
from .modeling import Decoder, DecoderConfig, load_hf_weights
from .ort_profile import (DEFAULT_INT8_KERNEL, GraphInfo, convert_fp16, quantization_record, quantize_embedding_int8,
                          quantize_matmul_integer, quantize_matmul_nbits)

PORTABLE_OPSET = 15
ORT_OPSET = 17
# External weights only past this size: Sentis / NNE import a single file most easily.
SINGLE_FILE_LIMIT = 1_500_000_000


def _decoder_config(source: HFSource) -> DecoderConfig:
    cfg = DecoderConfig.from_hf(source.config, source.family.name)
    return cfg


def build_module(source: HFSource, kv_layout: str) -> Decoder:
    cfg = _decoder_config(source)
    model = Decoder(cfg, kv_layout=kv_layout)
    try:
        model.load_hf_state_dict(load_hf_weights(source.path))
    except KeyError as exc:
        from .errors import SourceError

        raise SourceError(f"{source.path}: weight {exc} is missing for a {cfg.family} model") from exc
    return model.eval()


def _io_names(num_layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def export_onnx(model: Decoder, path: Path, *, opset: int, capacity: int | None = None) -> None:
    """torch.onnx.export of a Decoder. Growing: dynamic batch / sequence / past; fixed: all static."""
    cfg = model.cfg
    inputs, outputs = _io_names(cfg.num_layers)
    kv = cfg.num_kv_heads, cfg.head_dim
    if capacity is None:
        seq, past_len = 3, 2
        args = (torch.ones(1, seq, dtype=torch.long), torch.ones(1, past_len + seq, dtype=torch.long),
                torch.arange(past_len, past_len + seq)[None],
                *[torch.zeros(1, kv[0], past_len, kv[1]) for _ in range(2 * cfg.num_layers)])
        dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
                   "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        dynamic.update({n: {0: "batch", 2: "past_sequence"} for n in inputs[3:]})
        dynamic.update({n: {0: "batch", 2: "total_sequence"} for n in outputs[1:]})
    else:
        args = (torch.ones(1, 1, dtype=torch.long), torch.ones(1, capacity + 1, dtype=torch.long),
                torch.zeros(1, 1, dtype=torch.long),
                *[torch.zeros(1, kv[0], capacity, kv[1]) for _ in range(2 * cfg.num_layers)])
        dynamic = None
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - torch.onnx raises many kinds
        raise ConversionError(f"torch.onnx.export failed for the {cfg.family} decoder: {exc}") from exc
    _externalize_if_large(path)


def _externalize_if_large(path: Path) -> None:
    if path.stat().st_size < SINGLE_FILE_LIMIT:
        return
    import onnx

    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=1024)


def build_portable(source: HFSource, stage: Path, precision: str) -> GraphInfo:
    capacity = source.arch.context_length
    export_onnx(build_module(source, "growing"), stage / "model.onnx", opset=PORTABLE_OPSET)
    export_onnx(build_module(source, "fixed"), stage / "model.fixed.onnx", opset=PORTABLE_OPSET, capacity=capacity)
    if precision == "fp16":
        for name in ("model.onnx", "model.fixed.onnx"):
            convert_fp16(stage / name, keep_io_types=True, single_file=True)
    return GraphInfo(quantization=None, kv_layout="growing", kv_dtype="float32", fixed_capacity=capacity)


def build_ort_own(source: HFSource, stage: Path, precision: str, *,
                  int8_kernel: str = DEFAULT_INT8_KERNEL) -> GraphInfo:
    """ort profile for families the genai builder lacks (gpt2): our graph + ORT quantizers."""
    model_path = stage / "model.onnx"
    export_onnx(build_module(source, "growing"), model_path, opset=ORT_OPSET)
    quantization = quantization_record(precision, int8_kernel)
    if quantization is not None and quantization["method"] == "MatMulInteger":
        quantize_matmul_integer(model_path)
        quantization["embedding"] = quantize_embedding_int8(model_path)
    elif quantization is not None:
        quantize_matmul_nbits(model_path, bits=quantization["bits"])
        quantization["embedding"] = quantize_embedding_int8(model_path)
    elif precision == "fp16":
        convert_fp16(model_path, keep_io_types=False)
    write_genai_config(source, stage)
    return GraphInfo(quantization=quantization, kv_layout="growing",
                     kv_dtype="float16" if precision == "fp16" else "float32")


def write_genai_config(source: HFSource, stage: Path) -> None:
    """genai_config.json for a growing-KV decoder with explicit position_ids (onnxruntime-genai reads
    input/output names from here)."""
    arch = source.arch
    special = source.special_tokens()
    eos = special["eos"]
    config = {
        "model": {
            "bos_token_id": special["bos"],
            "context_length": arch.context_length,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": "model.onnx",
                "head_size": arch.head_dim,
                "hidden_size": arch.hidden_size,
                "inputs": {
                    "input_ids": "input_ids", "attention_mask": "attention_mask", "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
                "num_attention_heads": arch.num_heads,
                "num_hidden_layers": arch.num_layers,
                "num_key_value_heads": arch.num_kv_heads,
            },
            "eos_token_id": eos[0] if len(eos) == 1 else eos,
            "pad_token_id": special["pad"] if special["pad"] is not None else (eos[0] if eos else 0),
            # genai's "gpt2" type expects the legacy fused past layout; its generic decoder-only path
            # ("llama") drives any graph with these I/O names, position_ids included.
            "type": "llama" if arch.family == "gpt2" else arch.family,
            "vocab_size": arch.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
            "max_length": arch.context_length, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1, "past_present_share_buffer": False, "repetition_penalty": 1.0,
            "temperature": 1.0, "top_k": 50, "top_p": 1.0,
        },
    }
    (stage / "genai_config.json").write_text(json.dumps(config, indent=4))
