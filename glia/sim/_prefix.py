"""A replica's KV prefix cache: which prompt prefixes it holds, evicted least recently used.

A request may name a prefix (``Request.prefix_id``, e.g. a conversation or a shared system
prompt) and how many leading tokens of its prompt it shares with it (``prefix_len``). When a
request completes, its prompt and output are cached under its prefix id, so the next turn of
a conversation (whose ``prefix_len`` is the previous turn's prompt plus output) finds it all.
On admission a request skips the prefill of ``min(cached, prefix_len, prompt - 1)`` tokens:
at least one prompt token is always computed, to produce the first output token.

The model keeps cached prefixes in a budget of KV blocks beside the running requests (vLLM keeps
them in free blocks and drops them when memory is needed); a hit's blocks still count as the
request's own, so memory pressure is modelled as without caching.
"""

from __future__ import annotations

from collections import OrderedDict

from ._request import Request

__all__ = ["PrefixCache"]


class PrefixCache:
    """Cached prefix lengths (tokens) by prefix id, within ``capacity`` blocks, LRU first out."""

    __slots__ = ("_entries", "block_size", "capacity", "used")

    def __init__(self, capacity: int, block_size: int) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self.used = 0  # blocks held by the entries
        self._entries: OrderedDict[int, int] = OrderedDict()

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def peek(self, req: Request) -> int:
        """Tokens of ``req``'s prompt this cache would serve now (no effect on eviction order)."""
        if req.prefix_id < 0 or req.prefix_len <= 0:
            return 0
        cached = self._entries.get(req.prefix_id, 0)
        return min(cached, req.prefix_len, req.num_prefill_tokens - 1)

    def hit(self, req: Request) -> int:
        """Like :meth:`peek`, and mark the prefix as just used."""
        tokens = self.peek(req)
        if tokens:
            self._entries.move_to_end(req.prefix_id)
        return tokens

    def insert(self, prefix_id: int, tokens: int) -> None:
        """Cache ``tokens`` tokens under ``prefix_id`` (keeping a longer entry), then evict the
        least recently used entries until the cache fits its capacity."""
        old = self._entries.pop(prefix_id, 0)
        self.used -= self._blocks(old)
        tokens = max(tokens, old)
        if self._blocks(tokens) > self.capacity:
            return  # larger than the whole cache: not kept
        self._entries[prefix_id] = tokens
        self.used += self._blocks(tokens)
        while self.used > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.used -= self._blocks(evicted)

    def __len__(self) -> int:
        return len(self._entries)
