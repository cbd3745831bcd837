"""npc_package: the model-package contract (docs/package.md), as `npc_proto` is the wire contract.

Standard library only. The exporter writes through it, and `npcrt validate`, the runtime's loader and the
policy loader read through it, so they accept exactly the same packages:

    from npc_package import check_package, read_manifest, PackageError
    checked = check_package("path/to/pkg")        # manifest + confinement + sha256 + external data + graph I/O
    checked.manifest.architecture.num_layers       # typed (dataclasses)
    read_manifest("path/to/pkg")                   # the manifest alone, no other file read

The manifest's JSON Schema is `manifest.schema.json` beside this file (`manifest_schema()`); the vectors in
clients_test/vectors/manifest_vectors.json are checked by this reader and the C# and C++ ones.
"""

from .check import CheckedPackage, check_package, is_package_dir, portable_problems, unlisted_files
from .contract import (
    FORMAT_VERSION, KINDS, KV_LAYOUTS, MANIFEST_FILE, MODEL_FILE, POLICY_INPUTS, POLICY_OUTPUTS, POLICY_SPEC_FILE,
    PRECISIONS, SUPPORTED_FORMAT_VERSIONS, TARGETS, TOKENIZER_FILE, decoder_inputs, decoder_outputs,
)
from .errors import RULES, PackageError
from .hashing import sha256_of
from .manifest import (
    Architecture, KvCache, Manifest, PolicyInfo, SpecialTokens, TensorSpec, Variant, parse_manifest,
    parse_manifest_text, read_manifest,
)
from .onnx_graph import GraphSummary, read_graph
from .paths import check_name, name_problem, resolve_inside
from .schema import SCHEMA_FILE, manifest_schema

__all__ = [
    "Architecture", "CheckedPackage", "FORMAT_VERSION", "GraphSummary", "KINDS", "KV_LAYOUTS", "KvCache",
    "MANIFEST_FILE", "MODEL_FILE", "Manifest", "POLICY_INPUTS", "POLICY_OUTPUTS", "POLICY_SPEC_FILE", "PRECISIONS",
    "PackageError", "PolicyInfo", "RULES", "SCHEMA_FILE", "SUPPORTED_FORMAT_VERSIONS", "SpecialTokens", "TARGETS",
    "TOKENIZER_FILE", "TensorSpec", "Variant", "check_name", "check_package", "decoder_inputs", "decoder_outputs",
    "is_package_dir", "manifest_schema", "name_problem", "parse_manifest", "parse_manifest_text",
    "portable_problems", "read_graph", "read_manifest", "resolve_inside", "sha256_of", "unlisted_files",
]
