"""In CI the client tests must run, not skip: `.ci/run` installs Mono and the C++ gRPC toolchain."""

import os
import shutil
import subprocess

import pytest

TOOLS = ("mcs", "mono", "cmake", "g++", "pkg-config", "protoc", "grpc_cpp_plugin")


@pytest.mark.skipif(os.environ.get("CI", "").lower() not in ("1", "true"), reason="only enforced in CI (CI=true)")
def test_client_toolchains_are_installed_in_ci():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"install {missing} (see the apt line in .ci/run)"
    assert subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"]).returncode == 0
