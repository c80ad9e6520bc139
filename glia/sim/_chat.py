"""Multi-turn conversations: growing histories that a prefix cache can reuse.

Each request of a trace is a new user message (its prompt and output lengths); with ``turns``
> 1 the messages are threaded into conversations. A request continues an open conversation with
probability ``1 - 1/turns`` (else it opens a new one), and a conversation closes after each
turn with probability ``1/turns``, so conversations last ``turns`` turns on average. A turn's
prompt is the conversation so far (every earlier prompt and answer) plus its new message; its
``prefix_id`` is the conversation and its ``prefix_len`` the history it shares with the
previous turn. A turn that would exceed ``cap`` tokens starts a new conversation instead.

The trace stays open-loop: a turn arrives when the arrival process says, possibly before the
previous answer is complete, in which case only what is cached by then is reused.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["thread_conversations"]

IntArray = npt.NDArray[np.int64]


def thread_conversations(
    message: IntArray, output: IntArray, turns: float, cap: int | None, rng: np.random.Generator
) -> tuple[IntArray, IntArray, IntArray]:
    """Prompts, prefix ids and prefix lengths of the requests threaded into conversations."""
    n = len(message)
    prompt = message.copy()
    prefix_id = np.full(n, -1, dtype=np.int64)
    prefix_len = np.zeros(n, dtype=np.int64)
    history: dict[int, int] = {}  # open conversation -> tokens so far
    order: list[int] = []  # open conversations, oldest first (for a deterministic choice)
    draws = rng.random((n, 3))
    new_id = 0
    p_new = 1.0 / turns
    for i in range(n):
        m, o = int(message[i]), int(output[i])
        conv = -1
        if order and draws[i, 0] >= p_new:
            conv = order[int(draws[i, 1] * len(order))]
            if cap is not None and history[conv] + m + o > cap:
                order.remove(conv)  # too long to go on: this message starts afresh
                del history[conv]
                conv = -1
        if conv < 0:
            conv, new_id = new_id, new_id + 1
            history[conv] = 0
            order.append(conv)
        shared = history[conv]
        prompt[i] = shared + m
        prefix_id[i], prefix_len[i] = conv, shared
        history[conv] = shared + m + o
        if draws[i, 2] < p_new:  # the conversation ends after this turn
            order.remove(conv)
            del history[conv]
    return prompt, prefix_id, prefix_len
