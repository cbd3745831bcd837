"""ServerConfig: defaults, TOML/YAML files, CLI overrides, clear errors; `npcrt serve` bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.auth import check_bearer
from npc_runtime.serving.config import ServerConfig
from npc_runtime.settings import load_settings


def test_layers_defaults_file_environment_flags(tmp_path):
    cfg = load_settings(None, env={})
    assert (cfg.server.port, cfg.server.http_port, cfg.server.token, cfg.server.host) == (50051, 8000, None, "127.0.0.1")
    assert cfg.memory_db == str(Path("npcrt-data") / "memory.sqlite3")
    (tmp_path / "s.toml").write_text('[server]\nport = 6000\ntoken = "t"\nmodels = ["pkg"]\n'
                                     '[engine]\nmax_sessions = 8\n[escalation]\nprovider = "openai"\n'
                                     '[budgets]\nglobal_cost_per_hour_usd = 2.5\n[memory]\nrelevance = 2.0\n')
    cfg = load_settings(tmp_path / "s.toml", env={"NPCRT_ESCALATION_PROVIDER": "anthropic", "NPCRT_TOKEN": "e"},
                        flags={"server.port@--port": 7000, "server.token": None})
    assert (cfg.server.port, cfg.server.token, cfg.engine.max_sessions) == (7000, "e", 8)
    assert cfg.server.models == (str(tmp_path / "pkg"),)
    assert cfg.agent.escalation.provider == "anthropic"          # environment over file
    assert cfg.agent.escalation.budget.global_cost_per_hour_usd == 2.5
    assert cfg.agent.retrieval.relevance == 2.0
    assert cfg.origins["server.port"] == "flag --port"
    (tmp_path / "s.yaml").write_text("server:\n  http_port: -1\n  grace_s: 2.5\nagent:\n  dialogue_max_tokens: 16\n")
    cfg = load_settings(tmp_path / "s.yaml", env={})
    assert (cfg.server.http_port, cfg.server.grace_s, cfg.agent.dialogue_max_tokens) == (-1, 2.5, 16)


@pytest.mark.parametrize("text,match", [
    ("[server]\nprot = 1\n", r"\[server\] unknown key\(s\) prot; known keys: .*port"),
    ("[server]\nport = 1\n[egnine]\nmax_sessions = 2\n", r"unknown table\(s\) \[egnine\]; known tables: \[server\]"),
    ("port = 1\n", r"unknown table\(s\) \[port\]"),
    ("[agent]\nescalation = 1\n", r"\[agent\] escalation belongs in its own table"),
    ("[agent]\nfoo = 1\n", r"\[agent\] unknown key\(s\) foo"),
    ("[server]\nport = 70000\n", r"\[server\] port must be an integer port 0-65535"),
    ("[server]\nport = \"x\"\n", r"\[server\] port must be an integer, got 'x'"),
    ("[server]\nagent_service = \"yes\"\n", r"agent_service must be true or false"),
    ("[engine]\nmax_sessions = 0\n", r"\[engine\] max_sessions must be >= 1"),
    ("[engine.default_sampling]\ntemperature = -1\n", r"temperature"),
    ("[escalation]\nprovider = \"gemini\"\n", r"provider must be one of local, openai, anthropic"),
    ("[escalation]\nconfidence_threshold = 3\n", r"confidence_threshold must be 0 to 1, got 3"),
    ("[escalation.provider_options]\nmodle = \"x\"\n", r"\[escalation.provider_options\] unknown key"),
    ("[budgets]\nglobal_calls_per_min = -1\n", r"\[budgets\] global_calls_per_min must be 0 to inf"),
    ("[budgets]\nglobal_cost_per_hour_usd = nan\n", r"global_cost_per_hour_usd must be a number"),
    ("[memory]\ndecay_per_hour = 2\n", r"\[memory\] decay_per_hour must be 0 to 1"),
    ("[memory]\npath = \"x\"\n", r"\[memory\] unknown key\(s\) path"),
    ("[server\n", "not valid TOML"),
    ('[server]\ntls_cert = "a.pem"\n', "both tls_cert and tls_key"),
])
def test_bad_files_name_the_file_the_key_and_what_is_allowed(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=match) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)


def test_environment_and_flag_errors_name_their_origin():
    with pytest.raises(InvalidArgument, match="environment NPCRT_ESCALATION_PROVIDER"):
        load_settings(None, env={"NPCRT_ESCALATION_PROVIDER": "gpt"})
    with pytest.raises(InvalidArgument, match="flag --max-sessions: \\[engine\\] max_sessions must be >= 1"):
        load_settings(None, env={}, flags={"engine.max_sessions@--max-sessions": 0})


def test_missing_file():
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_config_missing()


def load_config_missing():
    return load_settings("/nonexistent/server.toml", env={})


def test_shipped_example_config_loads_and_equals_the_defaults():
    """examples/npcrt.toml lists every key with its default (so it cannot silently drift from the code)."""
    example = Path(__file__).resolve().parents[2] / "examples" / "npcrt.toml"
    loaded = load_settings(example, env={}).to_tables()
    defaults = load_settings(None, env={}).to_tables()
    assert loaded == defaults
    text = example.read_text()
    for table, keys in defaults.items():
        assert f"[{table}]" in text
        for key, value in keys.items():
            if isinstance(value, dict):
                assert f"[{table}.{key}]" in text
                continue
            assert re.search(rf"^#? ?\"?{re.escape(key)}\"? =", text, re.M), f"[{table}] {key} missing from the example"


def test_print_config_masks_secrets():
    proc = subprocess.run([sys.executable, "-m", "npc_runtime.cli", "serve", "--print-config", "--token", "s3cret-token-value"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPENAI_API_KEY": "sk-abcdefghijklmnop", "OPENAI_BASE_URL": "http://x"})
    assert proc.returncode == 0, proc.stderr
    assert "s3cret-token-value" not in proc.stdout and "sk-abcdefghijklmnop" not in proc.stdout
    assert 'token = "s3c***ue"' in proc.stdout and "OPENAI_API_KEY = sk-***op" in proc.stdout
    import tomllib

    assert tomllib.loads(proc.stdout)["server"]["host"] == "127.0.0.1"


def test_exposed_address_needs_auth_or_insecure():
    proc = subprocess.run([sys.executable, "-m", "npc_runtime.cli", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "refusing to listen on 0.0.0.0 without --token or TLS" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


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
            "npc_runtime.serving.cli_serve, npc_runtime.sessions.facade; "
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
    message = _serve_fails("--model", str(broken), "--http-port", "-1")
    assert "tokenizer.json does not match its" in message and "sha256" in message and "corrupt" in message
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        message = _serve_fails("--model", str(tiny_package), "--host", "127.0.0.1", "--port", str(port),
                               "--http-port", "-1", "--no-agent")
        assert f"127.0.0.1:{port}" in message
