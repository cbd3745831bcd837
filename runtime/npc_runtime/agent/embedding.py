"""A local text embedding with no download: hashed character n-grams (feature hashing) into 256 dims.

Lower-cased words padded with spaces give character 3- and 4-grams; each n-gram adds ±1 at a bucket
chosen by a stable hash (blake2b, not Python's salted hash, so embeddings stored in SQLite stay valid
across processes). The vector is L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

EMBEDDING_DIM = 256
_WORD = re.compile(r"[a-z0-9']+")


def _ngrams(text: str):
    for word in _WORD.findall(text.lower()):
        padded = f" {word} "
        for n in (3, 4):
            for i in range(len(padded) - n + 1):
                yield padded[i : i + n]


def embed(text: str, *, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """[dim] float32, unit length (all zeros for text with no words)."""
    vec = np.zeros(dim, dtype=np.float32)
    for gram in _ngrams(text):
        h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
