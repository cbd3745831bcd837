"""Regenerates the code generated from proto/npc_proto/v1/*.proto.

    python proto/generate.py           # write Python (npc_proto/v1) and C# (unity_client/Runtime/Generated)
    python proto/generate.py --check   # exit 1 when the committed code differs from a fresh generation

Python uses grpcio-tools' bundled protoc (pinned in pyproject), so the output is reproducible.
C# needs the system `protoc` (Debian: apt-get install protobuf-compiler), because grpcio-tools does not
bundle the C# generator; only message code is generated for C#, the Unity client's gRPC calls are a
thin hand-written layer over Grpc.Core.Api's CallInvoker.
C++ is generated at build time by CMake from the same .proto files (unreal_client/core).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = sorted((PROTO_ROOT / "npc_proto" / "v1").glob("*.proto"))
CSHARP_OUT = ROOT / "unity_client" / "Runtime" / "Generated"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


def _protoc(args: list[str]) -> None:
    code = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{WELL_KNOWN}", *args, *map(str, PROTO_FILES)])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def _system_protoc(args: list[str]) -> None:
    exe = shutil.which("protoc")
    if exe is None:
        raise SystemExit("C# generation needs the system protoc: apt-get install protobuf-compiler")
    rel = [str(p.relative_to(PROTO_ROOT)) for p in PROTO_FILES]
    subprocess.run([exe, f"-I{PROTO_ROOT}", *args, *rel], check=True)


def generate(py_out: Path, cs_out: Path) -> None:
    py_out.mkdir(parents=True, exist_ok=True)
    cs_out.mkdir(parents=True, exist_ok=True)
    _protoc([f"--python_out={py_out}", f"--pyi_out={py_out}", f"--grpc_python_out={py_out}"])
    _system_protoc([f"--csharp_out={cs_out}"])


def _generated_files(py_root: Path, cs_root: Path) -> dict[str, Path]:
    files = {f"py/{p.relative_to(py_root)}": p for p in (py_root / "npc_proto" / "v1").glob("*_pb2*.py*")}
    files.update({f"cs/{p.name}": p for p in cs_root.glob("*.cs")})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when committed code drifts from the .proto files")
    args = parser.parse_args(argv)
    if not args.check:
        generate(PROTO_ROOT, CSHARP_OUT)
        print(f"generated {len(PROTO_FILES)} proto files -> {PROTO_ROOT / 'npc_proto' / 'v1'}, {CSHARP_OUT}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_py, tmp_cs = Path(tmp) / "py", Path(tmp) / "cs"
        generate(tmp_py, tmp_cs)
        fresh = _generated_files(tmp_py, tmp_cs)
        committed = _generated_files(PROTO_ROOT, CSHARP_OUT)
        drift = sorted(set(fresh) ^ set(committed))
        drift += sorted(k for k in set(fresh) & set(committed) if not filecmp.cmp(fresh[k], committed[k], shallow=False))
    if drift:
        print("generated code drifts from the .proto files; run `python proto/generate.py`:", *drift, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
