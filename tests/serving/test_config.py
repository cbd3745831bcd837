"""ServerConfig: defaults, TOML/YAML files, CLI overrides, clear errors; `npcrt serve` bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.auth import check_bearer
from npc_runtime.serving.config import ServerConfig, load_config


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(None)
    assert (cfg.port, cfg.http_port, cfg.token) == (50051, 8000, None)
    (tmp_path / "s.toml").write_text('[server]\nport = 6000\ntoken = "t"\nmodels = ["pkg"]\n'
                                     '[engine]\nmax_sessions = 8\n')
    cfg = load_config(tmp_path / "s.toml", port=7000, token=None)
    assert (cfg.port, cfg.token, cfg.engine) == (7000, "t", {"max_sessions": 8})
    assert cfg.models == (str(tmp_path / "pkg"),)
    (tmp_path / "s.yaml").write_text("server:\n  http_port: -1\n  grace_s: 2.5\n")
    cfg = load_config(tmp_path / "s.yaml")
    assert (cfg.http_port, cfg.grace_s) == (-1, 2.5)


@pytest.mark.parametrize("text,match", [
    ("[server]\nprot = 1\n", "unknown server keys"),
    ("[server]\nport = 70000\n", "port"),
    ("[server\n", "not valid TOML"),
    ('[server]\ntls_cert = "a.pem"\n', "both tls_cert and tls_key"),
])
def test_bad_files_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=match):
        load_config(path)


def test_missing_file():
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_config("/nonexistent/server.toml")


def test_config_is_keyword_only():
    with pytest.raises(TypeError):
        ServerConfig(50051)  # type: ignore[misc]


def test_bearer_check():
    assert check_bearer("Bearer abc", "abc") is None
    assert check_bearer("bearer abc", "abc") is None
    assert "missing" in check_bearer(None, "abc")
    assert "missing" in check_bearer("Basic abc", "abc")
    assert "wrong" in check_bearer("Bearer abd", "abc")


@pytest.mark.parametrize("args,match", [
    (["--model", "/nonexistent/pkg"], "does not exist"),
    ([], "no model given"),
    (["--model", "."], "not a model package"),
    (["--model", ".", "--config", "/nonexistent.toml"], "cannot read"),
])
def test_serve_bad_input_is_one_line_exit_2(args, match):
    proc = subprocess.run([sys.executable, "-m", "npc_runtime.cli", "serve", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_serving_imports_without_torch():
    code = ("import sys; import npc_runtime.serving.server, npc_runtime.serving.http_api, "
            "npc_runtime.serving.cli_serve, npc_runtime.serving.engine_port; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _serve_fails(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "npc_runtime.cli", "serve", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_corrupt_package_and_busy_port(tiny_package, tmp_path):
    import shutil
    import socket

    broken = tmp_path / "broken"
    shutil.copytree(tiny_package, broken)
    with (broken / "tokenizer.json").open("a") as f:
        f.write(" ")
    assert "sha256 mismatch" in _serve_fails("--model", str(broken), "--http-port", "-1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        message = _serve_fails("--model", str(tiny_package), "--host", "127.0.0.1", "--port", str(port),
                               "--http-port", "-1", "--no-agent")
        assert f"127.0.0.1:{port}" in message
