"""Writes the Unity .meta files of the unity_client package (git-installed packages are immutable: Unity
ignores assets without a committed .meta). GUIDs are derived from the package-relative path, so they are
stable and regenerating is idempotent.

    .venv/bin/python clients_test/unity/make_meta.py          # write missing / stale .meta files
    .venv/bin/python clients_test/unity/make_meta.py --check  # exit 1 when one is missing or stale
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "unity_client"
PACKAGE_NAME = "com.npcruntime.client"

TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
IMPORTERS = {
    ".cs": ("MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n"
            "  executionOrder: 0\n  icon: {instanceID: 0}\n"),
    ".asmdef": "AssemblyDefinitionImporter:\n  externalObjects: {}\n",
    ".json": "TextScriptImporter:\n  externalObjects: {}\n",
    ".md": "TextScriptImporter:\n  externalObjects: {}\n",
}
PACKAGE_MANIFEST = "PackageManifestImporter:\n  externalObjects: {}\n"
FOLDER = "folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n"


def guid_for(relative: str) -> str:
    return hashlib.md5(f"{PACKAGE_NAME}/{relative}".encode()).hexdigest()


def expected_metas() -> dict[Path, str]:
    """Every file and folder Unity imports: all but hidden entries and `Samples~` (copied on import)."""
    metas: dict[Path, str] = {}
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        if any(part.startswith(".") or part.endswith("~") for part in rel.parts) or path.suffix == ".meta":
            continue
        if path.is_dir():
            body = FOLDER
        elif rel.as_posix() == "package.json":
            body = PACKAGE_MANIFEST
        else:
            body = IMPORTERS.get(path.suffix, "DefaultImporter:\n  externalObjects: {}\n")
        metas[path.with_name(path.name + ".meta")] = f"fileFormatVersion: 2\nguid: {guid_for(rel.as_posix())}\n{body}{TAIL}"
    return metas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a .meta file is missing or stale")
    args = parser.parse_args(argv)
    metas = expected_metas()
    orphans = [p for p in PACKAGE.rglob("*.meta")
               if p not in metas and not any(part.endswith("~") for part in p.relative_to(PACKAGE).parts)]
    stale = [p for p, text in metas.items() if not p.exists() or p.read_text() != text]
    if args.check:
        if stale or orphans:
            print("Unity .meta files out of date (run clients_test/unity/make_meta.py):",
                  *(str(p.relative_to(ROOT)) for p in stale + orphans), sep="\n  ")
            return 1
        print(f"{len(metas)} .meta files up to date")
        return 0
    for path in stale:
        path.write_text(metas[path])
    for path in orphans:
        path.unlink()
    print(f"wrote {len(stale)} and removed {len(orphans)} .meta files under {PACKAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
