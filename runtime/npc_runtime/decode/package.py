"""Load and verify a model package (docs/model-package.md) into a `ModelPackage`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_runtime.errors import ModelPackageError

SUPPORTED_FORMAT_VERSIONS = (1,)
KINDS = ("causal-lm", "policy")
KV_LAYOUTS = ("shared-buffer", "growing", "fixed-capacity")
_ARCH_KEYS = ("num_layers", "num_heads", "num_kv_heads", "head_dim", "hidden_size", "vocab_size",
              "context_length")


@dataclass(frozen=True)
class Architecture:
    """Shape numbers of a decoder: the manifest's `architecture` (written by the exporter, read here)."""

    family: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int


@dataclass(frozen=True)
class KvCacheSpec:
    layout: str        # shared-buffer | growing | fixed-capacity
    capacity: int      # max positions
    dtype: str         # float32 | float16


@dataclass(frozen=True)
class SpecialTokens:
    bos: int | None
    eos: tuple[int, ...]
    pad: int | None


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    name: str
    kind: str
    precision: str
    target: str
    architecture: Architecture | None
    kv_cache: KvCacheSpec | None
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    special_tokens: SpecialTokens
    chat_template: str | None
    manifest: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model_file(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (the digest the manifest's `files` holds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed `manifest.json` of a package directory (a JSON object), or ModelPackageError."""
    root = Path(path)
    manifest_file = root / "manifest.json"
    if not manifest_file.is_file():
        raise ModelPackageError(f"{root}: not a model package (no manifest.json); export one with `npcrt export`")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{manifest_file}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelPackageError(f"{manifest_file}: must hold a JSON object")
    return manifest


def _require(manifest: dict, key: str, where: Path) -> Any:
    if key not in manifest:
        raise ModelPackageError(f"{where}: manifest.json lacks the field '{key}' (see docs/model-package.md)")
    return manifest[key]


def _verify_files(root: Path, files: dict) -> None:
    if not isinstance(files, dict) or not files:
        raise ModelPackageError(f"{root}: manifest.json 'files' must map file names to sha256 hex digests")
    for name, expected in files.items():
        file = root / name
        if not file.is_file():
            raise ModelPackageError(f"{root}: file '{name}' listed in manifest.json is missing")
        actual = sha256_of(file)
        if actual != str(expected).lower():
            raise ModelPackageError(
                f"{root}: sha256 mismatch for '{name}' (manifest {expected}, file {actual}); "
                "the package is corrupt or was modified, re-export it")


def _parse_architecture(root: Path, raw: Any) -> Architecture:
    if not isinstance(raw, dict):
        raise ModelPackageError(f"{root}: manifest.json 'architecture' must be an object for a causal-lm")
    try:
        numbers = {key: int(raw[key]) for key in _ARCH_KEYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelPackageError(f"{root}: manifest.json 'architecture' needs integer fields {_ARCH_KEYS}") from exc
    return Architecture(family=str(raw.get("family", "llama")), **numbers)


def _check_decoder_io(root: Path, arch: Architecture, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    needed_in = ["input_ids", "attention_mask"]
    needed_out = ["logits"]
    for i in range(arch.num_layers):
        needed_in += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        needed_out += [f"present.{i}.key", f"present.{i}.value"]
    missing = [n for n in needed_in if n not in inputs] + [n for n in needed_out if n not in outputs]
    if missing:
        raise ModelPackageError(f"{root}: decoder I/O lacks {missing} (names per docs/model-package.md)")


def load_package(path: str | Path, *, verify_hashes: bool = True) -> ModelPackage:
    """Read `path/manifest.json`, check it against the contract and (by default) every file's sha256."""
    root = Path(path)
    manifest = read_manifest(root)

    version = _require(manifest, "format_version", root)
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelPackageError(f"{root}: format_version {version!r} unsupported (this runtime reads "
                                f"{SUPPORTED_FORMAT_VERSIONS}); re-export with a matching exporter")
    kind = _require(manifest, "kind", root)
    if kind not in KINDS:
        raise ModelPackageError(f"{root}: kind {kind!r} unknown, expected one of {KINDS}")
    if verify_hashes:
        _verify_files(root, _require(manifest, "files", root))
    if not (root / "model.onnx").is_file():
        raise ModelPackageError(f"{root}: model.onnx is missing")

    def names(key: str) -> tuple[str, ...]:
        entries = _require(manifest, key, root)
        try:
            return tuple(str(e["name"]) for e in entries)
        except (TypeError, KeyError) as exc:
            raise ModelPackageError(f"{root}: manifest.json '{key}' must be a list of {{name, dtype, shape}}") from exc

    inputs, outputs = names("inputs"), names("outputs")
    special = manifest.get("special_tokens") or {}
    eos = special.get("eos", [])
    eos = tuple(int(e) for e in (eos if isinstance(eos, list) else [eos]))
    arch = kv = None
    if kind == "causal-lm":
        arch = _parse_architecture(root, _require(manifest, "architecture", root))
        raw_kv = _require(manifest, "kv_cache", root)
        layout = raw_kv.get("layout") if isinstance(raw_kv, dict) else None
        if layout not in KV_LAYOUTS:
            raise ModelPackageError(f"{root}: kv_cache.layout {layout!r} unknown, expected one of {KV_LAYOUTS}")
        kv = KvCacheSpec(layout=layout, capacity=int(raw_kv.get("capacity", arch.context_length)),
                         dtype=str(raw_kv.get("dtype", "float32")))
        _check_decoder_io(root, arch, inputs, outputs)
        if not (root / "tokenizer.json").is_file():
            raise ModelPackageError(f"{root}: tokenizer.json is missing (a causal-lm needs one)")
    return ModelPackage(
        path=root, name=str(manifest.get("name") or root.name), kind=kind,
        precision=str(manifest.get("precision", "fp32")), target=str(manifest.get("target", "ort")),
        architecture=arch, kv_cache=kv, input_names=inputs, output_names=outputs,
        special_tokens=SpecialTokens(bos=special.get("bos"), eos=eos, pad=special.get("pad")),
        chat_template=manifest.get("chat_template"), manifest=manifest,
    )
