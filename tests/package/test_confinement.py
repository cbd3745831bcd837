"""Packages on disk: confinement, hashes, external data, and that `npcrt validate`, the runtime's loader and
the policy loader agree (same packages accepted, same error for the rest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from npc_package import PackageError, check_package, sha256_of
from npc_runtime.cli import main as npcrt
from npc_runtime.decode.package import load_package
from npc_runtime.errors import ModelPackageError

from .conftest import rehash, rewrite

ROOT = Path(__file__).resolve().parent.parent.parent
VECTORS = json.loads((ROOT / "clients_test" / "vectors" / "manifest_vectors.json").read_text())


def _validate(capsys, pkg: Path) -> tuple[int, str]:
    code = npcrt(["validate", str(pkg)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, err


def _serve_load(pkg: Path) -> PackageError | None:
    try:
        load_package(pkg)
    except ModelPackageError as exc:
        assert isinstance(exc.__cause__, PackageError), "the contract's error is kept as the cause"
        return exc.__cause__
    return None


def _refused_by_both(capsys, pkg: Path, rule: str, *needles: str) -> str:
    """validate and the runtime loader both refuse pkg, for the same reason; returns validate's stderr."""
    code, err = _validate(capsys, pkg)
    cause = _serve_load(pkg)
    assert cause is not None and cause.rule == rule, cause
    assert code == (2 if cause.is_manifest_problem else 1)
    assert str(cause) in err
    for needle in needles:
        assert needle in err
    return err


def test_shipped_packages_are_accepted_by_all(capsys, dialogue, policy):
    from npc_runtime.agent.policy_model import OnnxPolicyModel

    assert _validate(capsys, dialogue)[0] == 0 and _serve_load(dialogue) is None
    assert _validate(capsys, policy)[0] == 0 and OnnxPolicyModel(policy).actions


def test_parent_traversal_is_refused_and_the_outside_file_is_never_read(capsys, dialogue, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the outside file")
    digest = sha256_of(secret)
    rewrite(dialogue, lambda m: m["files"].update({"../../secret.txt": digest}))
    err = _refused_by_both(capsys, dialogue, "path", "../../secret.txt")
    assert digest not in err


def test_absolute_path_is_refused(capsys, dialogue):
    rewrite(dialogue, lambda m: m["files"].update({"/etc/hostname": "0" * 64}))
    _refused_by_both(capsys, dialogue, "path", "/etc/hostname")


def test_symlink_leaving_the_package_is_refused(capsys, dialogue, tmp_path):
    outside = tmp_path / "outside-tokenizer.json"
    outside.write_bytes((dialogue / "tokenizer.json").read_bytes())   # same bytes: the hash would match
    (dialogue / "tokenizer.json").unlink()
    os.symlink(outside, dialogue / "tokenizer.json")
    _refused_by_both(capsys, dialogue, "file", "outside the package")


def test_symlinked_folder_leaving_the_package_is_refused(dialogue, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("x")
    os.symlink(elsewhere, dialogue / "sub")
    rewrite(dialogue, lambda m: m["files"].update({"sub/notes.txt": sha256_of(elsewhere / "notes.txt")}))
    with pytest.raises(PackageError) as info:
        check_package(dialogue)
    assert info.value.rule == "file"


def test_unlisted_scrambled_external_data_is_refused(capsys, dialogue):
    data = dialogue / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[1000:5000] = bytes(4000)
    data.write_bytes(bytes(raw))
    rewrite(dialogue, lambda m: m["files"].pop("model.onnx.data"))
    _refused_by_both(capsys, dialogue, "listing", "model.onnx.data")


def test_scrambled_listed_external_data_is_refused(capsys, dialogue):
    data = dialogue / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[-100:] = bytes(100)
    data.write_bytes(bytes(raw))
    _refused_by_both(capsys, dialogue, "hash", "model.onnx.data", "sha256")


def test_unlisted_model_onnx_is_refused(capsys, dialogue):
    rewrite(dialogue, lambda m: m["files"].pop("model.onnx"))
    _refused_by_both(capsys, dialogue, "listing", "model.onnx")


def test_external_data_location_leaving_the_package_is_refused(capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside.bin"), ("offset", "0"), ("length", "4")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["observations", "w"], ["action_logits"]),
                               helper.make_node("Identity", ["w"], ["confidence"])], "g",
                              [helper.make_tensor_value_info("observations", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("action_logits", TensorProto.FLOAT, [1]),
                               helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1])], [weight])
    (pkg / "model.onnx").write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                     .SerializeToString())
    (pkg / "policy.json").write_text('{"features": ["a"], "actions": ["idle"]}')
    (pkg / "manifest.json").write_text(json.dumps({
        "format_version": 1, "kind": "policy", "name": "p", "precision": "fp32", "target": "ort", "opset": 17,
        "inputs": [{"name": "observations"}], "outputs": [{"name": "action_logits"}, {"name": "confidence"}],
        "files": {n: sha256_of(pkg / n) for n in ("model.onnx", "policy.json")}}))
    _refused_by_both(capsys, pkg, "path", "../outside.bin")


def test_graph_io_must_match_the_manifest(capsys, policy):
    # a consistent manifest (the policy I/O rule holds) over a graph whose I/O differs is refused by both
    rewrite(policy, lambda m: m.update(opset=18))
    _refused_by_both(capsys, policy, "graph", "opset")


def test_policy_packages_get_the_same_checks(policy):
    from npc_runtime.agent.policy_model import OnnxPolicyModel

    spec = json.loads((policy / "policy.json").read_text())
    spec["actions"] = list(reversed(spec["actions"]))      # a silent swap of every action
    (policy / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ModelPackageError, match="sha256") as info:
        OnnxPolicyModel(policy)
    assert info.value.__cause__.rule == "hash"
    rehash(policy, "policy.json")
    rewrite(policy, lambda m: m["files"].pop("model.onnx"))
    with pytest.raises(ModelPackageError, match="model.onnx"):
        OnnxPolicyModel(policy)


def test_policy_loader_refuses_a_dialogue_package(dialogue):
    from npc_runtime.agent.policy_model import OnnxPolicyModel

    with pytest.raises(ModelPackageError, match="not a policy"):
        OnnxPolicyModel(dialogue)


def test_unlisted_extra_file_is_a_warning_only(capsys, dialogue):
    (dialogue / "README.txt").write_text("notes")
    code, err = _validate(capsys, dialogue)
    assert code == 0 and "README.txt is not listed" in err
    assert _serve_load(dialogue) is None


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_validate_and_the_runtime_agree_on_every_manifest_vector(capsys, tmp_path, case):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "manifest.json").write_text(case["text"], encoding="utf-8")
    code, err = _validate(capsys, pkg)
    cause = _serve_load(pkg)
    assert cause is not None  # the valid vectors list files this folder lacks
    assert code == (2 if cause.is_manifest_problem else 1) and str(cause) in err
    assert len(err.strip().splitlines()) == 1
    if case["expect"]["ok"]:
        assert cause.rule == "file"           # the manifest passed; its first listed file is missing
    else:
        assert (cause.rule, cause.field) == (case["expect"]["rule"], case["expect"]["field"])
