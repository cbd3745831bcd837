"""The Unity package compiles with Mono's mcs against the API shims and its tests pass under mono.

Runs `make -C clients_test unity` (see clients_test/unity/Makefile); CI installs mono-mcs and mono-runtime.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(shutil.which("mcs") is None or shutil.which("mono") is None,
                       reason="Mono not installed: apt-get install mono-mcs mono-runtime libmono-system-core4.0-cil"),
    pytest.mark.skipif(shutil.which("make") is None, reason="make not installed"),
]


def test_unity_package_compiles_and_its_tests_pass():
    result = subprocess.run(["make", "-s", "-C", str(ROOT / "clients_test"), "unity", f"PYTHON={sys.executable}"],
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    assert summary, output[-3000:]
    assert int(summary.group(2)) == 0 and int(summary.group(1)) >= 40, summary.group(0)


PACKAGE = ROOT / "unity_client"
EXTERNAL_ASSEMBLIES = {"Unity.InferenceEngine", "UnityEngine.TestRunner", "UnityEditor.TestRunner"}


def test_package_manifest_and_asmdefs_are_consistent():
    import json

    package = json.loads((PACKAGE / "package.json").read_text())
    assert package["name"] == "com.npcruntime.client" and package["unity"] == "6000.0"
    assert package["dependencies"]["com.unity.ai.inference"].startswith("2.")
    for sample in package["samples"]:
        assert (PACKAGE / sample["path"]).is_dir(), sample["path"]
    asmdefs = {p: json.loads(p.read_text()) for p in PACKAGE.rglob("*.asmdef")}
    names = {a["name"] for a in asmdefs.values()}
    assert {"NpcRuntime.Unity", "NpcRuntime.Unity.Editor", "NpcRuntime.Unity.Tests"} <= names
    for path, asmdef in asmdefs.items():
        unknown = set(asmdef["references"]) - names - EXTERNAL_ASSEMBLIES
        assert not unknown, f"{path.relative_to(ROOT)} references unknown assemblies {unknown}"


def test_unity_meta_files_are_complete():
    result = subprocess.run([sys.executable, str(ROOT / "clients_test" / "unity" / "make_meta.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
