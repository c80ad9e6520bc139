"""Workloads: seeded generation, arrival processes, inflation, caps, replay and bad traces."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import glia
from glia.sim import Trace, WorkloadConfig, build_trace, builtin_traces, load_trace_csv

WriteCsv = Callable[[str, str], Path]

PAPER = glia.PRESETS["glia-routing"].workload


def _same(a: Trace, b: Trace) -> bool:
    return (
        np.array_equal(a.arrived_at, b.arrived_at)
        and np.array_equal(a.num_prefill_tokens, b.num_prefill_tokens)
        and np.array_equal(a.num_decode_tokens, b.num_decode_tokens)
    )


def _constant_csv(write_csv: WriteCsv, rows: int = 100) -> Path:
    return write_csv("const.csv", "num_prefill_tokens,num_decode_tokens\n" + "10,20\n" * rows)


# -- seeding ----------------------------------------------------------------------------------


def test_same_seed_same_trace() -> None:
    w = glia.experiment_config("glia-routing", duration_s=200.0)[1]
    a, b = build_trace(w, 7, max_context=8192), build_trace(w, 7, max_context=8192)
    assert len(a) > 100
    assert _same(a, b)


def test_different_seeds_differ() -> None:
    w = glia.experiment_config("glia-routing", duration_s=200.0)[1]
    a, b = build_trace(w, 7), build_trace(w, 8)
    assert not np.array_equal(a.arrived_at[1:20], b.arrived_at[1:20])
    assert not np.array_equal(a.num_prefill_tokens[:20], b.num_prefill_tokens[:20])


def test_trace_arrays_are_read_only() -> None:
    t = build_trace(WorkloadConfig(arrivals="poisson", qps=5.0, duration_s=10.0), 0)
    for a in (t.arrived_at, t.num_prefill_tokens, t.num_decode_tokens):
        with pytest.raises(ValueError):
            a[0] = 1
    assert t.arrived_at.dtype == np.float64
    assert t.num_prefill_tokens.dtype == np.int64
    assert t.num_decode_tokens.dtype == np.int64


def test_the_arrival_rate_does_not_change_the_lengths_drawn() -> None:
    slow = build_trace(WorkloadConfig(arrivals="poisson", qps=5.0, duration_s=100.0), 3)
    fast = build_trace(WorkloadConfig(arrivals="poisson", qps=10.0, duration_s=100.0), 3)
    n = min(len(slow), len(fast))
    assert n > 300
    assert np.array_equal(slow.num_prefill_tokens[:n], fast.num_prefill_tokens[:n])
    assert np.array_equal(slow.num_decode_tokens[:n], fast.num_decode_tokens[:n])


def test_negative_seed() -> None:
    with pytest.raises(glia.InputError) as err:
        build_trace(PAPER, -1)
    assert str(err.value) == "seed is -1: give a non-negative integer"


# -- arrival processes ------------------------------------------------------------------------


def test_lognormal_arrivals_have_the_right_rate() -> None:
    w = WorkloadConfig(arrivals="lognormal", sigma=2.0, qps=7.5, duration_s=1000.0)
    counts = [len(build_trace(w, seed)) for seed in range(20)]
    assert abs(np.mean(counts) - 7500) < 750
    assert all(3000 < c < 12000 for c in counts)
    assert len(set(counts)) > 15  # the seed matters


def test_lognormal_arrivals_are_burstier_than_poisson() -> None:
    def cv(arrivals: str) -> float:
        t = build_trace(WorkloadConfig(arrivals=arrivals, qps=10.0, duration_s=2000.0), 1)  # type: ignore[arg-type]
        gaps = np.diff(t.arrived_at)
        return float(gaps.std() / gaps.mean())

    assert 0.9 < cv("poisson") < 1.1
    assert cv("lognormal") > 3.0


def test_poisson_gaps_average_one_over_qps() -> None:
    t = build_trace(WorkloadConfig(arrivals="poisson", qps=4.0, duration_s=5000.0), 2)
    gaps = np.diff(t.arrived_at)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert len(t) == pytest.approx(20_000, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0])
def test_gamma_gaps_have_the_mean_and_cv_asked_for(cv: float) -> None:
    t = build_trace(WorkloadConfig(arrivals="gamma", cv=cv, qps=5.0, duration_s=4000.0), 4)
    gaps = np.diff(t.arrived_at)
    assert gaps.mean() == pytest.approx(0.2, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


@pytest.mark.parametrize("arrivals", ["poisson", "lognormal", "gamma"])
def test_generated_arrivals_are_sorted_from_zero(arrivals: str) -> None:
    w = WorkloadConfig(arrivals=arrivals, qps=20.0, duration_s=50.0)  # type: ignore[arg-type]
    for seed in range(5):
        t = build_trace(w, seed)
        assert t.arrived_at[0] == 0.0
        assert np.all(np.diff(t.arrived_at) >= 0)
        assert t.arrived_at[-1] < 50.0


def test_long_generated_runs_are_not_truncated() -> None:
    # Far more requests than the generator's first batch: arrivals must cover the duration.
    t = build_trace(WorkloadConfig(arrivals="poisson", qps=50.0, duration_s=400.0), 0)
    assert len(t) == pytest.approx(20_000, rel=0.03)
    assert t.arrived_at[-1] > 399.0


def test_max_requests_truncates() -> None:
    w = WorkloadConfig(arrivals="poisson", qps=50.0, duration_s=100.0, max_requests=17)
    t = build_trace(w, 0)
    assert len(t) == 17
    full = build_trace(WorkloadConfig(arrivals="poisson", qps=50.0, duration_s=100.0), 0)
    assert np.array_equal(t.arrived_at, full.arrived_at[:17])


# -- inflation and caps -----------------------------------------------------------------------


def _inflated(write_csv: WriteCsv, prompt: float, output: float, seed: int = 0) -> Trace:
    path = _constant_csv(write_csv)
    w = WorkloadConfig(
        trace=str(path),
        arrivals="poisson",
        qps=100.0,
        duration_s=400.0,
        prompt_inflation=prompt,
        output_inflation=output,
    )
    return build_trace(w, seed)


def test_prompt_inflation_hits_its_fraction(write_csv: WriteCsv) -> None:
    t = _inflated(write_csv, 0.05, 0.0)
    assert set(np.unique(t.num_prefill_tokens).tolist()) == {10, 100}
    assert set(np.unique(t.num_decode_tokens).tolist()) == {20}
    frac = float(np.mean(t.num_prefill_tokens == 100))
    assert 0.045 < frac < 0.055  # ~40,000 requests: sd of the fraction ~0.001


def test_output_inflation_hits_its_fraction(write_csv: WriteCsv) -> None:
    t = _inflated(write_csv, 0.0, 0.2)
    assert set(np.unique(t.num_prefill_tokens).tolist()) == {10}
    assert set(np.unique(t.num_decode_tokens).tolist()) == {20, 200}
    assert 0.19 < float(np.mean(t.num_decode_tokens == 200)) < 0.21


def test_prompt_and_output_inflation_are_independent(write_csv: WriteCsv) -> None:
    t = _inflated(write_csv, 0.2, 0.2)
    p = t.num_prefill_tokens == 100
    o = t.num_decode_tokens == 200
    both = float(np.mean(p & o))
    assert both == pytest.approx(float(p.mean()) * float(o.mean()), abs=0.005)
    assert 0.035 < both < 0.045
    # Independent streams: which prompts are inflated does not depend on the output fraction.
    alone = _inflated(write_csv, 0.2, 0.0)
    assert np.array_equal(alone.num_prefill_tokens, t.num_prefill_tokens)


def test_inflation_factor_rounds(write_csv: WriteCsv) -> None:
    path = _constant_csv(write_csv)
    w = WorkloadConfig(
        trace=str(path),
        arrivals="poisson",
        qps=10.0,
        duration_s=10.0,
        prompt_inflation=1.0,
        output_inflation=1.0,
        inflation_factor=2.56,
    )
    t = build_trace(w, 0)
    assert set(t.num_prefill_tokens.tolist()) == {26}  # round(25.6)
    assert set(t.num_decode_tokens.tolist()) == {51}  # round(51.2)


def test_max_tokens_caps_prompt_first(write_csv: WriteCsv) -> None:
    path = write_csv(
        "caps.csv",
        "arrived_at,num_prefill_tokens,num_decode_tokens\n"
        "0,150,30\n"  # prompt over the cap: cut to cap - 1, one output token
        "1,50,80\n"  # together over the cap: the output is cut
        "2,99,1\n"
        "3,40,60\n"  # exactly at the cap
        "4,10,10\n",
    )
    t = build_trace(WorkloadConfig(trace=str(path), max_tokens=100), 0)
    assert t.num_prefill_tokens.tolist() == [99, 50, 99, 40, 10]
    assert t.num_decode_tokens.tolist() == [1, 50, 1, 60, 10]
    assert (t.capped, t.cap) == (2, 100)  # the first two; exactly at the cap is not capped
    result = glia.simulate("llq", workload=WorkloadConfig(trace=str(path), max_tokens=100))
    assert result.summary.requests_capped == 2


def test_the_model_context_caps_when_max_tokens_is_not_given(write_csv: WriteCsv) -> None:
    path = write_csv("long.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,9000,10\n")
    t = build_trace(WorkloadConfig(trace=str(path)), 0, max_context=8192)
    assert (int(t.num_prefill_tokens[0]), int(t.num_decode_tokens[0])) == (8191, 1)
    assert (t.capped, t.cap) == (1, 8192)
    t = build_trace(WorkloadConfig(trace=str(path)), 0)
    assert (int(t.num_prefill_tokens[0]), int(t.num_decode_tokens[0])) == (9000, 10)
    assert (t.capped, t.cap) == (0, None)


@pytest.mark.parametrize("cap", [2, 64, 512, 8192])
def test_max_tokens_cap_on_the_paper_workload(cap: int) -> None:
    w = glia.experiment_config("glia-routing", duration_s=300.0, max_tokens=cap)[1]
    t = build_trace(w, 1)
    p, d = t.num_prefill_tokens, t.num_decode_tokens
    assert np.all(p + d <= cap)
    assert np.all(p <= cap - 1)
    assert np.all(p >= 1)
    assert np.all(d >= 1)


def test_the_paper_workload_has_its_inflated_tails() -> None:
    t = build_trace(PAPER, 0, max_context=8192)
    raw, _ = load_trace_csv("sharegpt_first_turn")
    assert len(t) > 5000
    assert int(t.num_prefill_tokens.max()) > int(raw.num_prefill_tokens.max())  # inflated
    assert int((t.num_prefill_tokens + t.num_decode_tokens).max()) <= 8192


# -- replay -----------------------------------------------------------------------------------


def _timed_csv(write_csv: WriteCsv, times: list[float]) -> Path:
    rows = "".join(f"{t},{10 + i},{5 + i}\n" for i, t in enumerate(times))
    return write_csv("timed.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n" + rows)


def test_replay_reproduces_the_times(write_csv: WriteCsv) -> None:
    path = _timed_csv(write_csv, [0.0, 0.5, 1.25, 1.25, 3.0])
    t = build_trace(WorkloadConfig(trace=str(path)), 0)
    assert t.arrived_at.tolist() == [0.0, 0.5, 1.25, 1.25, 3.0]
    assert t.num_prefill_tokens.tolist() == [10, 11, 12, 13, 14]
    assert t.num_decode_tokens.tolist() == [5, 6, 7, 8, 9]
    again = build_trace(WorkloadConfig(trace=str(path)), 99)  # the seed plays no part
    assert _same(t, again)


def test_replay_starts_at_zero(write_csv: WriteCsv) -> None:
    path = _timed_csv(write_csv, [10.0, 10.5, 12.0])
    t = build_trace(WorkloadConfig(trace=str(path)), 0)
    assert t.arrived_at.tolist() == [0.0, 0.5, 2.0]


def test_replay_rescaled_to_a_rate(write_csv: WriteCsv) -> None:
    path = _timed_csv(write_csv, [0.0, 1.0, 2.0, 3.0, 4.0])  # 1 request per second
    t = build_trace(WorkloadConfig(trace=str(path), qps=4.0), 0)
    assert t.arrived_at.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], rel=1e-12)
    slow = build_trace(WorkloadConfig(trace=str(path), qps=0.5), 0)
    assert slow.arrived_at.tolist() == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0], rel=1e-12)


def test_replay_cut_at_a_duration(write_csv: WriteCsv) -> None:
    path = _timed_csv(write_csv, [0.0, 1.0, 2.0, 3.0, 4.0])
    t = build_trace(WorkloadConfig(trace=str(path), duration_s=2.0), 0)
    assert t.arrived_at.tolist() == [0.0, 1.0]  # arrivals before the duration
    assert t.num_prefill_tokens.tolist() == [10, 11]
    both = build_trace(WorkloadConfig(trace=str(path), qps=2.0, duration_s=1.0), 0)
    assert both.arrived_at.tolist() == [0.0, 0.5]  # rescaled first, then cut


def test_replay_of_the_azure_trace_keeps_its_rate() -> None:
    t = build_trace(WorkloadConfig(trace="azure_conv"), 0)
    assert len(t) == 19_366
    assert t.arrived_at[0] == 0.0
    rate = (len(t) - 1) / t.arrived_at[-1]
    assert 4.5 < rate < 6.5
    cut = build_trace(WorkloadConfig(trace="azure_conv", duration_s=600.0), 0)
    assert 0 < len(cut) < len(t)
    assert cut.arrived_at[-1] < 600.0


# -- built-in traces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "has_arrivals"),
    [
        ("sharegpt_first_turn", 56_048, False),
        ("sharegpt", 30_731, False),
        ("azure_conv", 19_366, True),
    ],
)
def test_builtin_traces_load(name: str, rows: int, has_arrivals: bool) -> None:
    assert name in builtin_traces()
    t, arrivals = load_trace_csv(name)
    assert len(t) == rows
    assert arrivals is has_arrivals
    assert int(t.num_prefill_tokens.min()) >= 1
    assert int(t.num_decode_tokens.min()) >= 1
    if has_arrivals:
        assert np.all(np.diff(t.arrived_at) >= 0)
    else:
        assert not t.arrived_at.any()


def test_builtin_trace_names() -> None:
    assert sorted(builtin_traces()) == ["azure_conv", "sharegpt", "sharegpt_first_turn"]


def test_sharegpt_first_turn_has_short_prompts() -> None:
    t, _ = load_trace_csv("sharegpt_first_turn")
    assert 10 <= float(np.median(t.num_prefill_tokens)) <= 60  # DESIGN: median ~30 tokens
    assert float(np.mean(t.num_decode_tokens)) > 100


def test_loading_returns_independent_copies() -> None:
    a, _ = load_trace_csv("azure_conv")
    b, _ = load_trace_csv("azure_conv")
    assert a.num_prefill_tokens is not b.num_prefill_tokens
    assert _same(a, b)


def test_a_csv_whose_name_matches_no_builtin(write_csv: WriteCsv) -> None:
    path = write_csv(
        "extra.csv", "foo,num_decode_tokens,num_prefill_tokens,bar\nx,7,3,y\n\nz,8,4,w\n"
    )
    t, arrivals = load_trace_csv(str(path))
    assert not arrivals
    assert t.num_prefill_tokens.tolist() == [3, 4]  # by name, extra columns and blanks ignored
    assert t.num_decode_tokens.tolist() == [7, 8]


def test_token_counts_written_as_whole_floats(write_csv: WriteCsv) -> None:
    path = write_csv("floats.csv", "num_prefill_tokens,num_decode_tokens\n3.0,7\n1e2,2\n")
    t, _ = load_trace_csv(str(path))
    assert t.num_prefill_tokens.tolist() == [3, 100]


def test_a_rewritten_file_is_read_again(write_csv: WriteCsv) -> None:
    path = write_csv("r.csv", "num_prefill_tokens,num_decode_tokens\n3,7\n")
    assert load_trace_csv(str(path))[0].num_prefill_tokens.tolist() == [3]
    write_csv("r.csv", "num_prefill_tokens,num_decode_tokens\n3,7\n5,9\n")
    assert load_trace_csv(str(path))[0].num_prefill_tokens.tolist() == [3, 5]


# -- bad traces and settings ------------------------------------------------------------------


def _trace_error(path: Path | str) -> glia.TraceError:
    with pytest.raises(glia.TraceError) as err:
        load_trace_csv(str(path))
    assert isinstance(err.value, glia.InputError)
    return err.value


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    err = _trace_error(path)
    assert str(err) == f"{path}: no such file: give an existing CSV trace path"
    assert (err.path, err.row) == (str(path), None)


def test_unknown_trace_name() -> None:
    with pytest.raises(glia.InputError) as err:
        load_trace_csv("sharegpt-first-turn")
    assert str(err.value) == (
        "unknown trace 'sharegpt-first-turn': choose one of azure_conv, sharegpt, "
        "sharegpt_first_turn; or give the path of a CSV file"
    )


def test_empty_file(write_csv: WriteCsv) -> None:
    path = write_csv("empty.csv", "")
    assert str(_trace_error(path)) == f"{path}: the file is empty: it needs a header row"


def test_header_but_no_rows(write_csv: WriteCsv) -> None:
    path = write_csv("header.csv", "num_prefill_tokens,num_decode_tokens\n")
    assert str(_trace_error(path)) == f"{path}: the trace has a header but no requests"


def test_missing_column(write_csv: WriteCsv) -> None:
    path = write_csv("cols.csv", "arrived_at,num_prefill_tokens,output\n0,1,2\n")
    err = _trace_error(path)
    assert str(err) == (
        f"{path} row 1: missing column 'num_decode_tokens' (found arrived_at, "
        "num_prefill_tokens, output): a trace needs num_prefill_tokens and num_decode_tokens, "
        "optionally arrived_at"
    )
    assert err.row == 1
    assert err.problem.startswith("missing column 'num_decode_tokens'")


def test_non_integer_token_count_names_the_row(write_csv: WriteCsv) -> None:
    path = write_csv("frac.csv", "num_prefill_tokens,num_decode_tokens\n3,7\n4,2\n1.5,2\n")
    err = _trace_error(path)
    assert str(err) == (
        f"{path} row 4: cannot read ['1.5', '2']: token counts must be integers below 2**31 "
        "and arrived_at a number of seconds"
    )
    assert err.row == 4


def test_unreadable_arrival_time(write_csv: WriteCsv) -> None:
    path = write_csv("t.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\nsoon,3,7\n")
    assert str(_trace_error(path)) == (
        f"{path} row 2: cannot read ['soon', '3', '7']: token counts must be integers below "
        "2**31 and arrived_at a number of seconds"
    )


def test_short_row(write_csv: WriteCsv) -> None:
    path = write_csv("short.csv", "num_prefill_tokens,num_decode_tokens\n3,7\n4\n")
    assert str(_trace_error(path)).startswith(f"{path} row 3: cannot read ['4']: ")


def test_zero_token_count(write_csv: WriteCsv) -> None:
    path = write_csv("zero.csv", "num_prefill_tokens,num_decode_tokens\n3,7\n4,0\n")
    err = _trace_error(path)
    assert str(err) == f"{path} row 3: num_decode_tokens is 0: token counts must be positive"
    assert (err.row, err.problem) == (3, "num_decode_tokens is 0: token counts must be positive")


def test_negative_prompt(write_csv: WriteCsv) -> None:
    path = write_csv("neg.csv", "num_prefill_tokens,num_decode_tokens\n-3,7\n")
    assert str(_trace_error(path)) == (
        f"{path} row 2: num_prefill_tokens is -3: token counts must be positive"
    )


def test_both_counts_bad_names_the_value_of_the_column_it_names(write_csv: WriteCsv) -> None:
    # The message names num_prefill_tokens, so it must give num_prefill_tokens' value (0),
    # not the other column's (-5).
    path = write_csv("both.csv", "num_prefill_tokens,num_decode_tokens\n0,-5\n")
    assert str(_trace_error(path)) == (
        f"{path} row 2: num_prefill_tokens is 0: token counts must be positive"
    )


def test_negative_arrival(write_csv: WriteCsv) -> None:
    path = write_csv("neg_t.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n-1,3,7\n")
    assert (
        str(_trace_error(path))
        == f"{path} row 2: arrived_at is -1.0: it must be a finite time >= 0"
    )


def test_infinite_arrival(write_csv: WriteCsv) -> None:
    path = write_csv("inf.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,3,7\ninf,3,7\n")
    assert (
        str(_trace_error(path)) == f"{path} row 3: arrived_at is inf: it must be a finite time >= 0"
    )


def test_unsorted_arrivals(write_csv: WriteCsv) -> None:
    path = write_csv(
        "unsorted.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,3,7\n2,3,7\n1,3,7\n"
    )
    assert str(_trace_error(path)) == (
        f"{path} row 4: arrived_at 1.0 is earlier than the previous row's 2.0: sort the trace "
        "by arrival time"
    )


def test_not_utf8(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"num_prefill_tokens,num_decode_tokens\n3,7\n\xff\xfe,1\n")
    assert str(_trace_error(path)) == f"{path}: not a UTF-8 text CSV file"


def test_trace_errors_pickle(write_csv: WriteCsv) -> None:
    path = write_csv("zero.csv", "num_prefill_tokens,num_decode_tokens\n0,7\n")
    err = _trace_error(path)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, glia.TraceError)
    assert (str(back), back.path, back.row, back.problem) == (
        str(err),
        err.path,
        err.row,
        err.problem,
    )


def test_a_lengths_only_trace_cannot_be_replayed(write_csv: WriteCsv) -> None:
    path = _constant_csv(write_csv)
    with pytest.raises(glia.InputError) as err:
        build_trace(WorkloadConfig(trace=str(path), arrivals="trace"), 0)
    assert str(err.value) == (
        f"trace {str(path)!r} has no arrived_at column: choose generated arrivals "
        "(poisson, lognormal or gamma) with a qps and a duration"
    )
    with pytest.raises(glia.InputError, match=r"^trace 'sharegpt' has no arrived_at column"):
        build_trace(WorkloadConfig(trace="sharegpt"), 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"arrivals": "poisson", "duration_s": 100.0},
            "poisson arrivals need both qps and duration_s (got qps=None, duration_s=100.0)",
        ),
        (
            {"arrivals": "lognormal", "qps": 2.0},
            "lognormal arrivals need both qps and duration_s (got qps=2.0, duration_s=None)",
        ),
        (
            {"arrivals": "poisson", "qps": 0.0, "duration_s": 1.0},
            "qps is 0.0: give a positive request rate",
        ),
        (
            {"arrivals": "poisson", "qps": float("nan"), "duration_s": 1.0},
            "qps is nan: give a positive request rate",
        ),
        (
            {"trace": "azure_conv", "duration_s": -5.0},
            "duration_s is -5.0: give a positive number of seconds",
        ),
        (
            {"arrivals": "lognormal", "qps": 1.0, "duration_s": 1.0, "sigma": 0.0},
            "arrival shape sigma=0.0, cv=1.0: both must be positive",
        ),
        (
            {"trace": "azure_conv", "prompt_inflation": 1.5},
            "prompt_inflation is 1.5: give the fraction of requests, in [0, 1]",
        ),
        (
            {"trace": "azure_conv", "output_inflation": -0.1},
            "output_inflation is -0.1: give the fraction of requests, in [0, 1]",
        ),
        (
            {"trace": "azure_conv", "inflation_factor": 0.0},
            "inflation_factor is 0.0: it must be positive",
        ),
        (
            {"trace": "azure_conv", "max_tokens": 1},
            "max_tokens is 1: a request needs at least 2 tokens",
        ),
        (
            {"trace": "azure_conv", "max_requests": 0},
            "max_requests is 0: it must be at least 1",
        ),
    ],
)
def test_bad_workload_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(glia.InputError) as err:
        build_trace(WorkloadConfig(**settings), 0)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_a_replay_cut_keeps_the_first_request(write_csv: WriteCsv) -> None:
    path = _timed_csv(write_csv, [5.0, 6.0])
    # Shifted to start at 0, so any positive duration keeps the first request.
    t = build_trace(WorkloadConfig(trace=str(path), duration_s=1e-300), 0)
    assert t.arrived_at.tolist() == [0.0]


def test_a_token_count_too_big_for_int64(write_csv: WriteCsv) -> None:
    # Must be a TraceError naming the row, not a bare OverflowError from numpy.
    path = write_csv("big.csv", "num_prefill_tokens,num_decode_tokens\n3,5\n1e20,5\n")
    err = _trace_error(path)
    assert err.row == 3
    assert str(err).startswith(f"{path} row 3: ")


def test_a_csv_with_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    # Spreadsheet exports often start with a BOM: the first column must still be recognised.
    path = tmp_path / "bom.csv"
    text = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,3,5\n1.5,4,5\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    t, has_arrivals = load_trace_csv(str(path))
    assert has_arrivals
    assert t.arrived_at.tolist() == [0.0, 1.5]
