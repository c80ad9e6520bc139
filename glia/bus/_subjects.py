"""Every subject, stream, consumer and bucket name Glia uses on NATS, in one place.

Experiments go on a work-queue stream consumed by all workers through one durable pull
consumer; results and the live event stream are per run; cached results live in a KV bucket
and large artifacts (per-request tables) in an object store.
"""

from __future__ import annotations

__all__ = [
    "ARTIFACTS_BUCKET",
    "DEAD_LETTER",
    "DEAD_LETTERS_STREAM",
    "EVENTS_STREAM",
    "EXPERIMENTS",
    "EXPERIMENTS_STREAM",
    "HEARTBEATS",
    "RESULTS_BUCKET",
    "RESULTS_STREAM",
    "RUNS_BUCKET",
    "STEER_STREAM",
    "WORKER_CONSUMER",
    "events_subject",
    "result_subject",
    "steer_subject",
]

EXPERIMENTS_STREAM = "GLIA_EXPERIMENTS"
"""Work-queue stream of experiment requests (each message is consumed once)."""
EXPERIMENTS = "glia.exp.submit"
"""Subject experiment requests are published on."""
DEAD_LETTER = "glia.exp.dead"
"""Experiments that exhausted their deliveries (also answered with a failure result)."""
DEAD_LETTERS_STREAM = "GLIA_DEAD_LETTERS"
"""Stream keeping the dead letters (7 days), for inspection."""
WORKER_CONSUMER = "glia-workers"
"""The durable pull consumer shared by every worker."""

RESULTS_STREAM = "GLIA_RESULTS"
"""Results (and failures) of experiments, per run: ``glia.result.<run_id>``."""
EVENTS_STREAM = "GLIA_EVENTS"
"""Lifecycle and progress events, per run: ``glia.events.<run_id>`` (replayable)."""
HEARTBEATS = "glia.events._workers"
"""Worker heartbeats (in the events stream, under a run id no real run can have)."""

STEER_STREAM = "GLIA_STEERING"
"""Steering of design runs by people, per run: ``glia.steer.<run_id>`` (replayable, so a
coordinator that resumes sees what it had not applied yet)."""

RESULTS_BUCKET = "glia-results"
"""KV bucket: experiment key -> encoded result, so a repeated experiment never runs twice."""
RUNS_BUCKET = "glia-runs"
"""KV bucket: design run id -> its latest checkpoint (so a run resumes on any machine)."""
ARTIFACTS_BUCKET = "glia-artifacts"
"""Object store: per-request tables (CSV) by experiment key."""


def result_subject(run_id: str) -> str:
    """Subject of the results of run ``run_id``."""
    return f"glia.result.{run_id}"


def events_subject(run_id: str) -> str:
    """Subject of the events of run ``run_id``."""
    return f"glia.events.{run_id}"


def steer_subject(run_id: str) -> str:
    """Subject of the steering messages of design run ``run_id``."""
    return f"glia.steer.{run_id}"
