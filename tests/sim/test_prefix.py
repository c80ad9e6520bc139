"""Prefix caching: replicas keep prompt prefixes (LRU) and skip their prefill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.policies import Router, resolve_router
from glia.sim import ClusterConfig, ClusterView, IterationRecord, Request, Trace, run_simulation
from glia.sim._prefix import PrefixCache

ONE = ClusterConfig(num_replicas=1, num_blocks=4000, prefix_cache=0.5)


def trace(rows: list[tuple[float, int, int, int, int]]) -> Trace:
    """(arrived_at, prompt, output, prefix_id, prefix_len) rows."""
    a, p, d, i, n = (np.array(col) for col in zip(*rows, strict=True))
    return Trace(a.astype(np.float64), p, d, i, n)


def prefill_work(t: Trace, cluster: ClusterConfig, router: Router | None = None) -> int:
    records: list[IterationRecord] = []
    run_simulation(t, cluster, router or resolve_router("llq"), observer=records.append)
    return sum(r.prefill_tokens for r in records)


# -- the cache itself --------------------------------------------------------------------------
def test_the_cache_serves_the_shared_tokens_and_evicts_the_least_recently_used() -> None:
    cache = PrefixCache(capacity=10, block_size=16)  # 160 tokens
    a, b = Request(0, 0.0, 200, 1, 90), Request(1, 0.0, 50, 2, 49)
    cache.insert(1, 100)  # 7 blocks
    assert (cache.peek(a), cache.peek(b), cache.used) == (90, 0, 7)
    cache.insert(2, 30)  # 2 blocks: both fit
    assert cache.hit(b) == 30 and cache.hit(a) == 90  # b, then a: a is the most recent
    cache.insert(3, 40)  # 3 more blocks: 12 > 10, so b (least recently used) goes
    assert (cache.peek(a), cache.peek(b), len(cache), cache.used) == (90, 0, 2, 10)
    assert cache.peek(Request(2, 0.0, 60, 1, 60)) == 59  # one prompt token is always computed
    cache.insert(4, 1000)  # bigger than the whole cache: not kept, nothing evicted
    assert (len(cache), cache.used) == (2, 10)


# -- in the simulator --------------------------------------------------------------------------
def test_hits_reduce_prefill_work_exactly_by_the_cached_tokens() -> None:
    t = trace([
        (0.0, 100, 50, 7, 0),     # a conversation's first turn: nothing cached yet
        (0.0, 80, 10, 8, 0),      # another conversation
        (100.0, 300, 20, 7, 150), # the next turn: its first 150 tokens are turn 1's 100 + 50
        (200.0, 90, 5, 8, 85),    # conversation 8's next turn: 85 of 90 (80 + 10 cached)
        (300.0, 40, 5, -1, 0),    # no prefix
    ])  # fmt: skip
    off = prefill_work(t, glia.sim.ClusterConfig(num_replicas=1, num_blocks=4000))
    on = prefill_work(t, ONE)
    assert off == 100 + 80 + 300 + 90 + 40
    assert on == off - 150 - 85


def test_a_hit_shortens_time_to_first_token() -> None:
    t = trace([(0.0, 4000, 20, 1, 0), (60.0, 4100, 20, 1, 4020)])
    off = run_simulation(t, ClusterConfig(num_replicas=1, num_blocks=4000), resolve_router("llq"))
    on = run_simulation(t, ONE, resolve_router("llq"))
    ttft_off, ttft_on = off.requests.prefill_e2e_time[1], on.requests.prefill_e2e_time[1]
    assert ttft_on < 0.1 * ttft_off
    assert on.requests.prefill_e2e_time[0] == off.requests.prefill_e2e_time[0]


class Sticky(Router):
    """Sends each request where most of its prompt is cached (else replica 0), and records what
    it saw."""

    def __init__(self) -> None:
        self.seen: dict[int, list[int]] = {}

    def schedule(self, cluster: ClusterView) -> list[tuple[int, Request]]:
        out = []
        for req in cluster.queue:
            hits = [r.cached_prefix(req) for r in cluster.replicas]
            self.seen[req.id] = hits
            out.append((int(np.argmax(hits)), req))
        return out


def test_routers_see_what_each_replica_has_cached() -> None:
    t = trace([(0.0, 100, 50, 7, 0), (50.0, 300, 20, 7, 150)])
    router = Sticky()
    run_simulation(t, glia.sim.ClusterConfig(num_replicas=2, num_blocks=4000, prefix_cache=0.5),
                   router)  # fmt: skip
    assert router.seen == {0: [0, 0], 1: [150, 0]}


def test_bad_prefix_columns_and_settings_are_clear_errors() -> None:
    with pytest.raises(glia.InputError) as err:
        trace([(0.0, 10, 1, 3, 11)])
    assert str(err.value) == (
        "trace request 0: prefix_id 3, prefix_len 11: prefix_len must be between 0 and the "
        "prompt's length"
    )
    with pytest.raises(glia.InputError, match=r"^cluster prefix_cache is 2.0: give a fraction"):
        ClusterConfig(prefix_cache=2.0).resolve()


# -- invariants with caching on ------------------------------------------------------------------
@st.composite
def cached_runs(draw: st.DrawFn) -> tuple[Trace, ClusterConfig, str]:
    n = draw(st.integers(1, 30))
    arrivals = sorted(draw(st.lists(st.integers(0, 40).map(lambda k: k * 0.5), min_size=n,
                                    max_size=n)))  # fmt: skip
    prompts = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    ids = draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))
    lens = [0 if i < 0 else draw(st.integers(0, p)) for i, p in zip(ids, prompts, strict=True)]
    cluster = ClusterConfig(
        num_replicas=draw(st.integers(1, 3)),
        num_blocks=draw(st.integers(30, 120)),
        block_size=draw(st.sampled_from([4, 16])),
        chunk_size=draw(st.integers(16, 256)),
        max_batch_size=draw(st.integers(1, 8)),
        watermark=0.0,
        prefix_cache=draw(st.floats(0.05, 1.0)),
    )
    t = trace(list(zip(arrivals, prompts, outputs, ids, lens, strict=True)))
    return t, cluster, draw(st.sampled_from(["llq", "hra", "least-kv", "round-robin"]))


@settings(max_examples=60, deadline=None)
@given(cached_runs())
def test_invariants_hold_with_prefix_caching(case: tuple[Trace, ClusterConfig, str]) -> None:
    t, cluster, router = case
    need = -(-(t.num_prefill_tokens + t.num_decode_tokens - 1) // cluster.block_size)
    assert cluster.num_blocks is not None
    if (need > cluster.num_blocks).any():
        return  # the simulator refuses such traces (tested elsewhere)
    records: list[IterationRecord] = []
    stepped = run_simulation(t, cluster, resolve_router(router), observer=records.append)
    fast = run_simulation(t, cluster, resolve_router(router))
    r = stepped.requests
    assert (r.completed_at >= r.arrived_at).all()  # every request completes, after arriving
    assert (r.prefill_completed_at <= r.completed_at).all()
    assert all(rec.allocated_blocks <= rec.num_blocks for rec in records)
    # Caching only ever saves prefill work (a restart recomputes, which may add some back).
    if stepped.summary.restarts == 0:
        assert sum(rec.prefill_tokens for rec in records) <= int(t.num_prefill_tokens.sum())
    # Same inputs, same results, stepping or fast-forwarding.
    assert np.array_equal(r.completed_at, fast.requests.completed_at)
    assert np.array_equal(r.replica_id, fast.requests.replica_id)


# -- shared prefix blocks, reference counted ----------------------------------------------------
def test_an_entry_in_use_is_never_evicted_and_hits_share_its_blocks() -> None:
    cache = PrefixCache(capacity=10, block_size=16)
    a = Request(0, 0.0, 200, 1, 100)
    cache.insert(1, 100)  # 7 blocks
    assert cache.acquire(a) == (100, 6)  # 100 tokens served, 6 whole blocks shared
    assert cache.acquire(a) == (100, 6) and cache.refs(1) == 2
    cache.insert(2, 60)  # 4 blocks: 11 > 10, but entry 1 is in use, so 2 is not kept
    assert (len(cache), cache.used, cache.pinned) == (1, 7, 7)
    cache.release(1)
    cache.release(1)
    assert cache.refs(1) == 0
    cache.insert(2, 60)  # now entry 1 (unused, least recently used) goes
    assert (len(cache), cache.used, cache.peek(a)) == (1, 4, 0)


def test_requests_on_one_shared_prefix_hold_its_blocks_once() -> None:
    # Ten requests on a 1,600-token system prompt, on 500 blocks: alone each needs 102 blocks,
    # so without sharing at most four run at once; sharing the prompt's 100 blocks, all do.
    rows = [(0.0, 1630, 200, 0, 1600)] + [(1.0, 1630, 200, 0, 1600)] * 9
    plain = trace(rows)
    t = Trace(plain.arrived_at, plain.num_prefill_tokens, plain.num_decode_tokens,
              plain.prefix_id, plain.prefix_len, shared_prefixes=True)  # fmt: skip
    cluster = ClusterConfig(num_replicas=1, num_blocks=500, prefix_cache=0.5, watermark=0.0)
    records: list[IterationRecord] = []
    res = run_simulation(t, cluster, resolve_router("llq"), observer=records.append)
    assert res.summary.restarts == 0
    assert max(r.num_seqs for r in records) == 10
    # Their own blocks: 2 each while prefilling the 30-token suffix, then growing with output.
    assert max(r.allocated_blocks for r in records) <= 10 * -(-(30 + 200 + 15) // 16) + 102
    assert sum(r.prefill_tokens for r in records) == 1630 + 9 * 30


def test_a_decoder_on_shared_blocks_gives_them_back_when_it_completes() -> None:
    # The second request hits the first one's cached 9 tokens (2 whole blocks of 4, shared)
    # and decodes: when it completes, its own blocks come back and its reference is released.
    # (A merge once inlined the decoders' completion without the release: the cache kept the
    # reference and the replica counted the shared blocks as its own, -1 allocated.)
    t = trace([(0.0, 7, 1, 0, 0), (0.0, 9, 2, 0, 8)])
    cluster = ClusterConfig(num_replicas=1, num_blocks=30, block_size=4, chunk_size=16,
                            max_batch_size=1, watermark=0.0, prefix_cache=1.0)  # fmt: skip
    caches: list[PrefixCache] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        _checked(monkeypatch, "release", caches)
        records: list[IterationRecord] = []
        run_simulation(t, cluster, resolve_router("llq"), observer=records.append)
    assert [r.allocated_blocks for r in records] == [2, 1, 1]
    assert len(caches) == 1 and not caches[0]._refs


@st.composite
def shared_runs(draw: st.DrawFn) -> tuple[Trace, ClusterConfig, str]:
    t, cluster, router = draw(cached_runs())
    shared = draw(st.booleans())
    return (
        Trace(t.arrived_at, t.num_prefill_tokens, t.num_decode_tokens, t.prefix_id,
              t.prefix_len, shared_prefixes=shared),
        cluster,
        router,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(shared_runs())
def test_reference_counts_stay_sound(case: tuple[Trace, ClusterConfig, str]) -> None:
    """Refcounts are never negative, the cache never holds more than its capacity, an entry in
    use is always cached, and every reference is given back once every request completed."""
    t, cluster, router = case
    need = -(-(t.num_prefill_tokens + t.num_decode_tokens - 1) // cluster.block_size)
    assert cluster.num_blocks is not None
    if (need > cluster.num_blocks).any():
        return
    caches: list[PrefixCache] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("acquire", "release", "insert"):
            _checked(monkeypatch, name, caches)
        records: list[IterationRecord] = []
        stepped = run_simulation(t, cluster, resolve_router(router), observer=records.append)
    assert all(0 <= rec.allocated_blocks <= rec.num_blocks for rec in records)
    assert all(not c._refs for c in caches)  # all given back
    fast = run_simulation(t, cluster, resolve_router(router))
    assert np.array_equal(stepped.requests.completed_at, fast.requests.completed_at)
    assert (stepped.requests.completed_at >= stepped.requests.arrived_at).all()


def _checked(monkeypatch: pytest.MonkeyPatch, name: str, caches: list[PrefixCache]) -> None:
    """Check the cache's invariants after every call of its method ``name``."""
    original = getattr(PrefixCache, name)

    def call(self: PrefixCache, *args: object) -> object:
        out = original(self, *args)
        if self not in caches:
            caches.append(self)
        assert all(n > 0 for n in self._refs.values())
        assert set(self._refs) <= set(self._entries)  # in use: cached
        assert 0 <= self.pinned <= self.used <= self.capacity
        return out

    monkeypatch.setattr(PrefixCache, name, call)


# -- multi-turn conversations ------------------------------------------------------------------
def test_conversations_carry_their_history_in_the_prompt() -> None:
    _, w = glia.experiment_config("chat-prefix", duration_s=200.0)
    t = glia.sim.build_trace(w, 3, max_context=8192)
    again = glia.sim.build_trace(w, 3, max_context=8192)
    assert t.prefix_id is not None and t.prefix_len is not None and again.prefix_id is not None
    assert np.array_equal(t.prefix_id, again.prefix_id)  # seeded
    # Replay each conversation: a turn's shared prefix is everything said before in it.
    single = glia.sim.build_trace(msgspec_replace(w, turns=1.0), 3, max_context=8192)
    said: dict[int, int] = {}
    for i in range(len(t)):
        conv, shared = int(t.prefix_id[i]), int(t.prefix_len[i])
        assert shared == said.get(conv, 0)
        assert t.num_prefill_tokens[i] == shared + single.num_prefill_tokens[i]
        assert t.num_prefill_tokens[i] + t.num_decode_tokens[i] <= 8192
        said[conv] = int(t.num_prefill_tokens[i] + t.num_decode_tokens[i])
    turns = np.bincount(t.prefix_id)
    assert 2.5 < turns.mean() < 5.5 and (t.prefix_len > 0).mean() > 0.5
    with pytest.raises(glia.InputError, match=r"^turns is 0.5: give the mean turns"):
        glia.sim.build_trace(msgspec_replace(w, turns=0.5), 0)


def msgspec_replace(w: glia.WorkloadConfig, **changes: float) -> glia.WorkloadConfig:
    import msgspec

    return msgspec.structs.replace(w, **changes)


@pytest.mark.slow
def test_prefix_aware_routers_win_on_multi_turn_chat() -> None:
    def mean(router: str) -> float:
        return float(np.mean([glia.simulate(router, "chat-prefix", seed=s).summary.mean_e2e_s
                              for s in (0, 1)]))  # fmt: skip

    assert mean("llm-d-prefix") < 0.97 * mean("llm-d")
    assert mean("sglang-cache") < 0.97 * mean("llq")


def test_a_trace_csv_can_carry_prefixes(tmp_path: Path) -> None:
    rows = [
        "arrived_at,num_prefill_tokens,num_decode_tokens,prefix_id,prefix_len",
        *("0,100,50,7,0", "0,80,10,8,0", "100,300,20,7,150", "200,90,5,8,85", "300,40,5,-1,0"),
    ]
    path = tmp_path / "chat.csv"
    path.write_text("\n".join(rows) + "\n")
    cluster, workload = glia.experiment_config(
        "glia-routing", trace=str(path), num_replicas=1, num_blocks=4000, prefix_cache=0.5
    )
    t = glia.sim.build_trace(workload, 0, max_context=8192)
    assert t.prefix_id is not None and t.prefix_id.tolist() == [7, 8, 7, 8, -1]
    assert prefill_work(t, cluster) == 100 + 80 + 300 + 90 + 40 - 150 - 85
    bad = tmp_path / "bad.csv"
    bad.write_text("num_prefill_tokens,num_decode_tokens,prefix_id\n10,1,3\n")
    with pytest.raises(glia.TraceError, match="give both prefix_id and prefix_len columns"):
        glia.sim.load_trace_csv(str(bad))
    bad.write_text("num_prefill_tokens,num_decode_tokens,prefix_id,prefix_len\n10,1,3,11\n")
    with pytest.raises(glia.TraceError, match=r"prefix_id 3, prefix_len 11: give -1 and 0"):
        glia.sim.load_trace_csv(str(bad))
