"""Read a local Hugging Face model directory: which family it is, its shape numbers, its weights.

Only local directories: nothing here downloads. Families are a table (`FAMILIES`), not a dispatch
chain: adding one means adding a row and a branch in `modeling.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from npc_runtime.decode.package import Architecture  # the manifest's `architecture`, shared with the runtime

from .errors import SourceError, UnsupportedArchitecture


@dataclass(frozen=True)
class FamilySpec:
    """How one HF architecture family maps onto the exporter."""

    name: str                      # llama | qwen2 | gpt2
    architectures: tuple[str, ...]  # HF `architectures[0]` values of this family
    genai_builder: bool            # onnxruntime-genai's model builder covers it (ort profile)
    # config.json keys of the shape numbers: layers, heads, hidden, vocab, context
    keys: dict = field(default_factory=dict)


_LLAMA_KEYS = dict(
    num_layers="num_hidden_layers", num_heads="num_attention_heads", hidden_size="hidden_size",
    vocab_size="vocab_size", context_length="max_position_embeddings", num_kv_heads="num_key_value_heads",
)
_GPT2_KEYS = dict(
    num_layers="n_layer", num_heads="n_head", hidden_size="n_embd", vocab_size="vocab_size",
    context_length="n_positions", num_kv_heads="n_head",
)

# HF model_type -> family
FAMILIES: dict[str, FamilySpec] = {
    "llama": FamilySpec("llama", ("LlamaForCausalLM",), True, _LLAMA_KEYS),   # Llama, SmolLM(1/2), TinyLlama
    "qwen2": FamilySpec("qwen2", ("Qwen2ForCausalLM",), True, _LLAMA_KEYS),
    "gpt2": FamilySpec("gpt2", ("GPT2LMHeadModel",), False, _GPT2_KEYS),
}
SUPPORTED = ", ".join(f"{k} ({', '.join(v.architectures)})" for k, v in FAMILIES.items())

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class HFSource:
    """A checked local HF model directory."""

    path: Path
    family: FamilySpec
    config: dict
    arch: Architecture
    tokenizer_config: dict

    def load_torch_model(self):
        """The PyTorch reference model in fp32, eval mode."""
        import contextlib
        import io

        import torch
        from transformers import AutoModelForCausalLM

        try:  # transformers draws a "Loading weights" bar on stderr: keep the CLI's output ours
            with contextlib.redirect_stderr(io.StringIO()):
                model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
            raise SourceError(f"cannot load the weights of {self.path}: {exc}") from exc
        return model.eval()

    def special_tokens(self) -> dict:
        """bos / eos (list) / pad ids from config.json, generation_config.json, tokenizer files."""
        gen = _read_json(self.path / "generation_config.json", required=False) or {}
        bos = self.config.get("bos_token_id", gen.get("bos_token_id"))
        eos = self.config.get("eos_token_id", gen.get("eos_token_id"))
        pad = self.config.get("pad_token_id", gen.get("pad_token_id"))
        eos_list = [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])
        return {"bos": bos, "eos": eos_list, "pad": pad}

    def held_out_chats(self) -> list | None:
        """Optional `heldout_chats.json` of the model directory: chats (lists of {"role", "content"}, the
        last one the reply) the model never trained on, used by the export self-check."""
        chats = _read_json(self.path / "heldout_chats.json", required=False, expect=list)
        if chats is None:
            return None
        if not (chats and all(isinstance(c, list) and len(c) >= 2 for c in chats)):
            raise SourceError(f"{self.path / 'heldout_chats.json'}: expected a list of chats (lists of messages)")
        return chats

    def chat_template(self) -> str | None:
        template = self.tokenizer_config.get("chat_template")
        jinja = self.path / "chat_template.jinja"
        if template is None and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        if isinstance(template, list):  # [{"name": "default", "template": "..."}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        return template


def _read_json(path: Path, *, required: bool = True, expect: type = dict):
    if not path.is_file():
        if required:
            raise SourceError(f"{path} is missing: a Hugging Face model directory needs it")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path} is not valid JSON ({exc}); re-download or re-save the model") from exc
    if not isinstance(data, expect):
        raise SourceError(f"{path} must hold a JSON {'object' if expect is dict else 'array'}")
    return data


def _check_weights(path: Path) -> None:
    present = [name for name in WEIGHT_FILES if (path / name).is_file()]
    if not present:
        raise SourceError(f"{path} has no weights: expected one of {', '.join(WEIGHT_FILES)}")
    if present[0] == "model.safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path / "model.safetensors"), framework="numpy") as handle:
                if not list(handle.keys()):
                    raise SourceError(f"{path / 'model.safetensors'} holds no tensors")
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
            raise SourceError(f"{path / 'model.safetensors'} is corrupt or truncated ({exc})") from exc


def architecture_of(config: dict, spec: FamilySpec, *, context_length: int | None = None) -> Architecture:
    keys = spec.keys
    try:
        layers, heads = int(config[keys["num_layers"]]), int(config[keys["num_heads"]])
        hidden, vocab = int(config[keys["hidden_size"]]), int(config[keys["vocab_size"]])
        max_ctx = int(config[keys["context_length"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"config.json lacks a shape number the {spec.name} family needs: {exc}") from exc
    kv_heads = int(config.get(keys["num_kv_heads"]) or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    return Architecture(
        family=spec.name, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        hidden_size=hidden, vocab_size=vocab, context_length=int(context_length or max_ctx),
    )


def load_hf_source(path: str | Path, *, context_length: int | None = None) -> HFSource:
    """Check a local HF directory and tell its family; raise a clear `SourceError` /
    `UnsupportedArchitecture` otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SourceError(f"model directory {path} does not exist (expected a local Hugging Face directory "
                          f"or builtin:npc-dialogue / builtin:npc-policy)")
    if not path.is_dir():
        raise SourceError(f"{path} is not a directory; pass a local Hugging Face model directory")
    config = _read_json(path / "config.json")
    model_type = config.get("model_type")
    spec = FAMILIES.get(model_type)
    archs = config.get("architectures") or []
    if spec is None:
        by_arch = {a: s for s in FAMILIES.values() for a in s.architectures}
        spec = next((by_arch[a] for a in archs if a in by_arch), None)
    if spec is None:
        raise UnsupportedArchitecture(
            f"unsupported architecture {model_type or archs or 'unknown'} in {path / 'config.json'}; "
            f"supported: {SUPPORTED}"
        )
    if archs and archs[0] not in spec.architectures:
        raise UnsupportedArchitecture(
            f"{path}: model_type {model_type!r} with head {archs[0]!r} is not a causal LM the exporter "
            f"supports; supported: {SUPPORTED}"
        )
    _check_weights(path)
    if not (path / "tokenizer.json").is_file():
        raise SourceError(f"{path} has no tokenizer.json (a Hugging Face `tokenizers` file is required; "
                          f"save the tokenizer with a fast tokenizer: tokenizer.save_pretrained(dir))")
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
        raise SourceError(f"{path / 'tokenizer.json'} is corrupt ({exc})") from exc
    tokenizer_config = _read_json(path / "tokenizer_config.json", required=False) or {}
    arch = architecture_of(config, spec, context_length=context_length)
    max_ctx = architecture_of(config, spec).context_length
    if context_length is not None and not 1 <= int(context_length) <= max_ctx:
        from .errors import InvalidOptions

        raise InvalidOptions(f"--context {context_length} is out of range: this model supports 1..{max_ctx} positions")
    return HFSource(path=path, family=spec, config=config, arch=arch, tokenizer_config=tokenizer_config)
