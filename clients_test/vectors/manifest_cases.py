"""Manifest test vectors (manifest_vectors.json): valid and invalid manifest.json texts, each invalid one with
exactly one defect and the PackageError rule and field every reader (Python npc_package, C# ModelManifest,
C++ npc::ParseManifest) must report. Written by make_vectors.py; the expectations are stated here by hand and
the generator refuses to write them unless the Python reader agrees."""

from __future__ import annotations

import copy
import json

H = "0" * 63  # + one more hex digit: distinct well-formed digests


def _files(*names: str) -> dict:
    return {name: H + format(i, "x") for i, name in enumerate(names)}


def _tensors(*names: str) -> list:
    return [{"name": n, "dtype": "float32", "shape": ["batch", "sequence"]} for n in names]


def decoder(target: str = "ort") -> dict:
    layers = 2
    inputs = ["input_ids", "attention_mask"] + [f"past_key_values.{i}.{w}" for i in range(layers) for w in ("key", "value")]
    outputs = ["logits"] + [f"present.{i}.{w}" for i in range(layers) for w in ("key", "value")]
    extra = ("genai_config.json",) if target == "ort" else ("model.fixed.onnx",)
    m = {
        "format_version": 1, "kind": "causal-lm", "name": "tiny", "source": "builtin:npc-dialogue",
        "architecture": {"family": "llama", "num_layers": layers, "num_heads": 2, "num_kv_heads": 1, "head_dim": 8,
                         "hidden_size": 16, "vocab_size": 400, "context_length": 64},
        "precision": "fp32", "quantization": None, "target": target, "opset": 17 if target == "ort" else 15,
        "kv_cache": {"layout": "shared-buffer" if target == "ort" else "growing", "capacity": 64, "dtype": "float32"},
        "inputs": _tensors(*inputs), "outputs": _tensors(*outputs),
        "special_tokens": {"bos": 1, "eos": [2], "pad": 0}, "chat_template": None,
        "files": _files("model.onnx", "model.onnx.data", "tokenizer.json", *extra),
        "exporter_version": "0.1.0", "created_unix": 1764000000, "validation": None, "policy": None,
    }
    if target == "portable":
        m["variants"] = {"fixed-capacity": {"file": "model.fixed.onnx", "layout": "fixed-capacity", "capacity": 64,
                                            "inputs": _tensors(*inputs), "outputs": _tensors(*outputs)}}
    return m


def policy() -> dict:
    return {
        "format_version": 1, "kind": "policy", "name": "npc-policy", "architecture": None, "precision": "fp32",
        "target": "ort", "opset": 17, "kv_cache": None, "inputs": _tensors("observations"),
        "outputs": _tensors("action_logits", "confidence"), "special_tokens": None,
        "files": _files("model.onnx", "policy.json"), "policy": {"num_features": 16, "num_actions": 12},
    }


def _with(base: dict, path: str, value=None, *, delete: bool = False) -> dict:
    """A copy of base with the dotted `path` set to value (or deleted); [i] indexes lists."""
    m = copy.deepcopy(base)
    keys = path.replace("[", ".[").split(".")
    node = m
    for key in keys[:-1]:
        node = node[int(key[1:-1])] if key.startswith("[") else node[key]
    last = keys[-1]
    last = int(last[1:-1]) if last.startswith("[") else last
    if delete:
        del node[last]
    else:
        node[last] = value
    return m


def _file_renamed(base: dict, old: str, new: str) -> dict:
    m = copy.deepcopy(base)
    m["files"][new] = m["files"].pop(old)
    return m


def _file_added(base: dict, name: str) -> dict:
    m = copy.deepcopy(base)
    m["files"][name] = H + "f"
    return m


def cases() -> list[dict]:
    d, p, port = decoder(), policy(), decoder("portable")
    extra_fields = copy.deepcopy(d)
    extra_fields["a_field_from_a_newer_exporter"] = {"anything": [1, 2]}
    valid = [
        ("causal-lm ort", d), ("causal-lm portable with fixed-capacity variant", port), ("policy", p),
        ("unknown fields are allowed (additive)", extra_fields),
        ("eos as one id", _with(d, "special_tokens.eos", 2)),
        ("optional fields absent", {k: v for k, v in d.items() if k not in ("source", "special_tokens", "chat_template",
                                                                           "exporter_version", "created_unix")}),
        ("file in a sub-folder", _file_added(d, "extra/notes.txt")),
        ("dotted file name", _file_added(d, ".hidden..name")),
    ]
    invalid = [
        ("not JSON", "{", "json", ""),
        ("a JSON list", "[]", "json", ""),
        ("a JSON string", '"manifest"', "json", ""),
        ("format_version absent", _with(d, "format_version", delete=True), "missing", "format_version"),
        ("format_version a string", _with(d, "format_version", "1"), "type", "format_version"),
        ("format_version 2", _with(d, "format_version", 2), "version", "format_version"),
        ("kind absent", _with(d, "kind", delete=True), "missing", "kind"),
        ("kind unknown", _with(d, "kind", "encoder"), "value", "kind"),
        ("name empty", _with(d, "name", ""), "value", "name"),
        ("name a number", _with(d, "name", 7), "type", "name"),
        ("precision unknown", _with(d, "precision", "fp8"), "value", "precision"),
        ("target unknown", _with(d, "target", "gpu"), "value", "target"),
        ("opset absent", _with(d, "opset", delete=True), "missing", "opset"),
        ("opset a string", _with(d, "opset", "17"), "type", "opset"),
        ("opset zero", _with(d, "opset", 0), "value", "opset"),
        ("inputs empty", _with(d, "inputs", []), "value", "inputs"),
        ("inputs an object", _with(d, "inputs", {}), "type", "inputs"),
        ("input without a name", _with(d, "inputs[0]", {"dtype": "int64"}), "missing", "inputs[0].name"),
        ("input name a number", _with(d, "inputs[0].name", 3), "type", "inputs[0].name"),
        ("files absent", _with(d, "files", delete=True), "missing", "files"),
        ("files empty", _with(d, "files", {}), "value", "files"),
        ("files a list", _with(d, "files", ["model.onnx"]), "type", "files"),
        ("sha256 too short", _with(d, "files", {**d["files"], "model.onnx": "abc"}), "value", "files"),
        ("sha256 uppercase", _with(d, "files", {**d["files"], "model.onnx": "A" * 64}), "value", "files"),
        ("sha256 a number", _with(d, "files", {**d["files"], "model.onnx": 1}), "type", "files"),
        ("architecture absent (causal-lm)", _with(d, "architecture", delete=True), "missing", "architecture"),
        ("architecture null (causal-lm)", _with(d, "architecture", None), "type", "architecture"),
        ("num_layers absent", _with(d, "architecture.num_layers", delete=True), "missing", "architecture.num_layers"),
        ("num_layers zero", _with(d, "architecture.num_layers", 0), "value", "architecture.num_layers"),
        ("num_layers negative", _with(d, "architecture.num_layers", -2), "value", "architecture.num_layers"),
        ("num_layers a string", _with(d, "architecture.num_layers", "2"), "type", "architecture.num_layers"),
        ("num_layers fractional", _with(d, "architecture.num_layers", 2.5), "type", "architecture.num_layers"),
        ("vocab_size absurd", _with(d, "architecture.vocab_size", 2 ** 41), "value", "architecture.vocab_size"),
        ("kv_cache absent (causal-lm)", _with(d, "kv_cache", delete=True), "missing", "kv_cache"),
        ("kv_cache.layout unknown", _with(d, "kv_cache.layout", "paged"), "value", "kv_cache.layout"),
        ("kv_cache.dtype unknown", _with(d, "kv_cache.dtype", "int8"), "value", "kv_cache.dtype"),
        ("eos a string", _with(d, "special_tokens.eos", "</s>"), "type", "special_tokens.eos"),
        ("eos negative id", _with(d, "special_tokens.eos", [-1]), "value", "special_tokens.eos[0]"),
        ("file ../../secret.txt", _file_renamed(d, "tokenizer.json", "../../secret.txt"), "path", "files"),
        ("file /etc/hostname", _file_added(d, "/etc/hostname"), "path", "files"),
        ("file with a backslash", _file_added(d, "..\\secret.txt"), "path", "files"),
        ("file with a drive letter", _file_added(d, "C:/Windows/win.ini"), "path", "files"),
        ("file ./model.onnx", _file_added(d, "./model.onnx"), "path", "files"),
        ("file a/../b", _file_added(d, "a/../tokenizer.json"), "path", "files"),
        ("file with an empty component", _file_added(d, "a//b"), "path", "files"),
        ("file ending in /", _file_added(d, "extra/"), "path", "files"),
        ("file with a control character", _file_added(d, "a\nb"), "path", "files"),
        ("file named ..", _file_added(d, ".."), "path", "files"),
        ("manifest.json listed", _file_added(d, "manifest.json"), "path", "files"),
        ("model.onnx not listed", _file_renamed(d, "model.onnx", "model2.onnx"), "listing", "files"),
        ("tokenizer.json not listed (causal-lm)", _file_renamed(d, "tokenizer.json", "tok.json"), "listing", "files"),
        ("genai_config.json not listed (ort causal-lm)", _file_renamed(d, "genai_config.json", "genai.json"),
         "listing", "files"),
        ("policy.json not listed (policy)", _file_renamed(p, "policy.json", "spec.json"), "listing", "files"),
        ("variant file not listed", _with(port, "variants.fixed-capacity.file", "model.other.onnx"), "listing",
         "variants"),
        ("variant file outside", _with(port, "variants.fixed-capacity.file", "../model.fixed.onnx"), "path",
         "variants.file"),
        ("portable int8", _with(port, "precision", "int8"), "value", "precision"),
        ("decoder input of layer 1 absent", _with(d, "inputs", d["inputs"][:-1]), "io", "inputs"),
        ("decoder logits absent", _with(d, "outputs", d["outputs"][1:]), "io", "outputs"),
        ("policy input renamed", _with(p, "inputs[0].name", "obs"), "io", "inputs"),
        ("policy output absent", _with(p, "outputs", p["outputs"][:1]), "io", "outputs"),
    ]
    out = [{"name": name, "text": json.dumps(m, indent=1), "expect": {"ok": True}} for name, m in valid]
    for name, m, rule, field in invalid:
        text = m if isinstance(m, str) else json.dumps(m, indent=1)
        out.append({"name": name, "text": text, "expect": {"ok": False, "rule": rule, "field": field}})
    return out


RULE = ("Each case's `text` is a manifest.json. A reader parses it and reports either success or one error: "
        "`rule` (the error class, docs/package.md) and `field` (dotted path, [i] for list items; entries of "
        "`files` and `variants` are reported at the map, e.g. `files`, `variants.file`).")


def manifest_vectors() -> dict:
    """The vectors, after checking the Python reader (npc_package) reports exactly what each case expects."""
    from npc_package import PackageError, parse_manifest_text

    all_cases = cases()
    for case in all_cases:
        try:
            parse_manifest_text(case["text"])
            got = {"ok": True}
        except PackageError as exc:
            got = {"ok": False, "rule": exc.rule, "field": exc.field}
        if got != case["expect"]:
            raise SystemExit(f"manifest vector {case['name']!r}: npc_package reports {got}, expected {case['expect']}")
    return {"rule": RULE, "rules": _rules(), "cases": all_cases}


def _rules() -> dict:
    from npc_package import RULES

    return dict(RULES)
