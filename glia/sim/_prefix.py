"""A replica's KV prefix cache: which prompt prefixes it holds, evicted least recently used.

A request may name a prefix (``Request.prefix_id``, e.g. a conversation or a shared system
prompt) and how many leading tokens of its prompt it shares with it (``prefix_len``). When a
request completes, its prompt and output are cached under its prefix id, so the next turn of
a conversation (whose ``prefix_len`` is the previous turn's prompt plus output) finds it all.
A trace of *shared* prefixes (``Trace.shared_prefixes``: a system prompt or document that a
group of requests starts with) caches only the ``prefix_len`` tokens, as soon as a request's
prefill has computed them. On admission a request skips the prefill of
``min(cached, prefix_len, prompt - 1)`` tokens: at least one prompt token is always computed,
to produce the first output token.

The cache keeps prefixes in a budget of KV blocks beside the running requests. A hit *shares*
the entry's blocks: the ``hit // block_size`` whole blocks it reads are the entry's, not the
request's own (a partly filled last block is copied), so a hundred requests on one 14,000-token
system prompt hold its blocks once. Each entry counts the running requests that share it (its
references); an entry in use is never evicted, and its blocks go back to the budget when its
last user has finished and the entry is evicted, least recently used first, to make room for
another prefix.
"""

from __future__ import annotations

from collections import OrderedDict

from ._request import Request

__all__ = ["PrefixCache"]


class PrefixCache:
    """Cached prefix lengths (tokens) by prefix id, within ``capacity`` blocks, LRU first out,
    with a reference count per entry of the running requests that share its blocks."""

    __slots__ = ("_entries", "_refs", "block_size", "capacity", "used")

    def __init__(self, capacity: int, block_size: int) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self.used = 0  # blocks held by the entries
        self._entries: OrderedDict[int, int] = OrderedDict()
        self._refs: dict[int, int] = {}  # prefix id -> running requests sharing its blocks

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def peek(self, req: Request) -> int:
        """Tokens of ``req``'s prompt this cache would serve now (no effect on eviction order)."""
        if req.prefix_id < 0 or req.prefix_len <= 0:
            return 0
        cached = self._entries.get(req.prefix_id, 0)
        return min(cached, req.prefix_len, req.num_prefill_tokens - 1)

    def shared_blocks(self, req: Request) -> int:
        """Whole blocks of ``req``'s prompt it would share with this cache if admitted now."""
        return self.peek(req) // self.block_size

    def hit(self, req: Request) -> int:
        """Like :meth:`peek`, and mark the prefix as just used."""
        tokens = self.peek(req)
        if tokens:
            self._entries.move_to_end(req.prefix_id)
        return tokens

    def acquire(self, req: Request) -> tuple[int, int]:
        """Admit ``req``: its :meth:`hit` tokens and the whole blocks it shares; when it shares
        any, the entry gains a reference (give it back with :meth:`release`)."""
        tokens = self.hit(req)
        shared = tokens // self.block_size
        if shared:
            self._refs[req.prefix_id] = self._refs.get(req.prefix_id, 0) + 1
        return tokens, shared

    def release(self, prefix_id: int) -> None:
        """A request sharing ``prefix_id``'s blocks finished or was preempted."""
        left = self._refs[prefix_id] - 1
        if left < 0:  # pragma: no cover - an accounting bug, never a user's input
            raise AssertionError(f"prefix {prefix_id} released more often than acquired")
        if left:
            self._refs[prefix_id] = left
        else:
            del self._refs[prefix_id]

    def refs(self, prefix_id: int) -> int:
        """Running requests sharing ``prefix_id``'s blocks now."""
        return self._refs.get(prefix_id, 0)

    @property
    def pinned(self) -> int:
        """Blocks of entries in use by running requests (never evicted while in use)."""
        return sum(self._blocks(self._entries[p]) for p in self._refs)

    def insert(self, prefix_id: int, tokens: int) -> None:
        """Cache ``tokens`` tokens under ``prefix_id`` (keeping a longer entry), evicting the
        least recently used entries no running request shares until it fits; when it cannot
        fit, the entry keeps its old length (or, new, is not kept)."""
        old = self._entries.pop(prefix_id, 0)
        self.used -= self._blocks(old)
        want = max(tokens, old)
        need = self._blocks(want)
        if self.used + need > self.capacity:
            in_use = sum(self._blocks(t) for p, t in self._entries.items() if p in self._refs)
            if in_use + need > self.capacity:  # cannot fit without evicting entries in use
                want = old
            else:
                for p in [p for p in self._entries if p not in self._refs]:  # LRU first
                    if self.used + need <= self.capacity:
                        break
                    self.used -= self._blocks(self._entries.pop(p))
        if want:
            self._entries[prefix_id] = want
            self.used += self._blocks(want)

    def __len__(self) -> int:
        return len(self._entries)
