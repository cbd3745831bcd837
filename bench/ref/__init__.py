"""The reference benchmark model and its packages, built locally (no download).

`ref-llama-32m.json` (a copy of ../shared/bench/ref-llama-32m.json, so a clone alone can run the benches) is
a Hugging Face LlamaConfig of about 32 M parameters. Its weights are random from a fixed seed (weights do
not change speed) and its tokenizer is a byte-level BPE trained here on random words.

    hf = make_ref_hf_dir(work / "hf")
    pkg = make_package(hf, work, "int4")      # fp32 | int4 | int8 (exporter) | int8dyn (quantize_dynamic)

Packages are cached under `work`: each is built in a temporary folder and renamed into place, so two
benchmarks started at once never see half a package.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REF_CONFIG = Path(__file__).resolve().parent / "ref-llama-32m.json"
REF_NAME = "ref-llama-32m (random weights, seed 0)"
PRECISIONS = ("fp32", "int4", "int8", "int8dyn")


def _atomic_build(out: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Runs build(tmp) in a sibling temporary folder and renames it to `out`, unless out/marker exists."""
    if (out / marker).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, out)
        except OSError:  # someone else finished first (or a broken leftover): theirs wins if complete
            if not (out / marker).exists():
                shutil.rmtree(out, ignore_errors=True)
                os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def make_ref_hf_dir(out: Path, seed: int = 0) -> Path:
    """The reference LlamaConfig with random weights (fixed seed) and a locally trained byte-level BPE."""
    return _atomic_build(Path(out), "config.json", lambda tmp: _write_hf_dir(tmp, seed))


def _write_hf_dir(out: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = json.loads(REF_CONFIG.read_text())
    rng = np.random.default_rng(seed)
    words = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(40000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg["vocab_size"], special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(words[i:i + 16]) for i in range(0, len(words), 16)], trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "model_max_length": cfg["max_position_embeddings"]}))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}))
    torch.manual_seed(seed)
    hf_cfg = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "torch_dtype")}
    model = LlamaForCausalLM(LlamaConfig(pad_token_id=0, **hf_cfg)).eval()
    with contextlib.redirect_stderr(io.StringIO()):  # "Writing model shards" progress bar
        model.save_pretrained(out, safe_serialization=True)


def export_ref(hf: Path, out: Path, precision: str) -> Path:
    """Our exporter's `ort` package of the reference model (no quality gate: random weights)."""
    def build(tmp: Path) -> None:
        from npc_export import export_model

        tmp.rmdir()  # the exporter wants to create its output folder itself
        export_model(hf, tmp, precision=precision, target="ort", validate=False, progress=False)

    return _atomic_build(Path(out), "manifest.json", build)


def make_int8_dynamic(fp32_pkg: Path, out: Path) -> Path:
    """`int8dyn`: the fp32 package with its MatMuls quantized by `onnxruntime.quantization.quantize_dynamic`
    (int8 weights, MatMulInteger with dynamic activation quantization: VNNI kernels that scale with the
    batch, unlike MatMulNBits). Same graph otherwise (GQA, shared KV buffer), so both peers can load it."""
    return _atomic_build(Path(out), "manifest.json", lambda tmp: _quantize_dynamic(Path(fp32_pkg), tmp))


def _quantize_dynamic(fp32_pkg: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for f in fp32_pkg.iterdir():
        if f.is_file() and not f.name.startswith("model.onnx"):
            shutil.copy2(f, out / f.name)
    quiet = logging.getLogger()  # the quantizer logs a line per tensor on the root logger
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        quantize_dynamic(fp32_pkg / "model.onnx", out / "model.onnx", weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], use_external_data_format=True)
    finally:
        quiet.setLevel(level)
    manifest = json.loads((fp32_pkg / "manifest.json").read_text())
    manifest["precision"] = "int8"   # the contract's precisions (docs/package.md); `quantization` tells them apart
    manifest["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8",
                                "op": "MatMulInteger"}
    manifest["files"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                         for f in sorted(out.iterdir()) if f.is_file() and f.name != "manifest.json"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def make_package(hf: Path, work: Path, precision: str) -> Path:
    if precision not in PRECISIONS:
        raise SystemExit(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if precision == "int8dyn":
        return make_int8_dynamic(export_ref(hf, work / "pkg-fp32", "fp32"), work / "pkg-int8dyn")
    return export_ref(hf, work / f"pkg-{precision}", precision)
