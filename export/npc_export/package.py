"""Model-package writer (docs/model-package.md): a temp directory renamed into place at the end,
sha256 of every file, manifest written last.

A directory named like a package with a `manifest.json` inside is always complete: the files are
written into `DIR.tmp-<random>`, the manifest goes in last, then one `os.rename` makes it `DIR`.
Any exception (Ctrl-C included) removes the temp directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.decode.package import read_manifest, sha256_of  # noqa: F401 - shared with the runtime

from . import __version__
from .errors import OutputError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
    11: "float64", 16: "bfloat16",
}


def hash_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative posix path."""
    out = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel != MANIFEST:
            out[rel] = sha256_of(file)
    return out


def _value_info(value) -> dict:
    tensor = value.type.tensor_type
    shape = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or "?")
    return {"name": value.name, "dtype": _ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": shape}


def graph_io(model_path: Path) -> tuple[list[dict], list[dict], int]:
    """(inputs, outputs, ai.onnx opset) read back from an ONNX file, without loading external data."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_value_info(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_value_info(v) for v in model.graph.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return inputs, outputs, int(opset)


@dataclass
class PackageWriter:
    """`with PackageWriter(out, force=...) as staging:` write files into `staging.dir`, then
    `staging.commit(manifest)`. Leaving the block without commit (or by an exception) removes it."""

    out_dir: Path
    force: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir).expanduser().absolute()
        self.dir: Path | None = None
        self.committed = False

    def __enter__(self) -> "PackageWriter":
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise OutputError(f"output {out} exists and is not a directory")
        if out.exists() and any(out.iterdir()) and not self.force:
            raise OutputError(f"output {out} already exists and is not empty; pass --force to replace it")
        parent = out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {parent}: {exc.strerror or exc}") from exc
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into {parent}: permission denied; choose another --out")
        self.dir = parent / f"{out.name}.tmp-{secrets.token_hex(4)}"
        try:
            self.dir.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write into {parent}: {exc.strerror or exc}") from exc
        return self

    def commit(self, manifest: dict) -> dict:
        """Hash every file, write manifest.json last, rename into place. Returns the manifest."""
        assert self.dir is not None, "commit() outside the with block"  # programming error, not input
        manifest = dict(manifest)
        manifest.setdefault("format_version", FORMAT_VERSION)
        manifest.setdefault("exporter_version", __version__)
        manifest.setdefault("created_unix", int(time.time()))
        manifest["files"] = hash_files(self.dir)
        tmp_manifest = self.dir / (MANIFEST + ".part")
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp_manifest, self.dir / MANIFEST)
        old = None
        if self.out_dir.exists():
            old = self.out_dir.parent / f"{self.out_dir.name}.old-{secrets.token_hex(4)}"
            os.rename(self.out_dir, old)
        try:
            os.rename(self.dir, self.out_dir)
        except OSError as exc:
            if old is not None:
                os.rename(old, self.out_dir)
            raise OutputError(f"cannot move the package into {self.out_dir}: {exc.strerror or exc}") from exc
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.committed = True
        self.dir = self.out_dir
        return manifest

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.committed and self.dir is not None and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        return False
