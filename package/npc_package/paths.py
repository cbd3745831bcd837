"""Path confinement: every file a package names stays inside the package directory.

Lexical rules (the C# and C++ readers apply the same ones, checked by the manifest vectors): a file name is
1..MAX_NAME_CHARS characters, '/'-separated, relative (no leading '/'), with no empty, '.' or '..'
component, no backslash, no ':' (Windows drive letters and alternate streams) and no control characters;
`manifest.json` itself is never listed. On disk (`resolve_inside`): the real path, symlinks followed, must
still lie inside the package's real directory, and be a regular file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PackageError

MAX_NAME_CHARS = 1024
MANIFEST_FILE = "manifest.json"
_FORBIDDEN_CHARS = frozenset("\\:" + "".join(chr(c) for c in range(0x20)) + "\x7f")


def name_problem(name: object) -> str | None:
    """Why `name` is not a safe package file name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    bad = sorted({ch for ch in name if ch in _FORBIDDEN_CHARS})
    if bad:
        return f"contains {', '.join(repr(ch) for ch in bad)} (names are '/'-separated, without ':' or control characters)"
    if name.startswith("/"):
        return "is absolute (names are relative to the package directory)"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component (names stay inside the package directory)"
    if name == MANIFEST_FILE:
        return "is the manifest itself (it is never listed)"
    return None


def check_name(name: object, *, field: str) -> str:
    """`name` when it is a safe package file name; PackageError(rule="path") naming the field otherwise."""
    problem = name_problem(name)
    if problem is not None:
        raise PackageError(f"manifest.json {field}: file name {name!r} {problem}", rule="path", field=field)
    return name  # type: ignore[return-value]


def real_root(root: str | Path) -> Path:
    return Path(os.path.realpath(root))


def resolve_inside(root: Path, name: str, *, field: str = "files") -> Path:
    """The real path of the listed file `name` under the real package directory `root`, after checking the
    name, that following its symlinks does not leave `root`, and that it is a regular file."""
    check_name(name, field=field)
    path = Path(os.path.realpath(root / name))
    if path != root and root not in path.parents:
        raise PackageError(f"{name} resolves to {path}, outside the package (a symlink leaves it); "
                           "copy the file into the package instead", rule="file", field=field)
    if not path.is_file():
        what = "missing" if not path.exists() else "not a regular file"
        raise PackageError(f"{name} is listed in manifest.json but {what}", rule="file", field=field)
    return path
