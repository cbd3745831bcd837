"""Load a model package (docs/package.md) into a `ModelPackage`, through the contract in `npc_package`.

`npc_package.check_package` does every check (manifest, path confinement, sha256, external data listed,
graph I/O): the same function `npcrt validate` runs, so serve and validate accept the same packages. Its
`PackageError` becomes `ModelPackageError` here, at the runtime's boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_package import (
    KINDS, KV_LAYOUTS, SUPPORTED_FORMAT_VERSIONS, Architecture, Manifest, PackageError, SpecialTokens, check_package,
    sha256_of,
)
from npc_package import KvCache as KvCacheSpec
from npc_package import read_manifest as _read_manifest

from npc_runtime.errors import ModelPackageError

__all__ = ["Architecture", "KINDS", "KV_LAYOUTS", "KvCacheSpec", "ModelPackage", "SUPPORTED_FORMAT_VERSIONS",
           "SpecialTokens", "load_package", "read_manifest", "sha256_of"]


@dataclass(frozen=True)
class ModelPackage:
    path: Path                 # the package's real path (every file below is confined to it)
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
    manifest: dict[str, Any] = field(repr=False, compare=False)   # the parsed manifest.json
    typed: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def model_file(self) -> Path:
        return self.path / "model.onnx"

    @property
    def batch_invariant(self) -> bool:
        """Whether a row's greedy output is the same batched or alone. False for dynamically quantized
        activations (int8 MatMulInteger: one activation scale per [batch, hidden] tensor, docs/exporter.md);
        the manifest's `quantization.batch_invariant` says so, else its kernel does."""
        quantization = self.manifest.get("quantization") or {}
        if isinstance(quantization.get("batch_invariant"), bool):
            return quantization["batch_invariant"]
        return "MatMulInteger" not in (str(quantization.get("method", "")), str(quantization.get("op", "")))

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed `manifest.json` of a package directory, checked against the contract (ModelPackageError)."""
    try:
        return _read_manifest(path).raw
    except PackageError as exc:
        raise ModelPackageError(str(exc)) from exc


def load_package(path: str | Path, *, verify_hashes: bool = True) -> ModelPackage:
    """Check the package at `path` against the contract (by default with every file's sha256) and load it."""
    try:
        checked = check_package(path, verify_hashes=verify_hashes)
    except PackageError as exc:
        raise ModelPackageError(f"{exc} (see docs/package.md)") from exc
    m = checked.manifest
    return ModelPackage(
        path=checked.root, name=m.name or checked.root.name, kind=m.kind, precision=m.precision, target=m.target,
        architecture=m.architecture, kv_cache=m.kv_cache, input_names=m.input_names, output_names=m.output_names,
        special_tokens=m.special_tokens, chat_template=m.chat_template, manifest=m.raw, typed=m,
    )
