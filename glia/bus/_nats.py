"""The Bus on NATS JetStream.

Why one module of this size: it is the one JetStream binding, every stream, consumer and
bucket operation behind the :class:`~glia.bus.Bus` protocol, next to its in-memory twin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from glia._logging import get_logger

from . import _subjects as s
from ._bus import Delivery
from ._messages import (
    Event,
    ExperimentRequest,
    ExperimentResult,
    MessageError,
    ResultMessage,
    SteerMessage,
    WorkerHeartbeat,
    decode_event,
    decode_result,
    decode_steer,
    encode,
)
from ._server import BusError

__all__ = ["MAX_DELIVER", "NatsBus", "redact"]

log = get_logger("glia.bus")

MAX_DELIVER = 6
"""JetStream's own bound on deliveries; workers give up earlier (see the worker's attempts)."""
PATIENCE_S = 60.0
"""How long a JetStream request is retried while a cluster elects a new leader (seconds)."""
ARTIFACT_WAIT_S = 120.0
"""How long reading one artifact may take (seconds): nats-py waits for its chunks for ever."""
_TRANSIENT = (
    nats.errors.TimeoutError,  # no leader to answer yet (or its node just died)
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,  # 503: JetStream temporarily unavailable
)
_NO_PEERS = 10005  # "no suitable peers for placement"
_NOT_CLUSTERED = 10074  # "replicas > 1 not supported in non-clustered mode"
_T = TypeVar("_T")
_CREDENTIALS = re.compile(r"(//[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    return _CREDENTIALS.sub(r"\1***@", url)


class _Delivery:
    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    @property
    def data(self) -> bytes:
        return self._msg.data

    @property
    def attempt(self) -> int:
        return int(self._msg.metadata.num_delivered)

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float = 0.0) -> None:
        await self._msg.nak(delay=delay or None)

    async def term(self) -> None:
        await self._msg.term()

    async def in_progress(self) -> None:
        await self._msg.in_progress()


class _PullQueue:
    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self._sub = sub

    async def fetch(self, n: int, timeout: float) -> list[Delivery]:
        try:
            msgs = await self._sub.fetch(n, timeout=timeout)
        except nats.errors.TimeoutError:
            return []
        return [_Delivery(m) for m in msgs]


class NatsBus:
    """The bus on a NATS JetStream server or cluster. Create with :meth:`connect`."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        buckets: tuple[KeyValue, KeyValue, ObjectStore],
        url: str,
    ) -> None:
        self.nc, self.js, self.url = nc, js, url
        self._kv, self._runs, self._store = buckets
        self.patience = PATIENCE_S
        self.artifact_wait = ARTIFACT_WAIT_S

    async def _patiently(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kw: Any) -> _T:
        """``fn(...)``, retried while JetStream cannot answer (see :func:`_patiently`)."""
        return await _patiently(self.url, self.patience, fn, *args, **kw)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        name: str = "glia",
        creds: str | None = None,
        tls_ca: str | None = None,
        connect_timeout: float = 5.0,
        replicas: int = 1,
    ) -> AsyncIterator[NatsBus]:
        """Connect to ``url`` (comma-separated for a cluster) and set up streams and buckets.

        The first connection is bounded by ``connect_timeout`` per server and a few attempts;
        once connected, the client reconnects without limit (a restarted server loses nothing:
        JetStream keeps the queue on disk). The connection is drained on exit.

        ``creds`` is a JWT ``.creds`` file (from ``nsc``) or an nkey seed file (from ``nk
        -gen user``); ``tls_ca`` the CA file to verify the server with. Streams and buckets
        that do not exist yet are created with ``replicas`` copies (3 on a 3-node cluster);
        existing ones are left as their operator configured them.
        """
        errors: list[str] = []
        closing = False

        async def on_error(e: Exception) -> None:
            errors.append(str(e))
            log.warning("nats_error", url=redact(url), error=str(e))

        async def on_disconnect() -> None:
            if not closing:
                log.warning("nats_disconnected", url=redact(url))

        async def on_reconnect() -> None:
            log.info("nats_reconnected", url=redact(url))

        options: dict[str, Any] = {
            "servers": [u.strip() for u in url.split(",") if u.strip()],
            "name": name,
            "connect_timeout": connect_timeout,
            "max_reconnect_attempts": 3,
            "reconnect_time_wait": 0.5,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
        }
        if creds:
            options |= _credentials(creds)
        if tls_ca:
            import ssl

            options["tls"] = ssl.create_default_context(cafile=tls_ca)
        try:
            nc = await nats.connect(**options)
        except (nats.errors.Error, OSError) as e:
            auth = [m for m in errors if "authoriz" in m.lower() or "authentic" in m.lower()]
            reason = (auth or errors or [str(e) or type(e).__name__])[-1]
            hint = "is a nats-server running there?"
            if auth:
                hint = (
                    "wrong user, password or credentials: check the URL, --creds or GLIA_NATS_CREDS"
                )
            raise BusError(f"cannot connect to {redact(url)}: {reason.strip()} ({hint})") from None
        nc.options["max_reconnect_attempts"] = -1  # from now on, ride out server restarts
        try:
            js = nc.jetstream()
            # A cluster that has just started (or lost a node) may not answer for seconds.
            try:
                stores = await _patiently(url, PATIENCE_S, _setup, js, replicas)
            except _TRANSIENT as e:
                raise BusError(
                    f"JetStream at {redact(url)} did not answer for {PATIENCE_S:g} s "
                    f"({str(e) or type(e).__name__}): start nats-server with JetStream (-js; "
                    "`glia nats` does), and on a cluster check that a majority of its nodes run"
                ) from None
            except nats.js.errors.APIError as e:
                if e.err_code == _NOT_CLUSTERED:
                    raise BusError(
                        f"the nats-server at {redact(url)} is not part of a cluster, so it "
                        f"keeps one copy of each stream, not {replicas}: use --stream-replicas 1"
                    ) from None
                if e.err_code == _NO_PEERS:
                    raise BusError(
                        f"JetStream at {redact(url)} found no {replicas} servers to hold each "
                        f"stream for {PATIENCE_S:g} s: give --stream-replicas at most the number "
                        "of JetStream servers in the cluster, and check that they all run"
                    ) from None
                raise
            yield cls(nc, js, stores, url)
        finally:
            closing = True
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(5):
                    try:
                        await nc.drain()
                    except nats.errors.Error as e:  # the server is gone: nothing to flush
                        log.warning("nats_drain_failed", url=redact(url), error=str(e))
                if not nc.is_closed:  # a drain that timed out must still release the socket
                    with anyio.move_on_after(2):
                        await nc.close()

    # -- experiments ----------------------------------------------------------------------------
    async def submit(self, request: ExperimentRequest, msg_id: str) -> None:
        await self._patiently(
            self.js.publish, s.EXPERIMENTS, encode(request), headers={"Nats-Msg-Id": msg_id}
        )

    @asynccontextmanager
    async def work_queue(self, ack_wait: float) -> AsyncIterator[_PullQueue]:
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=MAX_DELIVER,
            max_ack_pending=10_000,
            max_waiting=4_096,
        )
        sub = await self.js.pull_subscribe(
            s.EXPERIMENTS, durable=s.WORKER_CONSUMER, stream=s.EXPERIMENTS_STREAM, config=config
        )
        try:
            yield _PullQueue(sub)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await sub.unsubscribe()

    async def dead_letter(self, data: bytes) -> None:
        await self.js.publish(s.DEAD_LETTER, data)

    @asynccontextmanager
    async def exhausted(self) -> AsyncIterator[AsyncIterator[bytes]]:
        # JetStream announces a message that reached max_deliver; it then stays in the work
        # queue undelivered. One listener of the queue group takes it out.
        subject = (
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{s.EXPERIMENTS_STREAM}.{s.WORKER_CONSUMER}"
        )
        sub = await self.nc.subscribe(subject, queue="glia-dead-letters")

        async def requests() -> AsyncIterator[bytes]:
            async for advisory in sub.messages:
                try:
                    seq = int(msgspec.json.decode(advisory.data)["stream_seq"])
                    raw = await self.js.get_msg(s.EXPERIMENTS_STREAM, seq)
                    await self.js.delete_msg(s.EXPERIMENTS_STREAM, seq)
                except (msgspec.DecodeError, KeyError, ValueError, nats.js.errors.NotFoundError):
                    continue  # not ours, or another listener took it first
                yield bytes(raw.data or b"")

        try:
            yield requests()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await sub.unsubscribe()

    async def queue_depth(self) -> int:
        # A work-queue stream keeps a request until it is acknowledged (or terminated).
        info = await self._patiently(self.js.stream_info, s.EXPERIMENTS_STREAM)
        return int(info.state.messages)

    # -- results and events ---------------------------------------------------------------------
    async def publish_result(self, result: ResultMessage) -> None:
        # One result per experiment and run: a second one (a retried publish whose first try
        # was stored, or a redelivery after a lost ack answered from the cache) is dropped by
        # the stream's duplicate window.
        msg_id = f"{result.run_id}.{result.key}"
        await self._patiently(
            self.js.publish, s.result_subject(result.run_id), encode(result),
            headers={"Nats-Msg-Id": msg_id},
        )  # fmt: skip

    @asynccontextmanager
    async def results(self, run_id: str) -> AsyncIterator[AsyncIterator[ResultMessage]]:
        async with self._replay(s.result_subject(run_id), decode_result) as it:
            yield it

    async def publish_event(self, event: Event) -> None:
        if isinstance(event, WorkerHeartbeat):
            subject = s.HEARTBEATS
        else:
            subject = s.events_subject(event.run_id)
        # Events are informational: a plain publish (the stream still captures it) saves the
        # round trip of waiting for JetStream's acknowledgement.
        await self.nc.publish(subject, encode(event))

    @asynccontextmanager
    async def events(self, run_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        subject = "glia.events.>" if run_id == "*" else s.events_subject(run_id)
        async with self._replay(subject, decode_event) as it:
            yield it

    async def publish_steer(self, msg: SteerMessage) -> None:
        # Acknowledged by JetStream (a person's action must not be lost); the message's id
        # drops a retried publish whose first try was stored.
        await self._patiently(
            self.js.publish, s.steer_subject(msg.run_id), encode(msg),
            headers={"Nats-Msg-Id": msg.id},
        )  # fmt: skip

    @asynccontextmanager
    async def steering(self, run_id: str) -> AsyncIterator[AsyncIterator[SteerMessage]]:
        async with self._replay(s.steer_subject(run_id), decode_steer) as it:
            yield it

    @asynccontextmanager
    async def _replay(self, subject: str, decode: Any) -> AsyncIterator[AsyncIterator[Any]]:
        sub = await self._patiently(self.js.subscribe, subject, ordered_consumer=True)

        async def messages() -> AsyncIterator[Any]:
            async for msg in sub.messages:
                try:
                    yield decode(msg.data)
                except MessageError as e:
                    log.warning("bad_message_dropped", subject=msg.subject, error=str(e))

        try:
            yield messages()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await sub.unsubscribe()

    # -- cache and artifacts --------------------------------------------------------------------
    async def cached(self, key: str) -> ExperimentResult | None:
        try:
            entry = await self._patiently(self._kv.get, key)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        try:
            msg = decode_result(entry.value)
        except MessageError as e:
            log.warning("bad_cache_entry_ignored", key=key, error=str(e))
            return None
        return msg if isinstance(msg, ExperimentResult) else None

    async def cache(self, result: ExperimentResult) -> None:
        await self._patiently(self._kv.put, result.key, encode(result))

    async def put_artifact(self, name: str, data: bytes) -> None:
        await self._patiently(self._store.put, name, data)

    async def get_artifact(self, name: str) -> bytes:
        # Bounded: an object whose chunks are deleted after its description was read (it was
        # replaced or purged meanwhile) leaves nats-py's reader waiting for chunks that never
        # come.
        with anyio.move_on_after(self.artifact_wait):
            try:
                result = await self._patiently(self._store.get, name)
            except nats.js.errors.ObjectNotFoundError:
                raise BusError(f"no artifact {name!r} in the object store") from None
            return bytes(result.data or b"")
        raise BusError(
            f"artifact {name!r} could not be read in {self.artifact_wait:g} s: its chunks are "
            "missing from the object store (deleted while it was read, or the bucket purged)"
        )

    async def save_checkpoint(self, run_id: str, data: bytes) -> None:
        await self._patiently(self._runs.put, run_id, data)

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        try:
            entry = await self._patiently(self._runs.get, run_id)
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value


def _credentials(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise BusError(f"cannot read NATS credentials {path!r}: {e.strerror}") from None
    if "BEGIN NATS USER JWT" in text:
        return {"user_credentials": path}
    if text.strip().startswith("SU"):
        return {"nkeys_seed": path}
    raise BusError(
        f"{path!r} is neither a JWT .creds file (nsc) nor an nkey user seed (nk -gen user)"
    )


async def _patiently(
    url: str, patience: float, fn: Callable[..., Awaitable[_T]], *args: Any, **kw: Any
) -> _T:
    """``fn(...)``, retried with backoff for up to ``patience`` seconds while JetStream cannot
    answer: a cluster elects its meta leader when it starts, and when a node dies its streams'
    leaders are re-elected on the others within seconds. Only idempotent operations go
    through here (a publish carries a message id, so a retry of one that was stored after all
    is dropped as a duplicate; setting up streams and buckets gets or creates them)."""
    delay, deadline = 0.1, anyio.current_time() + patience
    while True:
        try:
            return await fn(*args, **kw)
        except (*_TRANSIENT, nats.js.errors.BadRequestError) as e:
            # A cluster that has just elected its meta leader may not know all its peers yet,
            # so a replicated stream cannot be placed for a moment; other bad requests are
            # errors to report at once.
            placing = isinstance(e, nats.js.errors.BadRequestError)
            if placing and getattr(e, "err_code", None) != _NO_PEERS:
                raise
            if anyio.current_time() + delay > deadline:
                raise
            log.warning("nats_retry", url=redact(url), error=str(e) or type(e).__name__)
            await anyio.sleep(delay)
            delay = min(2 * delay, 2.0)


async def _setup(js: JetStreamContext, replicas: int) -> tuple[KeyValue, KeyValue, ObjectStore]:
    """Create the streams, the KV buckets and the object store where they do not exist."""
    day = 24 * 3600.0
    await _stream(
        js,
        api.StreamConfig(
            name=s.EXPERIMENTS_STREAM,
            subjects=[s.EXPERIMENTS],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            duplicate_window=600.0,
            num_replicas=replicas,
        ),
    )
    for name, subjects, age in (
        (s.RESULTS_STREAM, ["glia.result.>"], 7 * day),
        (s.EVENTS_STREAM, ["glia.events.>"], 1 * day),
        (s.DEAD_LETTERS_STREAM, [s.DEAD_LETTER], 7 * day),
        (s.STEER_STREAM, ["glia.steer.>"], 7 * day),
    ):
        await _stream(
            js,
            api.StreamConfig(
                name=name,
                subjects=subjects,
                storage=api.StorageType.FILE,
                max_age=age,
                num_replicas=replicas,
            ),
        )
    kv = await _bucket(js, s.RESULTS_BUCKET, replicas)
    runs = await _bucket(js, s.RUNS_BUCKET, replicas)
    try:
        store = await js.object_store(s.ARTIFACTS_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        store = await js.create_object_store(
            s.ARTIFACTS_BUCKET, config=api.ObjectStoreConfig(replicas=replicas)
        )
    return kv, runs, store


async def _bucket(js: JetStreamContext, name: str, replicas: int) -> KeyValue:
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(bucket=name, history=1, replicas=replicas)


async def _stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    try:
        await js.stream_info(str(config.name))
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
    # An existing stream keeps its operator's settings (replicas, limits): never overwritten.
