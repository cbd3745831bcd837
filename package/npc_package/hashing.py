"""sha256 of package files, streamed (a package's weights may be larger than memory)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

CHUNK_BYTES = 1 << 20
DIGEST = re.compile(r"[0-9a-f]{64}")  # lowercase hex, as the exporter writes it


def sha256_of(path: str | Path, *, chunk: int = CHUNK_BYTES) -> str:
    """Lowercase hex sha256 of a file, read in `chunk`-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
