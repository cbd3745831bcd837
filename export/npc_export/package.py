"""Model-package writer (docs/model-package.md): a temp directory renamed into place at the end,
sha256 of every file, manifest written last.

A directory named like a package with a `manifest.json` inside is always complete: the files are
written into `DIR.tmp-<random>`, the manifest goes in last, then one `os.rename` makes it `DIR`.
Any exception (Ctrl-C, and SIGTERM / SIGHUP through interrupt.py) removes the temp directory.

A writer holds an advisory lock (flock) on its temp directory while it lives, and the kernel drops the
lock when the process dies however it dies. So a `DIR.tmp-<hex>` / `DIR.old-<hex>` that nobody holds is
the leftover of a crashed or killed export: the next export to the same DIR removes it and says so; one
that is locked belongs to an export still running and is left alone (and reported).

File modes: every file is `file_mode` (default 0644) and every directory the same plus search bits
(0755), minus the process umask, like any file the process creates. Lower layers write some files
0600 (the quantizer's temp files); a package is meant to be read by another account (the server).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from npc_package import FORMAT_VERSION, MANIFEST_FILE, PackageError, check_package, is_package_dir, sha256_of
from npc_package import read_manifest  # noqa: F401 - re-exported for callers of the exporter

from . import __version__
from .errors import InvalidOptions, OutputError, PackageInvalid
from .interrupt import check_interrupted

MANIFEST = MANIFEST_FILE
DEFAULT_FILE_MODE = 0o644  # world-readable: the serving account is often not the exporting one

_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
    11: "float64", 16: "bfloat16",
}


def hash_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative posix path (symlinks are
    refused: a package holds its own files)."""
    links = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink())
    if links:
        raise OutputError(f"the package would hold symlinks ({', '.join(links)}); a package holds its own files")
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


def check_file_mode(mode: int) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777 or not mode & 0o400:
        shown = oct(mode) if isinstance(mode, int) and not isinstance(mode, bool) else repr(mode)
        raise InvalidOptions(f"file mode {shown} is not a permission mode the owner can read "
                             "(e.g. 0o644, 0o640, 0o600)")
    return mode


def dir_mode_for(file_mode: int) -> int:
    """The directory mode that goes with a file mode: whoever may read may also enter (0644 -> 0755)."""
    return file_mode | ((file_mode & 0o444) >> 2)


def current_umask() -> int:
    """The process umask, read without changing it where the OS shows it (os.umask() can only set)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # set-and-restore: only where /proc does not say
    os.umask(mask)
    return mask


def apply_modes(root: Path, file_mode: int = DEFAULT_FILE_MODE) -> None:
    """chmod every file under root (root included) to file_mode, directories to dir_mode_for(file_mode),
    both minus the umask."""
    umask = current_umask()
    fmode, dmode = file_mode & ~umask, dir_mode_for(file_mode) & ~umask
    os.chmod(root, dmode)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, dmode if path.is_dir() else fmode)


def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on the directory; None when another process holds it, or
    where there is no flock (Windows: clean_stale then only reports leftovers, never removes them)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _has_flock() -> bool:
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return True


def clean_stale(out_dir: Path) -> list[str]:
    """Remove `DIR.tmp-<hex>` / `DIR.old-<hex>` beside out_dir that no live export holds; returns one
    message per leftover found (removed, or left with the reason)."""
    pattern = re.compile(re.escape(out_dir.name) + r"\.(tmp|old)-[0-9a-f]{8}")
    messages = []
    try:
        siblings = sorted(p for p in out_dir.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir())
    except OSError:
        return messages
    for leftover in siblings:
        if not _has_flock():
            messages.append(f"found {leftover} from an earlier export; remove it if no export is running")
            continue
        fd = _try_lock(leftover)
        if fd is None:
            messages.append(f"left {leftover}: another export is writing it")
            continue
        try:
            shutil.rmtree(leftover)
            messages.append(f"removed {leftover}, left by an earlier export that was killed")
        except OSError as exc:
            messages.append(f"could not remove {leftover} left by an earlier export: {exc.strerror or exc}")
        finally:
            os.close(fd)
    return messages


@dataclass
class PackageWriter:
    """`with PackageWriter(out, force=...) as staging:` write files into `staging.dir`, then
    `staging.commit(manifest)`. Leaving the block without commit (or by an exception) removes it.
    `notes`: what the writer found beside `out` (stale temp folders removed or left)."""

    out_dir: Path
    force: bool = False
    file_mode: int = DEFAULT_FILE_MODE

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir).expanduser().absolute()
        check_file_mode(self.file_mode)
        self.dir: Path | None = None
        self.committed = False
        self.notes: list[str] = []
        self._lock: int | None = None

    def __enter__(self) -> "PackageWriter":
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise OutputError(f"output {out} exists and is not a directory")
        if out.exists() and any(out.iterdir()):
            if not self.force:
                raise OutputError(f"output {out} already exists and is not empty; pass --force to replace it")
            if not is_package_dir(out):
                # --force replaces a model package, never a folder of the user's own files (a typo in --out)
                raise OutputError(f"output {out} is not a model package (no manifest.json this exporter can read) "
                                  "and is not empty; --force only replaces a model package or an empty folder: "
                                  "choose another --out, or remove the folder yourself")
        parent = out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {parent}: {exc.strerror or exc}") from exc
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into {parent}: permission denied; choose another --out")
        self.notes = clean_stale(out)
        self.dir = parent / f"{out.name}.tmp-{secrets.token_hex(4)}"
        try:
            self.dir.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write into {parent}: {exc.strerror or exc}") from exc
        self._lock = _try_lock(self.dir)
        return self

    def commit(self, manifest: dict) -> dict:
        """Set file modes, hash every file, write manifest.json last, rename into place. Returns the manifest."""
        assert self.dir is not None, "commit() outside the with block"  # programming error, not input
        check_interrupted()   # a signal whose exception a finalizer swallowed still stops the commit
        manifest = dict(manifest)
        manifest.setdefault("format_version", FORMAT_VERSION)
        manifest.setdefault("exporter_version", __version__)
        manifest.setdefault("created_unix", int(time.time()))
        manifest["files"] = hash_files(self.dir)
        tmp_manifest = self.dir / (MANIFEST + ".part")
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp_manifest, self.dir / MANIFEST)
        try:  # the reader's own check, before the package takes its place (hashes were just computed)
            check_package(self.dir, verify_hashes=False)
        except PackageError as exc:
            raise PackageInvalid(f"the exporter wrote a package its reader refuses: {exc.detail}") from exc
        apply_modes(self.dir, self.file_mode)
        check_interrupted()   # (again: one may have arrived while hashing and checking)
        old = old_lock = None
        if self.out_dir.exists():
            # locked before the rename, so that a concurrent export's clean_stale leaves it to us
            old_lock = _try_lock(self.out_dir)
            old = self.out_dir.parent / f"{self.out_dir.name}.old-{secrets.token_hex(4)}"
            os.rename(self.out_dir, old)
        try:
            try:
                os.rename(self.dir, self.out_dir)
            except OSError as exc:
                if old is not None:
                    os.rename(old, self.out_dir)
                raise OutputError(f"cannot move the package into {self.out_dir}: {exc.strerror or exc}") from exc
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if old_lock is not None:
                os.close(old_lock)
        self.committed = True
        self.dir = self.out_dir
        return manifest

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if not self.committed and self.dir is not None and self.dir.exists():
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None
        return False
