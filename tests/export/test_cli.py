"""`npcrt export` / `npcrt validate`: one-line errors, non-zero exit, no traceback, --json."""

import json

from npc_runtime.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def test_export_and_validate_json(tmp_path, tiny_models, capsys):
    out_dir = tmp_path / "pkg"
    code, out, err = _run(capsys, "export", "--model", str(tiny_models("llama")), "--out", str(out_dir),
                          "--target", "portable", "--context", "16", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] and summary["target"] == "portable" and summary["validation"]["passed"]
    assert summary["files"]["model.onnx"] > 0
    code, out, err = _run(capsys, "validate", str(out_dir), "--json")
    assert code == 0 and json.loads(out)["ok"]
    code, out, err = _run(capsys, "validate", str(out_dir))
    assert code == 0 and "valid" in out


def _broken_dirs(tmp_path, tiny_models):
    import shutil

    good = tiny_models("llama")
    cases = {}
    cases["missing"] = (tmp_path / "nope", "does not exist")
    no_config = tmp_path / "no-config"
    shutil.copytree(good, no_config)
    (no_config / "config.json").unlink()
    cases["no-config"] = (no_config, "config.json is missing")
    bad_json = tmp_path / "bad-json"
    shutil.copytree(good, bad_json)
    (bad_json / "config.json").write_text("{not json")
    cases["bad-json"] = (bad_json, "not valid JSON")
    bert = tmp_path / "bert"
    shutil.copytree(good, bert)
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    cases["unsupported"] = (bert, "supported: llama")
    no_weights = tmp_path / "no-weights"
    shutil.copytree(good, no_weights)
    (no_weights / "model.safetensors").unlink()
    cases["no-weights"] = (no_weights, "no weights")
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:1000])
    cases["truncated"] = (truncated, "corrupt")
    return cases


def test_bad_sources_fail_cleanly(tmp_path, tiny_models, capsys):
    for name, (src, expected) in _broken_dirs(tmp_path, tiny_models).items():
        out_dir = tmp_path / f"out-{name}"
        code, out, err = _run(capsys, "export", "--model", str(src), "--out", str(out_dir))
        assert code != 0, name
        assert expected in err, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert not out_dir.exists()


def test_impossible_and_unwritable(tmp_path, tiny_models, capsys):
    src = str(tiny_models("llama"))
    code, _, err = _run(capsys, "export", "--model", src, "--out", str(tmp_path / "a"), "--precision", "int4",
                        "--target", "portable")
    assert code != 0 and "int4 + portable" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = _run(capsys, "export", "--model", src, "--out", str(blocker / "pkg"))
    assert code != 0 and "cannot" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "export", "--model", "builtin:npc-nothing", "--out", str(tmp_path / "b"))
    assert code != 0 and "builtin:npc-dialogue" in err


def test_interrupted_export_leaves_nothing(tmp_path, tiny_models, capsys, monkeypatch):
    from npc_export import portable_profile

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(portable_profile, "build_portable", interrupted)
    out_dir = tmp_path / "pkg"
    code, _, err = _run(capsys, "export", "--model", str(tiny_models("llama")), "--out", str(out_dir),
                        "--target", "portable")
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_validate_reports_bad_package(tmp_path, capsys):
    code, out, err = _run(capsys, "validate", str(tmp_path))
    assert code == 2 and "manifest.json" in err  # 2: no / malformed manifest (docs/package.md)
