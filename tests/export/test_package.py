"""Package writer (atomic, hashed) and `validate_package` (hashes, I/O, forbidden ops)."""

import json
import shutil

import onnx
import pytest
from onnx import helper

from npc_export import ExportError, export_model, validate_package
from npc_export.package import MANIFEST, sha256_of


@pytest.fixture(scope="module")
def portable_pkg(tmp_path_factory, tiny_models):
    from tests.export.conftest import FAST_VALIDATION

    out = tmp_path_factory.mktemp("pkgs") / "portable"
    return export_model(tiny_models("llama"), out, target="portable", context_length=32, progress=False,
                        validation=FAST_VALIDATION).out_dir


def _copy(pkg, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(pkg, dst)
    return dst


def _rehash(pkg):
    manifest = json.loads((pkg / MANIFEST).read_text())
    manifest["files"] = {name: sha256_of(pkg / name) for name in manifest["files"]}
    (pkg / MANIFEST).write_text(json.dumps(manifest))


def test_every_file_is_hashed(portable_pkg):
    manifest = json.loads((portable_pkg / MANIFEST).read_text())
    on_disk = {p.name for p in portable_pkg.iterdir() if p.name != MANIFEST}
    assert set(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert sha256_of(portable_pkg / name) == digest
    assert not list(portable_pkg.parent.glob("*.tmp-*"))


def test_tampered_file_is_caught(portable_pkg, tmp_path):
    pkg = _copy(portable_pkg, tmp_path)
    with open(pkg / "tokenizer.json", "a") as handle:
        handle.write(" ")
    report = validate_package(pkg)
    assert not report.ok
    assert any("tokenizer.json" in e and "sha256" in e for e in report.errors)


def test_missing_file_is_caught(portable_pkg, tmp_path):
    pkg = _copy(portable_pkg, tmp_path)
    (pkg / "model.fixed.onnx").unlink()
    report = validate_package(pkg)
    assert any("model.fixed.onnx" in e and "missing" in e for e in report.errors)


@pytest.mark.parametrize("op,domain", [("QuantizeLinear", ""), ("FusedMatMul", "com.microsoft"), ("Loop", "")])
def test_forbidden_op_is_named(portable_pkg, tmp_path, op, domain):
    pkg = _copy(portable_pkg, tmp_path)
    model = onnx.load(str(pkg / "model.onnx"))
    model.graph.node.append(helper.make_node(op, ["logits"], ["sneaky_out"], name="sneaky_node", domain=domain))
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    onnx.save(model, str(pkg / "model.onnx"))
    _rehash(pkg)  # hashes fine: only the profile check can catch it
    report = validate_package(pkg)
    assert not report.ok
    assert any("sneaky_node" in e and op in e for e in report.errors), report.errors


def test_io_mismatch_is_caught(portable_pkg, tmp_path):
    pkg = _copy(portable_pkg, tmp_path)
    manifest = json.loads((pkg / MANIFEST).read_text())
    manifest["inputs"][0]["name"] = "tokens"
    (pkg / MANIFEST).write_text(json.dumps(manifest))
    assert any("inputs" in e for e in validate_package(pkg).errors)


def test_not_a_package(tmp_path):
    report = validate_package(tmp_path)
    assert not report.ok and "manifest.json" in report.errors[0]


def test_existing_output_needs_force(tmp_path, tiny_models, fast_validation):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="--force"):
        export_model(tiny_models("llama"), out, target="portable", progress=False, validation=fast_validation)
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces model packages only: a folder of the user's files is never deleted
    with pytest.raises(ExportError, match="not a model package"):
        export_model(tiny_models("llama"), out, target="portable", context_length=16, progress=False, force=True,
                     validation=fast_validation)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    export_model(tiny_models("llama"), out, target="portable", context_length=16, progress=False, force=True,
                 validation=fast_validation)
    assert (out / MANIFEST).is_file()
    export_model(tiny_models("llama"), out, target="portable", context_length=16, progress=False, force=True,
                 validation=fast_validation)  # a package replaces a package
    assert (out / MANIFEST).is_file()


def test_failed_export_leaves_nothing(tmp_path, tiny_models, monkeypatch):
    from npc_export import portable_profile

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(portable_profile, "build_portable", boom)
    with pytest.raises(KeyboardInterrupt):
        export_model(tiny_models("llama"), tmp_path / "pkg", target="portable", progress=False, validate=False)
    assert list(tmp_path.iterdir()) == []
