"""The latency model: calibration targets, shape, the catalogue and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glia
from glia.sim import ClusterConfig, LatencyModel, catalogue, derive_num_blocks


def _model(gpu: str, model: str = "llama-3-8b", tp: int = 1) -> LatencyModel:
    c = catalogue()
    return LatencyModel.build(c.gpu(gpu)[1], c.model(model)[1], tp)


# -- calibration targets (DESIGN §3: A10 + Llama-3-8B) ------------------------------------------


@pytest.mark.parametrize("ctx", [1, 16, 100, 500])
def test_a10_batch_one_decode_is_about_30_ms(a10: LatencyModel, ctx: int) -> None:
    t = a10.iteration_time(0, 1, 1, ctx, ctx)
    assert 0.028 <= t <= 0.032


def test_a10_8k_prefill_is_about_1_5_s(a10: LatencyModel) -> None:
    t = a10.prefill_time(8192, 8192)
    assert 1.4 <= t <= 1.6


def test_prefill_time_in_one_chunk_is_one_iteration(a10: LatencyModel) -> None:
    p = 1000
    assert a10.prefill_time(p, 8192) == a10.iteration_time(p, 0, 1, 0, p * (p + 1) // 2)


def test_prefill_time_sums_its_chunks(a10: LatencyModel) -> None:
    # 100 tokens in chunks of 64: 64 tokens from scratch, then 36 reading the first 64.
    first = a10.iteration_time(64, 0, 1, 0, 64 * 65 // 2)
    second = a10.iteration_time(36, 0, 1, 64, 36 * 64 + 36 * 37 // 2)
    assert a10.prefill_time(100, 64) == pytest.approx(first + second, rel=1e-12)
    assert a10.prefill_time(100, 64) > a10.prefill_time(100, 100)  # chunking re-reads weights


def test_prefill_of_nothing_takes_no_time(a10: LatencyModel) -> None:
    assert a10.prefill_time(0, 64) == 0.0


# -- shape ------------------------------------------------------------------------------------

_arg = st.integers(min_value=0, max_value=100_000)
_step = st.integers(min_value=0, max_value=100_000)


@settings(max_examples=200, deadline=None)
@given(
    args=st.tuples(_arg, _arg, _arg, _arg, _arg),
    which=st.integers(0, 4),
    step=_step,
    gpu=st.sampled_from(["A10", "A100", "H100", "L4"]),
    tp=st.sampled_from([1, 2, 4]),
)
def test_iteration_time_is_monotone_in_each_argument(
    args: tuple[int, int, int, int, int], which: int, step: int, gpu: str, tp: int
) -> None:
    lm = _model(gpu, tp=tp)
    bigger = list(args)
    bigger[which] += step
    p, d, s, k, a = args
    P, D, S, K, A = bigger
    assert lm.iteration_time(p, d, s, k, a) <= lm.iteration_time(P, D, S, K, A)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(_arg, _arg, _arg, _arg, _arg), min_size=1, max_size=30),
    gpu=st.sampled_from(["A10", "A100-40", "H100", "L40S"]),
    tp=st.sampled_from([1, 2, 8]),
)
def test_vectorised_times_equal_the_scalar_ones(
    rows: list[tuple[int, int, int, int, int]], gpu: str, tp: int
) -> None:
    lm = _model(gpu, tp=tp)
    cols = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(5)]
    got = lm.iteration_times(*cols)
    assert got.shape == (len(rows),)
    np.testing.assert_allclose(got, [lm.iteration_time(*r) for r in rows], rtol=1e-12, atol=0)


def test_iteration_time_has_a_fixed_floor(a10: LatencyModel) -> None:
    # Even an empty iteration reads the weights once and pays the overhead.
    empty = a10.iteration_time(0, 0, 0, 0, 0)
    assert empty == pytest.approx(a10.overhead_s + a10.weight_bytes / a10.bytes_per_s)
    assert 0 < empty < a10.iteration_time(0, 1, 1, 1, 1)


@pytest.mark.parametrize(
    "batch",
    [
        (0, 1, 1, 100, 100),  # a single decode step
        (0, 64, 64, 64 * 800, 64 * 800),  # a decode batch
        (2048, 0, 1, 0, 2048 * 2049 // 2),  # a prefill
        (500, 32, 33, 20_000, 150_000),  # mixed
    ],
)
def test_faster_gpus_are_faster(batch: tuple[int, int, int, int, int]) -> None:
    a10, a100, h100 = (_model(g).iteration_time(*batch) for g in ("A10", "A100", "H100"))
    assert h100 < a100 < a10


def test_tensor_parallelism_speeds_up_big_prefills() -> None:
    batch = (8192, 0, 1, 0, 8192 * 8193 // 2)
    t1 = _model("H100", "llama-3-70b", 1).iteration_time(*batch)
    t4 = _model("H100", "llama-3-70b", 4).iteration_time(*batch)
    assert t4 < t1 / 2


# -- the catalogue and its names --------------------------------------------------------------


def test_unknown_gpu_names_the_choices() -> None:
    with pytest.raises(glia.InputError) as err:
        catalogue().gpu("X100")
    assert str(err.value).startswith("unknown GPU 'X100': choose one of")
    assert str(err.value) == (
        "unknown GPU 'X100': choose one of A10, A100-40, A100-80, H100, H200, L4, L40S"
    )


def test_unknown_gpu_in_a_cluster_config() -> None:
    with pytest.raises(glia.InputError, match=r"^unknown GPU 'X100': choose one of "):
        ClusterConfig(gpu="X100").resolve()


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(model="gpt-9").resolve()
    assert str(err.value).startswith("unknown model 'gpt-9': choose one of ")
    for name in ("llama-3-8b", "llama-3-70b", "mistral-7b", "qwen2.5-7b"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("a100", "A100-80"),
        ("A100", "A100-80"),
        ("a100-40", "A100-40"),
        ("a10", "A10"),
        ("h100-sxm", "H100"),
        ("H100-SXM", "H100"),
        ("l40s", "L40S"),
    ],
)
def test_gpu_aliases_and_case(alias: str, canonical: str) -> None:
    assert catalogue().gpu(alias)[0] == canonical
    assert ClusterConfig(gpu=alias, num_blocks=100).resolve().gpu == canonical


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("LLAMA-3-8B", "llama-3-8b"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b"),
        ("META-LLAMA/META-LLAMA-3-70B", "llama-3-70b"),
        ("Qwen2.5-7B", "qwen2.5-7b"),
    ],
)
def test_model_aliases_and_case(alias: str, canonical: str) -> None:
    assert catalogue().model(alias)[0] == canonical


def test_an_alias_gives_the_same_latency_model() -> None:
    a = ClusterConfig(gpu="a100", num_blocks=100).resolve().latency
    b = ClusterConfig(gpu="A100-80", num_blocks=100).resolve().latency
    assert a == b
    assert a != ClusterConfig(gpu="A100-40", num_blocks=100).resolve().latency


@pytest.mark.parametrize("tp", [0, 3, 6, -2])
def test_invalid_tensor_parallel_degree(tp: int) -> None:
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(tp=tp, num_blocks=100).resolve()
    assert str(err.value) == f"tensor-parallel degree {tp} is invalid: use 1, 2, 4 or 8"


def test_tensor_parallel_degree_must_divide_the_heads() -> None:
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(model="qwen2.5-7b", tp=8, num_blocks=100).resolve()
    assert str(err.value) == (
        "tensor-parallel degree 8 does not divide the model's 28 attention heads: "
        "use a smaller degree"
    )


def test_derived_kv_capacity_of_the_paper_replica() -> None:
    c = catalogue()
    blocks = derive_num_blocks(c.gpu("A10")[1], c.model("llama-3-8b")[1], 1, 16)
    # 24 GiB x 0.9 minus 16 GB of weights and 1 GiB of activations, at 128 KiB per token.
    assert 1500 < blocks < 3500
    assert ClusterConfig().resolve().num_blocks == blocks
    # Smaller blocks: more of them, for the same number of tokens (up to rounding).
    small = derive_num_blocks(c.gpu("A10")[1], c.model("llama-3-8b")[1], 1, 8)
    assert 2 * blocks <= small <= 2 * blocks + 1


def test_more_memory_and_more_gpus_give_more_blocks() -> None:
    c = catalogue()
    m = c.model("llama-3-8b")[1]
    a10 = derive_num_blocks(c.gpu("A10")[1], m, 1, 16)
    assert derive_num_blocks(c.gpu("A100-80")[1], m, 1, 16) > a10
    assert derive_num_blocks(c.gpu("A10")[1], m, 2, 16) > 2 * a10


def test_a_model_too_big_for_the_gpu() -> None:
    c = catalogue()
    with pytest.raises(glia.InputError) as err:
        derive_num_blocks(c.gpu("A10")[1], c.model("llama-3-70b")[1], 1, 16)
    msg = str(err.value)
    assert msg.startswith("the model's ")
    assert "leave no KV-cache memory on 1 GPU(s) of 24 GiB" in msg
    with pytest.raises(glia.InputError, match="leave no KV-cache memory"):
        ClusterConfig(model="llama-3-70b").resolve()
    # Given explicitly, the block count is taken as is.
    assert ClusterConfig(model="llama-3-70b", num_blocks=10).resolve().num_blocks == 10


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_replicas", 0, "cluster num_replicas is 0: it must be at least 1"),
        ("block_size", 0, "cluster block_size is 0: it must be at least 1"),
        ("chunk_size", -1, "cluster chunk_size is -1: it must be at least 1"),
        ("max_batch_size", 0, "cluster max_batch_size is 0: it must be at least 1"),
        ("num_blocks", 0, "cluster num_blocks is 0: it must be at least 1"),
        ("watermark", 1.0, "cluster watermark is 1.0: give a fraction in [0, 1), e.g. 0.01"),
        ("watermark", -0.1, "cluster watermark is -0.1: give a fraction in [0, 1), e.g. 0.01"),
    ],
)
def test_bad_cluster_configs(field: str, value: float, message: str) -> None:
    base = {"num_blocks": 100}
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(**(base | {field: value})).resolve()  # type: ignore[arg-type]
    assert str(err.value) == message


def test_watermark_blocks_round_down() -> None:
    rc = ClusterConfig(num_blocks=2240, watermark=0.01).resolve()
    assert rc.watermark_blocks == 22
    assert ClusterConfig(num_blocks=99, watermark=0.01).resolve().watermark_blocks == 0
