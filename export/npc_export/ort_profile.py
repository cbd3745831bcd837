"""`ort` profile: the fastest graph ONNX Runtime runs on a CPU.

- llama / qwen2: onnxruntime-genai's model builder (GroupQueryAttention with fused rotary, shared
  past/present buffer, SimplifiedLayerNormalization, MatMulNBits for int4/int8). fp16 on CPU is not
  a builder combination that runs (it falls back to MultiHeadAttention and fails), so fp16 converts
  the builder's fp32 graph.
- gpt2 (not covered by the builder): our own `modeling.py` decoder exported with torch.onnx, then the
  same MatMulNBits quantizer; growing KV; genai_config.json written by us.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError
from .hf_import import HFSource

BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # MatMulNBits: activations quantized to int8 (AVX512-VNNI / AMX kernels)
# int8 kernels (`--int8-kernel`): MatMulNBits (default) quantizes activations per row and block, so a row's
# logits do not depend on the other rows of a batch; MatMulInteger (quantize_dynamic) picks ONE activation
# scale per [batch, hidden] tensor (DynamicQuantizeLinear): faster at large batches, not batch-invariant.
INT8_KERNELS = ("matmulnbits", "matmulinteger")
DEFAULT_INT8_KERNEL = "matmulnbits"


@dataclass
class GraphInfo:
    """What a profile builder reports about the graph it wrote into the staging dir."""

    quantization: dict | None
    kv_layout: str           # shared-buffer | growing
    kv_dtype: str            # float32 | float16
    fixed_capacity: int | None = None   # portable: capacity of model.fixed.onnx


def quantization_record(precision: str, int8_kernel: str = DEFAULT_INT8_KERNEL) -> dict | None:
    bits = {"int4": 4, "int8": 8}.get(precision)
    if bits is None:
        return None
    if precision == "int8" and int8_kernel == "matmulinteger":
        return {"method": "MatMulInteger", "bits": 8, "weights": "int8 per tensor, symmetric",
                "activations": "uint8, dynamic, one scale per tensor", "batch_invariant": False}
    return {"method": "MatMulNBits", "bits": bits, "block_size": BLOCK_SIZE, "accuracy_level": ACCURACY_LEVEL,
            "symmetric": True, "batch_invariant": True}


@contextlib.contextmanager
def _quiet():
    """The builder and the quantizer print a line per tensor; keep the CLI readable."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime.quantization", "onnxruntime", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield sink
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def run_genai_builder(src_dir: Path, out_dir: Path, precision: str, *, extra: dict | None = None) -> None:
    """onnxruntime-genai's builder on a local HF dir, CPU execution provider."""
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    options = [f"{k}={v}" for k, v in (extra or {}).items()]
    with tempfile.TemporaryDirectory(prefix="npc-genai-cache-") as cache, _quiet() as log:
        try:
            kwargs = parse_extra_options(None, str(src_dir), str(out_dir), precision, "cpu", cache, options)
            create_model(None, str(src_dir), str(out_dir), precision, "cpu", cache, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the builder raises bare Exception/NotImplementedError
            tail = log.getvalue().strip().splitlines()[-3:]
            raise ConversionError(f"onnxruntime-genai builder failed for {src_dir} ({precision}): {exc}"
                                  + (f" [{' | '.join(tail)}]" if tail else "")) from exc


def _patch_genai_config(stage: Path, source: HFSource) -> None:
    path = stage / "genai_config.json"
    config = json.loads(path.read_text())
    config["model"]["context_length"] = source.arch.context_length
    config["search"]["max_length"] = source.arch.context_length
    path.write_text(json.dumps(config, indent=4))


def convert_fp16(model_path: Path, *, keep_io_types: bool = False, single_file: bool = False) -> None:
    """fp32 -> fp16 weights and activations in place (external data beside the graph unless
    `single_file`). keep_io_types: inputs/outputs stay fp32 (Cast nodes at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(model_path))
    with _quiet():
        model = convert_float_to_float16(model, keep_io_types=keep_io_types, disable_shape_infer=True)
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        data.unlink()
    if single_file:
        onnx.save(model, str(model_path))
        return
    onnx.save(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=data.name, size_threshold=1024)


def quantize_matmul_nbits(model_path: Path, bits: int) -> None:
    """Blockwise symmetric weight-only quantization of every MatMul with a constant weight
    (MatMulNBits, block BLOCK_SIZE, accuracy level ACCURACY_LEVEL), in place."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(model_path))
    config = DefaultWeightOnlyQuantConfig(block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL,
                                          bits=bits)
    with _quiet():
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        data.unlink()
    quantizer.model.save_model_to_file(str(model_path), use_external_data_format=True)
    # save_model_to_file names the data file after the graph; make sure it is `<graph>.data`
    produced = [p for p in model_path.parent.iterdir() if p.name.startswith(model_path.name) and p != model_path]
    for p in produced:
        if p.name != data.name:
            p.rename(data)


def quantize_matmul_integer(model_path: Path) -> None:
    """int8 weights for every MatMul with a constant weight, activations quantized at run time
    (`onnxruntime.quantization.quantize_dynamic`: MatMulInteger, fused by ORT into DynamicQuantizeMatMul /
    MatMulIntegerToFloat, VNNI kernels whose cost per row falls with the batch), in place. Only MatMul:
    attention (GroupQueryAttention) and the embedding Gather are left as they are."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = model_path.with_name("quantized." + model_path.name)
    with _quiet():   # restores the loggers' levels on the way out
        logging.getLogger().setLevel(logging.ERROR)   # "consider pre-processing": advice for static quantization
        quantize_dynamic(model_path, quantized, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         use_external_data_format=True, extra_options={"MatMulConstBOnly": True})
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        data.unlink()
    _save_external(quantized, model_path)
    for leftover in model_path.parent.glob("quantized." + model_path.name + "*"):
        leftover.unlink()


def _save_external(source: Path, target: Path) -> None:
    """Load `source` (with its external data) and save it as `target` + `target.data`."""
    import onnx

    model = onnx.load(str(source))
    onnx.save(model, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
              location=target.name + ".data", size_threshold=1024)


def quantize_embedding_int8(model_path: Path) -> dict | None:
    """Token embedding table -> int8 with one fp32 scale per row, dequantized by plain ops:
    Gather(q, ids) -> Cast(float) -> Mul(Gather(scales, ids)). The builder leaves the table fp32
    (its Gather quantizer is 4-bit only), which alone would keep an int8 package above 0.3 x fp32.
    Returns the manifest record, or None when there is no untied fp32 embedding Gather."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    target = next((n for n in graph.node if n.op_type == "Gather" and n.domain == "" and n.input[0] in inits
                   and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].data_type == onnx.TensorProto.FLOAT
                   and users[n.input[0]] == 1), None)
    if target is None:
        return None
    table = numpy_helper.to_array(inits[target.input[0]])                       # [vocab, hidden]
    scale = np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-12) / 127.0  # [vocab, 1]
    quant = np.clip(np.round(table / scale), -127, 127).astype(np.int8)
    base = target.input[0]
    graph.initializer.remove(inits[base])
    graph.initializer.extend([numpy_helper.from_array(quant, base + "_int8"),
                              numpy_helper.from_array(scale.astype(np.float32), base + "_scale")])
    out, ids = target.output[0], target.input[1]
    index = list(graph.node).index(target)
    graph.node.remove(target)
    new_nodes = [
        helper.make_node("Gather", [base + "_int8", ids], [out + "_q"], name=target.name + "_q", axis=0),
        helper.make_node("Cast", [out + "_q"], [out + "_f"], name=target.name + "_cast", to=onnx.TensorProto.FLOAT),
        helper.make_node("Gather", [base + "_scale", ids], [out + "_s"], name=target.name + "_scale", axis=0),
        helper.make_node("Mul", [out + "_f", out + "_s"], [out], name=target.name + "_dequant"),
    ]
    for offset, node in enumerate(new_nodes):
        graph.node.insert(index + offset, node)
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        data.unlink()
    onnx.save(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=data.name, size_threshold=1024)
    return {"method": "per-row int8 (Gather, Cast, Mul)", "bits": 8, "tensor": base}


def build_with_genai(source: HFSource, stage: Path, precision: str, *,
                     int8_kernel: str = DEFAULT_INT8_KERNEL) -> GraphInfo:
    matmul_integer = precision == "int8" and int8_kernel == "matmulinteger"
    builder_precision = "fp32" if precision == "fp16" or matmul_integer else precision
    extra = {}
    if builder_precision in ("int4", "int8"):
        extra = {"block_size": BLOCK_SIZE, "accuracy_level": ACCURACY_LEVEL, "is_symmetric": "true"}
    run_genai_builder(source.path, stage, builder_precision, extra=extra)
    quantization = quantization_record(precision, int8_kernel)
    if precision == "fp16":
        convert_fp16(stage / "model.onnx")
    elif quantization is not None:
        if matmul_integer:
            quantize_matmul_integer(stage / "model.onnx")
        quantization["embedding"] = quantize_embedding_int8(stage / "model.onnx")
    _patch_genai_config(stage, source)
    # The builder copies tokenizer.json / tokenizer_config.json; keep the rest of the tokenizer files.
    for name in ("special_tokens_map.json", "tokenizer_config.json", "tokenizer.json"):
        if (source.path / name).is_file() and not (stage / name).is_file():
            shutil.copy2(source.path / name, stage / name)
    return GraphInfo(quantization=quantization, kv_layout="shared-buffer",
                     kv_dtype="float16" if precision == "fp16" else "float32")
