"""Model packages for the runtime tests and bench (random weights, local tokenizer, no downloads).

`build_package` uses the exporter (`npc_export.export_model`); if that fails it warns and drives
onnxruntime-genai's model builder directly, writing a manifest per docs/model-package.md, so engine tests
do not break while the exporter changes. `make_hf_llama` builds an HF dir from any LlamaConfig dict.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
import json
import subprocess
import sys
from pathlib import Path

CORPUS = [
    "Hello traveller, welcome to the village of Oakvale.",
    "The blacksmith sells swords, shields and armour for gold coins.",
    "I am the guard of the northern gate. State your business!",
    "Would you like to trade? I have potions, bread and rope.",
    "The dragon was seen near the mountains last night.",
    "{\"action\": \"greet\", \"mood\": \"happy\", \"gold\": 12}",
    "[greet] [trade] [attack] [flee] [follow] [wait]",
    "Ünïcödé façade naïve café — 日本語 テスト 🙂",
]


def make_tokenizer(out_dir: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer trained on a small corpus, saved with HF side files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "model_max_length": 4096,
    }))
    (out_dir / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}))


def make_hf_llama(out_dir: Path, *, config: dict | None = None, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    cfg.update(config or {})
    cfg = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "torch_dtype")}
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.save_pretrained(out_dir, safe_serialization=True)
    make_tokenizer(out_dir, cfg["vocab_size"])
    return out_dir


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(pkg: Path, hf_dir: Path, *, precision: str, name: str) -> None:
    import onnxruntime as ort

    hf = json.loads((hf_dir / "config.json").read_text())
    sess = ort.InferenceSession(str(pkg / "model.onnx"), providers=["CPUExecutionProvider"])
    ort_types = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32",
                 "tensor(float16)": "float16"}
    io = lambda xs: [{"name": x.name, "dtype": ort_types.get(x.type, x.type), "shape": list(x.shape)} for x in xs]
    layout = "shared-buffer" if any(n.op_type == "GroupQueryAttention" for n in _nodes(pkg)) else "growing"
    files = {p.name: _sha256(p) for p in sorted(pkg.iterdir())
             if p.is_file() and p.name != "manifest.json"}
    heads = hf["num_attention_heads"]
    manifest = {
        "format_version": 1, "kind": "causal-lm", "name": name, "source": str(hf_dir),
        "architecture": {
            "family": "llama", "num_layers": hf["num_hidden_layers"], "num_heads": heads,
            "num_kv_heads": hf.get("num_key_value_heads", heads), "head_dim": hf["hidden_size"] // heads,
            "hidden_size": hf["hidden_size"], "vocab_size": hf["vocab_size"],
            "context_length": hf["max_position_embeddings"],
        },
        "precision": precision,
        "quantization": None if precision == "fp32" else {
            "method": "MatMulNBits", "bits": 4, "block_size": 32, "accuracy_level": 4, "symmetric": True},
        "target": "ort", "opset": 21,
        "kv_cache": {"layout": layout, "capacity": hf["max_position_embeddings"], "dtype": "float32"},
        "inputs": io(sess.get_inputs()), "outputs": io(sess.get_outputs()),
        "special_tokens": {"bos": 1, "eos": [2], "pad": 0},
        "chat_template": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<s>assistant:{% endif %}",
        "files": files, "exporter_version": "test-factory", "created_unix": 0,
        "validation": {"passed": True, "overridden": False}, "policy": None,
    }
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _nodes(pkg: Path):
    import onnx

    return onnx.load(str(pkg / "model.onnx"), load_external_data=False).graph.node


def build_package(hf_dir: Path, out_dir: Path, *, precision: str = "fp32", name: str = "tiny-llama",
                  target: str = "ort") -> Path:
    """HF dir -> model package (the exporter; the genai builder + a manifest as a fallback for `ort`)."""
    try:
        from npc_export import export_model  # the exporter, once it exists
    except ImportError:
        export_model = None
    if export_model is not None:
        try:
            export_model(hf_dir, out_dir, precision=precision, target=target, progress=False, validate=False)
            return out_dir
        except Exception as exc:  # the exporter is developed in parallel: fall back, loudly
            if target != "ort":
                raise
            warnings.warn(f"npc_export.export_model failed ({exc!r}); using the genai builder directly")
            shutil.rmtree(out_dir, ignore_errors=True)
    cache = out_dir.parent / (out_dir.name + ".cache")
    subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
                    "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(cache)],
                   check=True, capture_output=True)
    write_manifest(out_dir, hf_dir, precision=precision, name=name)
    return out_dir
