"""Each random purpose has its own stream: a randomised router is not coupled to the workload."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

import glia
from glia.policies import Router
from glia.sim import ClusterView
from glia.sim._streams import Stream, generator


def test_every_purpose_draws_from_its_own_stream() -> None:
    draws = {tuple(generator(3, s).random(4).tolist()) for s in Stream}
    assert len(draws) == len(Stream)


def test_the_workload_streams_are_those_it_always_had() -> None:
    # Renumbering a stream would change every workload: these must stay SeedSequence children.
    for stream in (Stream.ARRIVALS, Stream.PICK, Stream.PROMPT, Stream.OUTPUT, Stream.CHAT):
        old = np.random.default_rng(np.random.SeedSequence(7).spawn(5)[stream]).random(3)
        assert generator(7, stream).random(3).tolist() == old.tolist()


class Recorder(Router):
    first: ClassVar[list[float]] = []

    def setup(self, cluster: ClusterView, rng: np.random.Generator) -> None:
        super().setup(cluster, rng)
        Recorder.first.append(float(self.rng.random()))

    def schedule(self, cluster: ClusterView) -> list[tuple[int, glia.Request]]:
        return [(r.id % cluster.num_replicas, r) for r in cluster.queue]


def test_the_router_does_not_draw_the_chat_threading_stream() -> None:
    Recorder.first.clear()
    glia.simulate(Recorder(), "sharegpt-conv", seed=3, duration_s=20.0)
    (drawn,) = Recorder.first
    assert drawn == generator(3, Stream.ROUTER).random()
    assert drawn != generator(3, Stream.CHAT).random()
