"""A router's own record of the prompt prefixes it sent to each replica.

Behind scraped engine metrics (``metrics_interval_s`` above 0) a router cannot read a replica's
prefix cache (``ReplicaView.cached_prefix`` raises): like llm-d's approximate prefix-cache scorer
and SGLang's router tree, it remembers which prefixes it routed where and assumes they are
still cached there, least recently routed first out when an optional block budget is full.
"""

from __future__ import annotations

from collections import OrderedDict

from glia.sim import ReplicaView, Request

__all__ = ["PrefixIndex", "cached_tokens"]


class PrefixIndex:
    """Per replica id: prefix id -> prompt tokens routed there under it, LRU within
    ``capacity_blocks`` per replica (None: unbounded)."""

    __slots__ = ("_by_replica", "capacity_blocks")

    def __init__(self, capacity_blocks: int | None = None) -> None:
        self.capacity_blocks = capacity_blocks
        self._by_replica: dict[int, OrderedDict[int, int]] = {}

    def estimate(self, replica: ReplicaView, req: Request) -> int:
        """Prompt tokens of ``req`` the index expects ``replica`` to have cached."""
        if req.prefix_id < 0 or req.prefix_len <= 0:
            return 0
        entries = self._by_replica.get(replica.id)
        tokens = entries.get(req.prefix_id, 0) if entries is not None else 0
        return min(tokens, req.prefix_len, req.num_prefill_tokens - 1)

    def record(self, replica: ReplicaView, req: Request) -> None:
        """``req`` was routed to ``replica``: its prompt will be cached there."""
        if req.prefix_id < 0:
            return
        entries = self._by_replica.setdefault(replica.id, OrderedDict())
        entries[req.prefix_id] = max(entries.pop(req.prefix_id, 0), req.num_prefill_tokens)
        cap = self.capacity_blocks
        if cap is not None:
            bs = replica.block_size
            while len(entries) > 1 and sum(-(-t // bs) for t in entries.values()) > cap:
                entries.popitem(last=False)


def cached_tokens(replica: ReplicaView, req: Request, index: PrefixIndex) -> int:
    """The replica's own answer when the router can read it, else the index's estimate."""
    if replica.stale_fields:
        return index.estimate(replica, req)
    return replica.cached_prefix(req)
