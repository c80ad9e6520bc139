"""Requests as policies see them, and the simulator's private per-request state."""

from __future__ import annotations

import msgspec

__all__ = ["Job", "Request", "RunningRequest"]


class Request(msgspec.Struct, frozen=True, repr_omit_defaults=True):
    """A request as a policy sees it: never its true output length.

    ``id`` is the request's index in the trace; ``num_prefill_tokens`` its prompt length.
    ``prefix_id`` names the prefix its prompt starts with (a conversation, a system prompt;
    ``-1``: none) and ``prefix_len`` how many leading prompt tokens it shares with it (see
    :mod:`glia.sim._prefix`).
    """

    id: int
    arrived_at: float
    num_prefill_tokens: int
    prefix_id: int = -1
    prefix_len: int = 0


class RunningRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a request admitted on a replica (holding KV blocks).

    ``num_processed_tokens`` counts the tokens in its KV cache (prompt processed so far plus the
    output generated in this pass, and the token being decoded while an iteration is under way),
    so it takes ``ceil(num_processed_tokens / block_size)`` blocks once past its prefill;
    ``num_generated_tokens`` counts output tokens produced so far,
    including those produced before a restart; ``in_prefill`` is true until its prompt (and any
    recomputed output after a restart) has been processed.
    """

    request: Request
    num_processed_tokens: int
    num_generated_tokens: int
    num_allocated_blocks: int
    in_prefill: bool
    num_restarts: int


class Job:
    """The simulator's mutable state of one request. Never handed to a policy."""

    __slots__ = (
        "arrived_at",
        "blocks",
        "completed_at",
        "end_it",
        "id",
        "output",
        "phase",
        "prefill_done_at",
        "prefilled",
        "prompt",
        "remaining",
        "replica",
        "req",
        "restarts",
        "scheduled_at",
        "shared",
        "start_it",
    )

    def __init__(self, req: Request, output: int) -> None:
        self.req = req
        self.id = req.id
        self.arrived_at = req.arrived_at
        self.output = output  # true output length: hidden from policies
        self.prompt = req.num_prefill_tokens  # tokens to prefill in this pass (grows on restart)
        self.remaining = output  # output tokens still to produce
        self.prefilled = 0  # prompt tokens of this pass processed so far
        self.blocks = 0  # KV blocks held while prefilling (decoders: derived, see Replica)
        self.shared = 0  # whole prompt blocks shared with a cached prefix (not its own)
        self.start_it = 0  # replica iteration of this pass's first decode step
        self.end_it = 0  # replica iteration of the last decode step
        self.phase = 0  # iteration residue at which a decode step needs a new block
        self.replica = -1
        self.restarts = 0
        self.scheduled_at = -1.0
        self.prefill_done_at = -1.0
        self.completed_at = -1.0
