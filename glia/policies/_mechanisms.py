"""A catalogue of routing mechanisms, and the design source that composes a choice of them.

The offline designer searches over :class:`Mechanisms`; :func:`compose` writes the router a
researcher would write for that choice, as a readable, self-contained design file (it runs in
the sandbox like any other design). The mechanisms are the ones the Glia paper's routing study
turned on:

* **load score** — which replica is least loaded: requests in flight (LLQ), queued only (LOR),
  or KV blocks committed, optionally *projected* to grow by ``decode_ratio`` x the prompt;
* **queue order** — arrival order, or shortest prompt first, optionally with a *starvation
  bound*: a request that has waited ``starve_s`` seconds in the global queue goes before every
  younger one (arrival order among them), so shortest-first cannot starve long prompts (it
  reads only ``arrived_at`` and ``cluster.now``, which a real router knows), or *size-aware
  deadlines*: release in order of ``arrived_at + deadline_s x log2(prompt tokens + 1)``, so a
  short prompt passes a long one only while the long one has not waited ``deadline_s`` per
  doubling of the length difference (fair across sizes: nobody waits forever);
* **admission head-room** — route only to a replica that keeps ``headroom`` of its KV blocks
  free after the (projected) request; otherwise hold the request in the global queue;
* **hold** — when the next request fits nowhere, hold the whole queue until a completion
  (``True``), or let smaller requests behind it go first (``False``);
* **prefix affinity** — with prefix caching, send a request to the replica caching the most of
  its prompt if that is at least ``affinity`` of it and that replica has at most ``slack`` more
  requests in flight than the one the load score chose; behind scraped metrics (where an
  engine's cache cannot be read) it *tracks prefixes* itself: the router remembers which prefix
  ids it sent to each replica, the ``index_prefixes`` most recent per replica (0: all), and
  takes those as cached (llm-d's approximate prefix-cache scorer).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Mechanisms", "compose"]

LoadScore = Literal["outstanding", "queued", "kv"]
Order = Literal["arrival", "shortest-prompt"]


class Mechanisms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One point of the design space (the defaults are LLQ)."""

    score: LoadScore = "outstanding"
    order: Order = "arrival"
    decode_ratio: float = 0.0
    """Projected output tokens per prompt token, for the KV score and admission."""
    admission: bool = False
    headroom: float = 0.05
    """Fraction of a replica's blocks admission keeps free (with ``admission``)."""
    hold: bool = True
    affinity: float = 0.0
    """Fraction of the prompt a replica must have cached to attract the request (0: off)."""
    slack: int = 2
    """Extra requests in flight tolerated on the replica with the prefix (with ``affinity``)."""
    track_prefixes: bool = False
    """With ``affinity``: estimate cached prefixes from the router's own record of what it sent
    where instead of asking the replicas (works behind scraped metrics)."""
    index_prefixes: int = 0
    """With ``track_prefixes``: prefixes remembered per replica, least recently sent out first
    (0: all; set it near what a replica's cache holds)."""
    starve_s: float = 0.0
    """With shortest-prompt order: seconds in the global queue after which a request goes
    first, in arrival order (0: no bound)."""
    deadline_s: float = 0.0
    """With shortest-prompt order: seconds of slack per doubling of the prompt length; release
    by ``arrived_at + deadline_s x log2(prompt + 1)`` instead of shortest first (0: off;
    replaces ``starve_s``)."""

    def describe(self) -> str:
        """The mechanisms in a few words, e.g. for a trial's note."""
        parts = [f"score={self.score}", f"order={self.order}"]
        if self.order == "shortest-prompt" and self.deadline_s > 0:
            parts.append(f"deadline_s={self.deadline_s:g}")
        elif self.order == "shortest-prompt" and self.starve_s > 0:
            parts.append(f"starve_s={self.starve_s:g}")
        if self.score == "kv" or self.admission:
            parts.append(f"decode_ratio={self.decode_ratio:g}")
        if self.admission:
            parts.append(f"headroom={self.headroom:g}")
            parts.append("hold" if self.hold else "backfill")
        if self.affinity > 0:
            parts.append(f"affinity={self.affinity:g}, slack={self.slack}")
            if self.track_prefixes:
                parts.append(f"tracked prefixes (index {self.index_prefixes or 'all'})")
        return ", ".join(parts)


_SCORES = {
    "outstanding": "r.num_outstanding",
    "queued": "r.num_queued",
    "kv": "projected_blocks(r, GROW)",
}


def compose(m: Mechanisms, *, name: str = "Candidate") -> str:
    """Design source (a ``Router`` subclass called ``name``) implementing ``m``."""
    if not name.isidentifier():
        raise ValueError(f"router name {name!r} is not a Python identifier")
    order = (
        "sorted(cluster.queue, key=lambda q: (q.num_prefill_tokens, q.arrived_at, q.id))"
        if m.order == "shortest-prompt"
        else "cluster.queue"
    )
    deadline = m.order == "shortest-prompt" and m.deadline_s > 0
    starve = m.order == "shortest-prompt" and m.starve_s > 0 and not deadline
    if starve:  # waited long enough: first, in arrival order; the rest shortest-first
        order = "sorted(cluster.queue, key=lambda q: priority(q, cluster.now))"
    if deadline:  # size-aware but fair: a deadline that grows with log2 of the prompt
        order = "sorted(cluster.queue, key=deadline)"
    uses_blocks = m.score == "kv" or m.admission
    track = m.affinity > 0 and m.track_prefixes
    lines = [
        f'"""Router composed by the offline designer: {m.describe()}."""',
        "",
        "import math",
        *(["from collections import OrderedDict"] if track else []),
        "",
        "from glia.policies import Router",
        "",
        f"GROW = 1.0 + {m.decode_ratio!r}  # projected KV per prompt token (prompt + output)",
    ]
    if m.admission:
        lines.append(f"HEADROOM = {m.headroom!r}  # fraction of blocks kept free on admission")
    if starve:
        lines.append(f"STARVE_S = {m.starve_s!r}  # a request waiting this long goes first")
    if deadline:
        lines.append(f"DEADLINE_S = {m.deadline_s!r}  # slack per doubling of the prompt")
    if m.affinity > 0:
        lines.append(f"AFFINITY = {m.affinity!r}  # cached fraction of a prompt that attracts it")
        lines.append(f"SLACK = {m.slack!r}  # extra requests in flight tolerated for a prefix hit")
    if track:
        lines.append(f"INDEX = {m.index_prefixes!r}  # prefixes remembered per replica (0: all)")
    lines += [
        "",
        "",
        "def blocks(tokens, block_size):",
        "    return math.ceil(tokens / block_size)",
        "",
        "",
        "def projected_blocks(r, grow):",
        '    """Blocks in use now plus the projected blocks of the requests queued there."""',
        "    queued = sum(blocks(q.num_prefill_tokens * grow, r.block_size) for q in r.queue)",
        "    return r.num_allocated_blocks + queued",
        "",
        "",
    ]
    if deadline:
        lines += [
            "def deadline(q):",
            '    """Release order: arrival plus a slack that grows with log2 of the prompt."""',
            "    return (q.arrived_at + DEADLINE_S * math.log2(q.num_prefill_tokens + 1), q.id)",
            "",
            "",
        ]
    if starve:
        lines += [
            "def priority(q, now):",
            '    """Shortest prompt first, but a request that waited STARVE_S goes first."""',
            "    if now - q.arrived_at >= STARVE_S:",
            "        return (0, q.arrived_at, 0, q.id)",
            "    return (1, q.num_prefill_tokens, q.arrived_at, q.id)",
            "",
            "",
        ]
    if track:
        lines += [
            "def tracked(seen, r, req):",
            '    """Prompt tokens of req the router expects r to have cached: what it sent."""',
            "    if req.prefix_id < 0:",
            "        return 0",
            "    sent = seen.get(r.id, {}).get(req.prefix_id, 0)",
            "    return min(sent, req.prefix_len, req.num_prefill_tokens - 1)",
            "",
            "",
            "def remember(seen, r, req):",
            '    """req goes to r: its prefix is cached there next (least recent out)."""',
            "    if req.prefix_id < 0:",
            "        return",
            "    sent = seen.setdefault(r.id, OrderedDict())",
            "    sent[req.prefix_id] = max(sent.pop(req.prefix_id, 0), req.num_prefill_tokens)",
            "    while INDEX and len(sent) > INDEX:",
            "        sent.popitem(last=False)",
            "",
            "",
        ]
    lines += [
        f"class {name}(Router):",
    ]
    if track:
        lines += [
            "    def setup(self, cluster, rng):",
            "        super().setup(cluster, rng)",
            "        self.seen = {}  # replica id -> prefix id -> prompt tokens sent there",
            "",
        ]
    lines += [
        "    def schedule(self, cluster):",
        "        if not cluster.num_queued:",
        "            return []",
        "        reps = cluster.replicas",
        f"        load = [{_SCORES[m.score]} for r in reps]",
        "        inflight = [r.num_outstanding for r in reps]",
    ]
    if uses_blocks:
        lines.append("        used = [projected_blocks(r, GROW) for r in reps]")
    lines += [
        "        out = []",
        f"        for req in {order}:",
        "            fits = []",
        "            for i, r in enumerate(reps):",
    ]
    if m.admission:
        lines += [
            "                need = blocks(req.num_prefill_tokens * GROW, r.block_size)",
            "                empty = used[i] == 0 and r.num_outstanding == 0",
            "                # an empty replica takes even an oversized request: nothing else will",
            "                free = r.num_blocks - (used[i] + need)",
            "                if free < int(r.num_blocks * HEADROOM) and not empty:",
            "                    continue",
        ]
    lines += [
        "                fits.append(i)",
        "            if not fits:",
        "                "
        + ("break  # hold the queue until a completion" if m.hold else "continue"),
        "            best = min(fits, key=lambda i: (load[i], inflight[i], i))",
    ]
    if m.affinity > 0:
        lines += [
            "            hits = {i: "
            + ("tracked(self.seen, reps[i], req)" if track else "reps[i].cached_prefix(req)")
            + " for i in fits}",
            "            top = max(fits, key=lambda i: (hits[i], -inflight[i], -i))",
            "            if hits[top] >= AFFINITY * req.num_prefill_tokens and (",
            "                inflight[top] <= inflight[best] + SLACK",
            "            ):",
            "                best = top",
        ]
    lines += [
        "            out.append((best, req))",
        "            inflight[best] += 1",
    ]
    if track:
        lines.append("            remember(self.seen, reps[best], req)")
    if uses_blocks:
        lines.append("            used[best] += blocks(req.num_prefill_tokens * GROW, "
                     "reps[best].block_size)")  # fmt: skip
    if m.score == "kv":
        lines.append("            load[best] = used[best]")
    else:
        lines.append("            load[best] += 1")
    lines.append("        return out")
    return "\n".join(lines) + "\n"
