"""The prefix-heavy presets (IBM's llm-d router study): shared 14,000-token prefixes in six
groups on 4 x H100 serving Qwen2.5-7B, behind scraped metrics."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

import glia
from glia.policies import Mechanisms, compose, load_design_source
from glia.sim import WorkloadConfig, build_trace


def test_the_preset_is_the_study_setup() -> None:
    p = glia.PRESETS["prefix-heavy"]
    c, w = p.cluster, p.workload
    assert (p.task, c.num_replicas, c.gpu, c.model, c.metrics_interval_s) == (
        "routing", 4, "H100", "qwen2.5-7b", 0.5,
    )  # fmt: skip
    assert (w.qps, w.prefix_groups, w.prefix_tokens, w.arrivals) == (85.0, 6, 14_000, "poisson")
    bursty = glia.PRESETS["prefix-heavy-bursty"].workload
    assert (bursty.arrivals, bursty.cv, bursty.qps) == ("gamma", 7.0, 85.0)
    assert glia.presets.SECOND_WORKLOAD["prefix-heavy"] == "prefix-heavy-bursty"
    rc = c.resolve()
    assert [r.num_blocks for r in rc.replicas] == [66_490] * 4  # from an H100's memory
    assert int(c.prefix_cache * 66_490) // (14_000 // 16) == 5  # five prefixes fit, not six


def test_each_prompt_is_its_groups_prefix_then_its_own() -> None:
    w = glia.PRESETS["prefix-heavy"].workload
    t = build_trace(msgspec.structs.replace(w, duration_s=20.0), 3)
    plain = build_trace(msgspec.structs.replace(w, duration_s=20.0, prefix_groups=0,
                                                prefix_tokens=0), 3)  # fmt: skip
    assert t.shared_prefixes and not plain.shared_prefixes
    assert t.prefix_id is not None and t.prefix_len is not None
    assert set(t.prefix_id.tolist()) == set(range(6))
    assert (t.prefix_len == 14_000).all()
    assert np.array_equal(t.num_prefill_tokens, plain.num_prefill_tokens + 14_000)
    assert (t.num_decode_tokens <= 64).all() and (t.num_decode_tokens == 64).mean() > 0.99
    again = build_trace(msgspec.structs.replace(w, duration_s=20.0), 3)
    assert again.prefix_id is not None and np.array_equal(t.prefix_id, again.prefix_id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prefix_groups": 6},
         "prefix_groups is 6, prefix_tokens 0: give both as positive numbers for shared "
         "prefixes, or neither"),
        ({"prefix_groups": 2, "prefix_tokens": 100, "turns": 3.0},
         "turns is 3.0 with prefix_groups 2: a workload has either conversations or shared "
         "prefixes; set turns to 1 or prefix_groups to 0"),
    ],
)  # fmt: skip
def test_bad_prefix_groups_are_clear_errors(changes: dict[str, float], message: str) -> None:
    w = WorkloadConfig(arrivals="poisson", qps=1.0, duration_s=10.0)
    with pytest.raises(glia.InputError) as err:
        build_trace(msgspec.structs.replace(w, **changes), 0)
    assert str(err.value) == message


def test_runs_are_deterministic() -> None:
    one = glia.simulate("llm-d-1-1", "prefix-heavy", seed=2, duration_s=10.0)
    two = glia.simulate("llm-d-1-1", "prefix-heavy", seed=2, duration_s=10.0)
    assert np.array_equal(one.requests.completed_at, two.requests.completed_at)
    assert np.array_equal(one.requests.replica_id, two.requests.replica_id)


def test_baselines_are_ordered_sensibly_on_a_short_run() -> None:
    """Prefix-blind routers (LLQ, HRA) thrash the caches; the 1:1 weighted scorer keeps groups
    together; affinity with a wide load guard and a router-side index of five prefixes per
    replica does better still."""
    affinity = load_design_source(compose(Mechanisms(
        affinity=0.3, slack=64, track_prefixes=True, index_prefixes=3)))  # fmt: skip

    def mean(router: object) -> float:
        res = glia.simulate(router, "prefix-heavy", seed=0, duration_s=30.0)  # type: ignore[arg-type]
        return res.summary.mean_e2e_s

    llq, hra, one_one, tracked = mean("llq"), mean("hra"), mean("llm-d-1-1"), mean(affinity)
    assert tracked < 0.5 * one_one
    assert one_one < 0.7 * min(llq, hra)


def test_the_offline_designer_tracks_prefixes_behind_scraped_metrics() -> None:
    from glia.actors._offline import _moves, _State

    first = next(_moves(Mechanisms(), _State(prefix=True, scraped=True)))
    assert first == ("affinity", Mechanisms(affinity=0.3, slack=4, track_prefixes=True))
    exact = next(_moves(Mechanisms(), _State(prefix=True)))
    assert exact == ("affinity", Mechanisms(affinity=0.3, slack=4))
    # With affinity on, the load guard first, then the index (from all: 8 and 4 prefixes).
    on = Mechanisms(affinity=0.3, slack=4, track_prefixes=True)
    moves = [(why, m) for why, m in _moves(on, _State(prefix=True, scraped=True))][:4]
    assert moves == [
        ("slack", Mechanisms(affinity=0.3, slack=2, track_prefixes=True)),
        ("slack", Mechanisms(affinity=0.3, slack=8, track_prefixes=True)),
        ("index", Mechanisms(affinity=0.3, slack=4, track_prefixes=True, index_prefixes=8)),
        ("index", Mechanisms(affinity=0.3, slack=4, track_prefixes=True, index_prefixes=4)),
    ]


def test_a_tracking_design_runs_behind_scraped_metrics() -> None:
    """The composed design reads no unscrapable field (a cache-reading one would fail)."""
    tracked = load_design_source(compose(Mechanisms(affinity=0.3, track_prefixes=True)))
    reading = load_design_source(compose(Mechanisms(affinity=0.3)))
    assert glia.simulate(tracked, "prefix-heavy", seed=0, duration_s=5.0).summary.num_requests
    with pytest.raises(glia.DesignError, match="cached_prefix"):
        glia.simulate(reading, "prefix-heavy", seed=0, duration_s=5.0)
