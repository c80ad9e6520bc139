"""The latency model: calibration targets, shape, the catalogue and its errors."""

from __future__ import annotations

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
    t = a10.iteration_time(0, 0, 0, 1, ctx, 1)
    assert 0.028 <= t <= 0.032


def test_a10_8k_prefill_is_about_1_5_s(a10: LatencyModel) -> None:
    t = a10.prefill_time(8192, 8192)
    assert 1.4 <= t <= 1.6


def test_prefill_time_in_one_chunk_is_one_iteration(a10: LatencyModel) -> None:
    p = 1000
    assert a10.prefill_time(p, 8192) == a10.iteration_time(p, 0, p * (p + 1) // 2, 0, 0, 1)


def test_prefill_time_sums_its_chunks(a10: LatencyModel) -> None:
    # 100 tokens in chunks of 64: 64 tokens from scratch, then 36 reading the first 64.
    first = a10.iteration_time(64, 0, 64 * 65 // 2, 0, 0, 1)
    second = a10.iteration_time(36, 64, 36 * 64 + 36 * 37 // 2, 0, 0, 1)
    assert a10.prefill_time(100, 64) == pytest.approx(first + second, rel=1e-12)
    assert a10.prefill_time(100, 64) > a10.prefill_time(100, 100)  # chunking re-reads weights


def test_prefill_of_nothing_takes_no_time(a10: LatencyModel) -> None:
    assert a10.prefill_time(0, 64) == 0.0


# -- shape ------------------------------------------------------------------------------------

_arg = st.integers(min_value=0, max_value=100_000)
_step = st.integers(min_value=0, max_value=100_000)
_Args = tuple[int, int, int, int, int, int]


@settings(max_examples=200, deadline=None)
@given(
    args=st.tuples(_arg, _arg, _arg, _arg, _arg, _arg),
    which=st.integers(0, 5),
    step=_step,
    gpu=st.sampled_from(["A10", "A100", "H100", "L4", "B200"]),
    tp=st.sampled_from([1, 2, 4]),
    precision=st.sampled_from(["bf16", "fp8"]),
)
def test_iteration_time_is_monotone_in_each_argument(
    args: _Args, which: int, step: int, gpu: str, tp: int, precision: str
) -> None:
    c = catalogue()
    lm = LatencyModel.build(c.gpu(gpu)[1], c.model("llama-3-8b")[1], tp, None, precision)
    bigger = list(args)
    bigger[which] += step
    assert lm.iteration_time(*args) <= lm.iteration_time(*bigger)


def test_iteration_time_has_a_fixed_floor(a10: LatencyModel) -> None:
    # Even an empty iteration reads the weights (LM head included) once and pays the overhead.
    empty = a10.iteration_time(0, 0, 0, 0, 0, 0)
    weights = (a10.linear_bytes + a10.logits_bytes) / a10.weight_bytes_per_s
    assert empty == pytest.approx(a10.overhead_s + weights)
    assert 0 < empty < a10.iteration_time(0, 0, 0, 1, 1, 1)


def test_logits_are_computed_for_sampled_tokens_only() -> None:
    h200 = _model("H200")
    # A 4K-token prefill samples one token: its LM head costs what a batch-1 decode's does.
    one = h200.iteration_time(4096, 0, 4096 * 4097 // 2, 0, 0, 1)
    assert one - h200.overhead_per_token_s * 4096 < h200.iteration_time(
        4096, 0, 4096 * 4097 // 2, 0, 0, 64
    )
    logits = max(
        h200.logits_flops_per_seq / h200.linear_flops_per_s,
        h200.logits_bytes / h200.weight_bytes_per_s,
    )
    assert logits < 0.1 * one


def test_decode_kv_reads_are_not_hidden_behind_a_prefill() -> None:
    """Separate kernels: a mixed batch costs its prefill plus the decodes' attention."""
    h200 = _model("H200")
    prefill = (512, 0, 512 * 513 // 2)
    decodes = (64, 64 * 4096)
    mixed = h200.iteration_time(*prefill, *decodes, 65)
    alone = h200.iteration_time(*prefill, 0, 0, 1)
    kv_read = h200.kv_bytes_per_token * (64 * 4096 + 64) / h200.kv_bytes_per_s
    assert mixed - alone >= kv_read


def test_heterogeneous_decode_contexts_cost_their_sum() -> None:
    h200 = _model("H200")
    # 16 sequences at 256 and 16 at 4096 cost what 32 at the mean context cost.
    mixed_lens = h200.iteration_time(0, 0, 0, 32, 16 * 256 + 16 * 4096, 32)
    mean = h200.iteration_time(0, 0, 0, 32, 32 * (256 + 4096) // 2, 32)
    assert mixed_lens == mean


@pytest.mark.parametrize(
    "batch",
    [
        (0, 0, 0, 1, 100, 1),  # a single decode step
        (0, 0, 0, 64, 64 * 800, 64),  # a decode batch
        (2048, 0, 2048 * 2049 // 2, 0, 0, 1),  # a prefill
        (500, 2000, 500 * 2000 + 500 * 501 // 2, 32, 20_000, 33),  # mixed
    ],
)
def test_faster_gpus_are_faster(batch: _Args) -> None:
    times = [_model(g).iteration_time(*batch) for g in ("A10", "A100", "H100", "B200")]
    assert times == sorted(times, reverse=True) and len(set(times)) == 4


def test_tensor_parallelism_speeds_up_big_prefills() -> None:
    batch = (8192, 0, 8192 * 8193 // 2, 0, 0, 1)
    t1 = _model("H100", "llama-3-70b", 1).iteration_time(*batch)
    t4 = _model("H100", "llama-3-70b", 4).iteration_time(*batch)
    assert t4 < t1 / 2


# -- precision ----------------------------------------------------------------------------------


def test_fp8_weights_halve_weight_bytes_and_use_the_fp8_peak() -> None:
    c = catalogue()
    gpu, model = c.gpu("H100")[1], c.model("llama-3-8b")[1]
    bf16 = LatencyModel.build(gpu, model)
    fp8 = LatencyModel.build(gpu, model, weight_dtype="fp8")
    assert fp8.linear_bytes == bf16.linear_bytes / 2
    assert fp8.linear_flops_per_s == pytest.approx(1979 / 989 * bf16.linear_flops_per_s)
    assert fp8.kv_bytes_per_token == bf16.kv_bytes_per_token  # the KV cache stays 16-bit
    # A GPU without FP8 tensor cores reads half the bytes but computes at its 16-bit peak.
    a10 = LatencyModel.build(c.gpu("A10")[1], model, weight_dtype="fp8")
    assert a10.linear_flops_per_s == LatencyModel.build(c.gpu("A10")[1], model).linear_flops_per_s


def test_kv_capacity_derives_from_the_precisions() -> None:
    c = catalogue()
    gpu, model = c.gpu("H100")[1], c.model("llama-3-8b")[1]
    bf16 = derive_num_blocks(gpu, model, 1, 16)
    fp8_kv = derive_num_blocks(gpu, model, 1, 16, kv_dtype="fp8")
    fp8_w = derive_num_blocks(gpu, model, 1, 16, weight_dtype="fp8")
    assert 2 * bf16 <= fp8_kv <= 2 * bf16 + 1
    assert fp8_w > bf16
    rc = ClusterConfig(gpu="H100", precision="fp8", kv_precision="fp8").resolve()
    assert rc.num_blocks == derive_num_blocks(gpu, model, 1, 16, "fp8", "fp8")


def test_an_unknown_precision_names_the_choices() -> None:
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(precision="int4", num_blocks=100).resolve()
    assert str(err.value) == "unknown weight precision 'int4': choose one of bf16, fp16, fp8"
    with pytest.raises(glia.InputError) as err:
        ClusterConfig(kv_precision="fp4").resolve()
    assert str(err.value) == "unknown KV-cache precision 'fp4': choose one of bf16, fp16, fp8"


# -- the catalogue and its names --------------------------------------------------------------


def test_unknown_gpu_names_the_choices() -> None:
    with pytest.raises(glia.InputError) as err:
        catalogue().gpu("X100")
    assert str(err.value).startswith("unknown GPU 'X100': choose one of")
    assert str(err.value) == (
        "unknown GPU 'X100': choose one of A10, A100-40, A100-80, B200, H100, H200, L4, L40S"
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


def test_every_catalogue_entry_cites_its_source() -> None:
    c = catalogue()
    sources = {n: g.source for n, g in c.gpus.items()} | {n: m.source for n, m in c.models.items()}
    for name, source in sources.items():
        assert source.startswith("https://"), name


@pytest.mark.parametrize(
    ("gpu", "bf16", "fp8", "bandwidth", "memory"),
    [
        ("H100", 989.0, 1979.0, 3350.0, 80.0),  # H100 SXM data sheet, dense
        ("H200", 989.0, 1979.0, 4800.0, 141.0),
        ("B200", 2250.0, 4500.0, 7700.0, 180.0),
    ],
)
def test_hopper_and_blackwell_entries_match_their_data_sheets(
    gpu: str, bf16: float, fp8: float, bandwidth: float, memory: float
) -> None:
    spec = catalogue().gpu(gpu)[1]
    assert (spec.peak_tflops, spec.peak_fp8_tflops) == (bf16, fp8)
    assert (spec.mem_bw_gbs, spec.memory_gib) == (bandwidth, memory)
