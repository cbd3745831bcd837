"""Prefix cache: sessions that share a prompt prefix (persona, system prompt) reuse its KV.

Block-wise, like vLLM's automatic prefix caching: the prompt is cut into blocks of `block_tokens`; each block
is keyed by a hash of ALL tokens from the start up to its end (so a key names a whole prefix) and stores
only that block's KV. A new session walks its prompt's blocks while they hit, copies their KV into its slot
and prefills only the rest. Entries are LRU, bounded in bytes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np


def _chain_keys(tokens: Sequence[int], block: int, count: int) -> list[bytes]:
    keys, digest = [], hashlib.blake2b(digest_size=16)
    for b in range(count):
        digest.update(np.asarray(tokens[b * block:(b + 1) * block], dtype=np.int64).tobytes())
        keys.append(digest.copy().digest())
    return keys


class PrefixCache:
    def __init__(self, *, max_bytes: int, block_tokens: int) -> None:
        self.max_bytes = max_bytes
        self.block_tokens = block_tokens
        self._entries: OrderedDict[bytes, list[np.ndarray]] = OrderedDict()   # key -> KV per pool [kv_heads, block, head_dim]
        self.bytes = 0
        self.hits = 0          # tokens served from the cache
        self.misses = 0        # prompt tokens looked up and not found
        self.evictions = 0

    def lookup(self, tokens: Sequence[int]) -> list[list[np.ndarray]]:
        """KV blocks of the longest cached prefix of `tokens` (whole blocks only)."""
        if self.max_bytes <= 0:
            return []
        found = []
        for key in _chain_keys(tokens, self.block_tokens, len(tokens) // self.block_tokens):
            blocks = self._entries.get(key)
            if blocks is None:
                break
            self._entries.move_to_end(key)
            found.append(blocks)
        self.hits += len(found) * self.block_tokens
        self.misses += len(tokens) - len(found) * self.block_tokens
        return found

    def missing_blocks(self, tokens: Sequence[int], upto: int) -> list[tuple[int, bytes]]:
        """(block index, key) of the blocks of tokens[:upto] not yet cached."""
        if self.max_bytes <= 0:
            return []
        keys = _chain_keys(tokens, self.block_tokens, upto // self.block_tokens)
        return [(b, k) for b, k in enumerate(keys) if k not in self._entries]

    def insert(self, key: bytes, blocks: list[np.ndarray]) -> None:
        size = sum(b.nbytes for b in blocks)
        if size > self.max_bytes or key in self._entries:
            return
        self._entries[key] = blocks
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= sum(b.nbytes for b in old)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)
