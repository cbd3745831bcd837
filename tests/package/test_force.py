"""`npcrt export --force` replaces a model package or an empty folder, never a folder of other files."""

from __future__ import annotations

import json
import shutil

import pytest

from npc_export.errors import OutputError
from npc_export.package import PackageWriter
from npc_runtime.builtin_packages import HERE as BUILTINS


def _write_policy(out, *, force: bool) -> None:
    src = BUILTINS / "npc-policy"
    manifest = json.loads((src / "manifest.json").read_text())
    with PackageWriter(out, force=force) as writer:
        for name in ("model.onnx", "policy.json"):
            shutil.copy2(src / name, writer.dir / name)
        writer.commit(manifest)


def test_force_refuses_a_folder_that_is_not_a_package(tmp_path):
    out = tmp_path / "my-documents"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    with pytest.raises(OutputError, match="not a model package") as info:
        _write_policy(out, force=True)
    assert str(out) in str(info.value)
    assert (out / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-documents"]   # no temp folder left


def test_force_refuses_a_folder_with_a_broken_manifest(tmp_path):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "manifest.json").write_text("{ not json")
    (out / "data.bin").write_bytes(b"x")
    with pytest.raises(OutputError, match="not a model package"):
        _write_policy(out, force=True)
    assert (out / "data.bin").exists()


def test_force_replaces_a_package_and_fills_an_empty_folder(tmp_path):
    out = tmp_path / "pkg"
    out.mkdir()
    _write_policy(out, force=False)                     # empty folder: no --force needed
    (out / "stale.txt").write_text("from an older export")
    with pytest.raises(OutputError, match="--force"):
        _write_policy(out, force=False)
    _write_policy(out, force=True)                      # a package is replaced whole
    assert not (out / "stale.txt").exists() and (out / "manifest.json").is_file()


def test_writer_refuses_to_commit_a_package_its_reader_refuses(tmp_path):
    from npc_export.errors import PackageInvalid

    src = BUILTINS / "npc-policy"
    manifest = json.loads((src / "manifest.json").read_text())
    with pytest.raises(PackageInvalid, match="policy.json"):
        with PackageWriter(tmp_path / "pkg") as writer:
            shutil.copy2(src / "model.onnx", writer.dir / "model.onnx")   # policy.json forgotten
            writer.commit(manifest)
    assert list(tmp_path.iterdir()) == []
