"""npc_package's manifest reader: the shared vectors, the schema file, typed fields, reading bounds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import npc_package
from npc_package import PackageError, manifest_schema, parse_manifest_text, read_manifest
from npc_package.contract import KINDS, KV_LAYOUTS, PRECISIONS, TARGETS

ROOT = Path(__file__).resolve().parent.parent.parent
VECTORS = json.loads((ROOT / "clients_test" / "vectors" / "manifest_vectors.json").read_text())


def _outcome(text: str) -> dict:
    try:
        parse_manifest_text(text)
    except PackageError as exc:
        assert "\n" not in str(exc), "errors are one line"
        return {"ok": False, "rule": exc.rule, "field": exc.field}
    return {"ok": True}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_manifest_vectors(case):
    assert _outcome(case["text"]) == case["expect"]


def test_vectors_cover_every_manifest_rule_and_both_outcomes():
    rules = {c["expect"].get("rule") for c in VECTORS["cases"]}
    assert set(npc_package.errors.MANIFEST_RULES) <= rules
    assert sum(c["expect"]["ok"] for c in VECTORS["cases"]) >= 5


def test_error_names_the_field_and_says_what_to_fix():
    case = next(c for c in VECTORS["cases"] if c["name"] == "file ../../secret.txt")
    with pytest.raises(PackageError) as info:
        parse_manifest_text(case["text"])
    assert "files" in str(info.value) and "../../secret.txt" in str(info.value) and "relative" in str(info.value)


def test_schema_file_is_the_contract():
    schema = manifest_schema()
    assert npc_package.SCHEMA_FILE.parent == Path(npc_package.__file__).parent  # shipped inside the module
    props = schema["properties"]
    assert props["kind"]["enum"] == list(KINDS) and props["target"]["enum"] == list(TARGETS)
    assert props["precision"]["enum"] == list(PRECISIONS)
    assert schema["$defs"]["kv_cache"]["properties"]["layout"]["enum"] == list(KV_LAYOUTS)
    assert props["format_version"]["enum"] == list(npc_package.SUPPORTED_FORMAT_VERSIONS)


@pytest.mark.parametrize("name", ["model.onnx", "a/b.bin", ".hidden", "x..y", "../x", "/x", "a//b", "a/./b", "a\\b",
                                  "C:x", "a/", "manifest.json", "tab\tname", "", "é/ü.txt"])
def test_schema_pattern_agrees_with_the_code(name):
    import re

    node = manifest_schema()["$defs"]["file_name"]
    by_schema = bool(name) and len(name) <= node["maxLength"] and re.search(node["pattern"], name) is not None
    assert by_schema == (npc_package.name_problem(name) is None)


def test_typed_manifest_of_the_shipped_dialogue_model():
    from npc_runtime.builtin_packages import HERE

    m = read_manifest(HERE / "npc-dialogue")
    assert m.kind == "causal-lm" and m.architecture.num_layers == 5 and m.kv_cache.layout == "shared-buffer"
    assert m.input_names[:2] == ("input_ids", "attention_mask") and m.special_tokens.eos
    assert "model.onnx.data" in m.files and m.graph_files == ("model.onnx",)


def test_unknown_fields_survive_in_raw():
    case = next(c for c in VECTORS["cases"] if c["name"].startswith("unknown fields"))
    assert "a_field_from_a_newer_exporter" in parse_manifest_text(case["text"]).raw


@pytest.mark.parametrize("text,rule", [
    ('{"format_version": NaN}', "json"), ("\ufeff{}", "json"), (b"\xff\xfe{", "json"), ("[" * 100_000, "json"),
    ('{"format_version": 1e400}', "json"), ("{}", "missing"), ('{"format_version": true}', "type"),
])
def test_malformed_texts_are_one_error(text, rule):
    with pytest.raises(PackageError) as info:
        parse_manifest_text(text)
    assert info.value.rule == rule and info.value.is_manifest_problem


def test_read_manifest_refuses_absent_symlinked_and_huge(tmp_path):
    with pytest.raises(PackageError, match="absent") as info:
        read_manifest(tmp_path)
    assert str(tmp_path) in str(info.value)
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    os.symlink(outside, pkg / "manifest.json")
    with pytest.raises(PackageError, match="symlink"):
        read_manifest(pkg)
    (pkg / "manifest.json").unlink()
    (pkg / "manifest.json").write_bytes(b" " * (npc_package.contract.MAX_MANIFEST_BYTES + 1))
    with pytest.raises(PackageError, match="larger than") as info:
        read_manifest(pkg)
    assert info.value.rule == "json"


def test_huge_num_layers_does_not_build_huge_lists():
    case = json.loads(next(c for c in VECTORS["cases"] if c["name"] == "causal-lm ort")["text"])
    case["architecture"]["num_layers"] = 2 ** 40
    with pytest.raises(PackageError) as info:
        npc_package.parse_manifest(case)
    assert info.value.rule == "io" and "past_key_values.2.key" in str(info.value)


def test_core_module_uses_the_standard_library_only():
    import ast
    import sys

    allowed = set(sys.stdlib_module_names) | {"npc_package"}
    for source in Path(npc_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}"
