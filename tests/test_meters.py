"""Meters: parameter counts against peft, memory formulas against autograd and the published anchors,
peak measurement, FLOPs, cost, will-it-fit, and a clear error for each kind of bad input."""

import dataclasses
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from labkit.core import LabkitError
from labkit.meters import (
    HARDWARE,
    KNOWN_CONFIGS,
    analytic_storage_bytes,
    analytic_total_params,
    analytic_trainable_params,
    compare_costs,
    estimate_cost,
    estimate_time_s,
    get_hardware,
    matmul_params,
    measure_peak_memory,
    measure_throughput,
    param_summary,
    param_table,
    predict_memory,
    storage_bytes,
    sweep_memory,
    training_flops,
    will_it_fit,
)
from labkit.units import GIB, MIB

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": True}


def tiny_config(cls=LlamaConfig, **over):
    return cls(**{**TINY, **over})


def tiny_model(cls=LlamaForCausalLM, config=None):
    torch.manual_seed(0)
    return cls(config or tiny_config())


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def peft_model(kind: str, cls=LlamaForCausalLM, config=None, **kw):
    import peft

    configs = {"lora": lambda: peft.LoraConfig(r=kw.get("r", 8), target_modules=kw.get("targets", "all-linear")),
               "dora": lambda: peft.LoraConfig(r=8, target_modules="all-linear", use_dora=True),
               "prompt": lambda: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
               "prefix": lambda: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
               "ia3": lambda: peft.IA3Config(task_type="CAUSAL_LM"),
               "norm": lambda: peft.LNTuningConfig(task_type="CAUSAL_LM")}
    return peft.get_peft_model(tiny_model(cls, config), configs[kind]())


# ---------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("method,kw,expected", [
    ("lora", {}, 16384), ("lora", {"target_modules": ["q_proj", "v_proj"]}, 3584), ("dora", {}, 17408),
    ("prompt", {}, 1280), ("prefix", {}, 2560), ("ia3", {}, 384), ("norm", {}, 320), ("full", {}, 138048),
    ("adapter", {"adapter_size": 16, "style": "houlsby"}, 4*(2*64*16 + 16 + 64)),
    ("adapter", {"bottleneck": 16, "style": "pfeiffer"}, 2*(2*64*16 + 16 + 64)),
    ("linear_probe", {"labels": ["a", "b", "c"]}, 64*3 + 3), ("bitfit", {}, 0)])
def test_analytic_counts_hard_coded(method, kw, expected):
    assert analytic_trainable_params(tiny_config(), method, **kw) == expected


@pytest.mark.parametrize("kind,method,kw", [
    ("lora", "lora", {}), ("dora", "dora", {}), ("prompt", "prompt", {}), ("prefix", "prefix", {}),
    ("ia3", "ia3", {}), ("norm", "norm", {})])
@pytest.mark.parametrize("cls", [LlamaForCausalLM, MistralForCausalLM])
def test_analytic_counts_match_peft(kind, method, kw, cls):
    config = tiny_config(MistralConfig if cls is MistralForCausalLM else LlamaConfig)
    model = peft_model(kind, cls, config)
    assert trainable(model) == analytic_trainable_params(config, method, **kw)


def test_lora_rank_and_targets_match_peft_on_untied_gqa_model():
    config = tiny_config(num_key_value_heads=1, tie_word_embeddings=False, intermediate_size=96)
    model = peft_model("lora", config=config, r=4, targets=["k_proj", "down_proj"])
    assert trainable(model) == analytic_trainable_params(config, "lora", rank=4, target_modules=["k_proj", "down_proj"])
    assert analytic_trainable_params(config, "lora", rank=4, target_modules=["k_proj", "down_proj"]) != \
        analytic_trainable_params(config, "lora", rank=4, target_modules=["q_proj", "down_proj"])  # GQA: k is smaller


def test_bitfit_counts_biases_when_there_are_some():
    assert analytic_trainable_params(tiny_config(attention_bias=True), "bitfit") == 2 * (64 + 32 + 32 + 64)


def test_full_count_matches_model_and_known_sizes():
    assert analytic_total_params(tiny_config()) == sum(p.numel() for p in tiny_model().parameters()) == 138048
    untied = tiny_config(tie_word_embeddings=False)
    assert analytic_total_params(untied) == sum(p.numel() for p in LlamaForCausalLM(untied).parameters())
    known = {"meta-llama/Llama-3.1-8B": 8_030_261_248, "mistralai/Mistral-7B-v0.3": 7_248_023_552,
             "meta-llama/Llama-3.2-1B": 1_235_814_400, "meta-llama/Llama-3.2-3B": 3_212_749_824,
             "HuggingFaceTB/SmolLM2-135M": 134_515_008}
    for name, expected in known.items():
        assert analytic_total_params(KNOWN_CONFIGS[name]) == expected, name


def test_param_table_and_summary_on_lora_model():
    model = peft_model("lora")
    table = param_table(model)
    assert list(table.columns) == ["total", "trainable"]
    assert table.loc["adapters", "trainable"] == table["trainable"].sum() == 16384
    assert table.loc["embeddings", "total"] == 64000 and table.loc["norms", "total"] == 5 * 64
    assert table.loc["attention", "trainable"] == 0 and table.loc["attention", "total"] == 2 * (2*64*64 + 2*64*32)
    summary = param_summary(model)
    assert (summary.total, summary.trainable) == (138048 + 16384, 16384)
    assert summary.trainable_pct == pytest.approx(100 * 16384 / 154432)
    assert storage_bytes(model) == 16384 * 4
    assert analytic_storage_bytes(tiny_config(), "lora", dtype="bf16") == 16384 * 2


def test_param_table_counts_4bit_weights_unpacked(tmp_path):
    pytest.importorskip("bitsandbytes")
    from transformers import BitsAndBytesConfig

    from labkit.models import bitsandbytes_works

    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize on this machine")
    tiny_model().save_pretrained(tmp_path)
    q = LlamaForCausalLM.from_pretrained(tmp_path, device_map={"": "cpu"}, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32))
    assert any(type(p).__name__ == "Params4bit" for p in q.parameters())
    assert sum(p.numel() for p in q.parameters()) < 138048  # the packed count a naive sum gives
    assert param_table(q)["total"].sum() == 138048


# ---------------------------------------------------------------- activation formula vs autograd
def saved_bytes(model, ids) -> int:
    """Bytes of distinct non-parameter storages autograd saves for backward in one forward pass."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize("kind,method,dtype,kw", [
    ("full", "full", torch.float32, {}), ("lora", "lora", torch.float32, {}),
    ("lora_qv", "lora", torch.float32, {"target_modules": ["q_proj", "v_proj"]}), ("ia3", "ia3", torch.float32, {}),
    ("norm", "norm", torch.float32, {}), ("prompt", "prompt", torch.float32, {}),
    ("full", "full", torch.bfloat16, {}), ("lora", "lora", torch.bfloat16, {})])
def test_saved_activation_terms_match_autograd(kind, method, dtype, kw):
    config = tiny_config(intermediate_size=160, num_hidden_layers=3)
    if kind == "full":
        model = tiny_model(config=config)
    elif kind == "lora_qv":
        model = peft_model("lora", config=config, targets=["q_proj", "v_proj"])
    else:
        model = peft_model(kind, config=config)
    model = model.to(dtype).train()
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()  # peft keeps adapters in fp32 (autocast_adapter_dtype)
    ids = torch.randint(0, 1000, (3, 50))
    tokens = 3 * (50 + (20 if method == "prompt" else 0))
    measured = saved_bytes(model, ids) - tokens * 1000 * 4  # minus the log-softmax output, counted with logits
    est = predict_memory(config, method, dtype="bf16" if dtype == torch.bfloat16 else "fp32", batch_size=3,
                         seq_len=50, **kw)
    assert est.details["saved_activations"] == pytest.approx(measured, rel=0.02)


# ---------------------------------------------------------------- memory anchors and behaviour
@pytest.mark.parametrize("name", ["meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.3"])
def test_7b_anchors(name):
    config = KNOWN_CONFIGS[name]
    n = analytic_total_params(config)
    full = predict_memory(config, "full", dtype="bf16", device="cuda", batch_size=1, seq_len=16)
    assert full.model_states / n == pytest.approx(16, rel=0.10)  # ZeRO: 2 + 2 + 12 bytes per parameter
    assert full.model_states / n == 16.0
    q = predict_memory(config, "qlora", dtype="bf16", device="cuda", batch_size=1, seq_len=16)
    comp = q.details
    quantized = n - config.vocab_size * config.hidden_size * 2 - (2 * config.num_hidden_layers + 1) * 4096
    fp32_rest = (n - quantized) * 4 + comp["trainable_params"] * 4
    assert (q.weights - fp32_rest) / quantized == pytest.approx(0.52, rel=0.10)  # QLoRA: 4.127 bits
    q_no_dq = predict_memory(config, "qlora", dtype="bf16", device="cuda", double_quant=False, batch_size=1)
    assert (q_no_dq.weights - q.weights) / quantized == pytest.approx((0.5 - 0.127) / 8, rel=0.01)


def test_cuda_terms_math_attention_and_foreach_adamw():
    """On CUDA (checked against max_memory_allocated on an H200: benchmarks/memory_accuracy.py --device cuda):
    fp32 with grouped-query attention runs SDPA's math path, which saves heads x s probabilities per token and
    keys and values at every head, and no log-sum-exp; foreach AdamW's step holds one gradient-sized temporary."""
    gqa = KNOWN_CONFIGS["HuggingFaceTB/SmolLM2-135M"]  # 9 heads, 3 key/value heads of 64, 30 layers
    kw = {"batch_size": 2, "seq_len": 100}
    extra = 2 * 100 * 30 * (4 * 9 * 100 + 2 * 4 * (576 - 192) - 4 * 9)
    cpu, cuda = (predict_memory(gqa, "lora", dtype="fp32", device=d, **kw) for d in ("cpu", "cuda"))
    assert cuda.details["saved_activations"] - cpu.details["saved_activations"] == extra
    for dtype in ("bf16", "fp16"):  # flash attention takes grouped keys in 16-bit: nothing added
        assert (predict_memory(gqa, "lora", dtype=dtype, device="cuda", **kw).details["saved_activations"]
                == predict_memory(gqa, "lora", dtype=dtype, device="cpu", **kw).details["saved_activations"])
    mha = KNOWN_CONFIGS["HuggingFaceTB/SmolLM2-1.7B"]  # as many key/value heads as heads: a fused kernel
    assert (predict_memory(mha, "lora", dtype="fp32", device="cuda", **kw).details["saved_activations"]
            == predict_memory(mha, "lora", dtype="fp32", device="cpu", **kw).details["saved_activations"])
    full = predict_memory(gqa, "full", dtype="fp32", device="cuda", grad_checkpointing=True, **kw)
    assert full.details["optimizer_temp"] == full.details["all_gradients"] == 4 * analytic_total_params(gqa)
    assert full.phase == "optimizer step"
    assert predict_memory(gqa, "full", dtype="fp32", device="cuda", optimizer="sgd", **kw).details[
        "optimizer_temp"] == 0


def test_memory_grows_with_settings_and_sums_up():
    cfg = KNOWN_CONFIGS["HuggingFaceTB/SmolLM2-135M"]
    base = predict_memory(cfg, "lora")
    assert base.total == sum(base.as_frame()["bytes"]) and base.total_gib == base.total / GIB
    assert predict_memory(cfg, "lora", batch_size=8).activations > base.activations
    assert predict_memory(cfg, "lora", seq_len=256).activations > base.activations
    assert predict_memory(cfg, "lora", grad_checkpointing=True).activations < base.activations / 1.5
    assert predict_memory(cfg, "lora", rank=64).total > base.total
    full = predict_memory(cfg, "full")
    assert full.total > base.total and full.details["optimizer_states"] == 8 * 134_515_008
    sgd, eight = predict_memory(cfg, "full", optimizer="sgd"), predict_memory(cfg, "full", optimizer="adamw8bit")
    assert sgd.details["optimizer_states"] == 0 < eight.details["optimizer_states"] < full.details["optimizer_states"]
    assert predict_memory(cfg, "qlora").weights < base.weights / 2
    sweep = sweep_memory(cfg, "lora", vary="rank", values=[4, 16, 64])
    assert list(sweep["total_gib"]) == sorted(sweep["total_gib"])


def test_predict_memory_needs_only_the_config(monkeypatch):
    """A prediction builds and runs no torch module (benchmarks/quick_paths.py times it)."""
    import torch

    def fail(*args, **kwargs):
        pytest.fail("predict_memory built or ran a torch module")

    cfg = KNOWN_CONFIGS["meta-llama/Llama-3.1-8B"]
    monkeypatch.setattr(torch.nn.Module, "__init__", fail)
    monkeypatch.setattr(torch.nn.Module, "__call__", fail)
    assert predict_memory(cfg, "qlora", rank=16, batch_size=2, seq_len=512).total_gib > 0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw,words", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -2}, "batch_size"), ({"seq_len": 0}, "seq_len"),
    ({"rank": 0}, "rank"), ({"rank": -4}, "rank"), ({"dtype": "fp8"}, "dtype"), ({"optimizer": "adam9"}, "optimizer"),
    ({"rank": 65}, "larger than"), ({"target_modules": ["qproj"]}, "target modules"),
    ({"device": "tpu"}, "device"), ({"quantization": "nf3"}, "quantization"), ({"lr": 1e-3}, "setting")])
def test_bad_predict_input_is_refused(kw, words):
    with pytest.raises(LabkitError, match=words):
        predict_memory(tiny_config(), "lora", **kw)


def test_other_bad_inputs_are_refused():
    with pytest.raises(LabkitError, match="Unknown method"):
        analytic_trainable_params(tiny_config(), "lorax")
    with pytest.raises(LabkitError, match="num_labels"):
        analytic_trainable_params(tiny_config(), "linear_probe")
    with pytest.raises(LabkitError, match="trains nothing"):
        predict_memory(tiny_config(), "bitfit")
    with pytest.raises(LabkitError, match="cannot be quantized"):
        predict_memory(tiny_config(), "full", quantization="nf4")
    with pytest.raises(LabkitError, match="T4"):
        get_hardware("T5")
    with pytest.raises(LabkitError, match="fp16"):
        will_it_fit("mistralai/Mistral-7B-v0.3", "qlora", "T4", dtype="bf16")
    with pytest.raises(LabkitError, match="offline config"):
        will_it_fit("not-a-model", "lora", "T4")
    with pytest.raises(LabkitError, match="positive"):
        training_flops(0, 10)


# ---------------------------------------------------------------- measurement
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resettable peak (VmHWM) is Linux-only")
def test_measure_peak_memory_cpu_is_reset_per_block():
    with measure_peak_memory("cpu") as big:
        x = torch.ones(50_000_000)  # 200 MB, freed before the block ends
        del x
    with measure_peak_memory("cpu") as small:
        y = torch.ones(1000)
    assert 180e6 < big.peak_bytes < 260e6 and big.device == "cpu"
    assert small.peak_bytes < 30e6 and y.sum() == 1000
    assert big.peak_gib == big.peak_bytes / GIB and "VmHWM" in big.method


@pytest.mark.requires_gpu
def test_measure_peak_memory_cuda():
    with measure_peak_memory("cuda") as mem:
        x = torch.ones(25_000_000, device="cuda")
        del x
    assert 95e6 < mem.peak_bytes < 110e6 and mem.device == "cuda"


def test_measure_throughput_leaves_weights_unchanged():
    model = peft_model("lora")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    speed = measure_throughput(model, batch_size=2, seq_len=16, num_steps=2)
    assert speed.tokens_per_s > 0 and speed.num_steps == 2 and speed.tflops_per_s > 0
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


# ---------------------------------------------------------------- FLOPs, time, cost, fit
def test_flops_time_and_cost():
    assert training_flops(100, 10) == 6000
    assert training_flops(100, 10, trainable_params=5) == 4 * 100 * 10 + 2 * 5 * 10
    assert training_flops(100, 10, trainable_params=100) == training_flops(100, 10)
    assert estimate_time_s(1e15, "A100-80GB", "bf16", mfu=0.5) == pytest.approx(1e15 / 156e12)
    assert estimate_cost(1e15, "A100-80GB", "bf16", mfu=0.5) == pytest.approx(1e15 / 156e12 / 3600 * 1.30)
    assert estimate_time_s(1e12, "T4", "tf32", mfu=1.0) == pytest.approx(1 / 8.1)  # no TF32: the fp32 speed
    for hw in HARDWARE.values():
        assert hw.price_date and hw.source and hw.mem_gib > 0 and hw.peak_tflops["fp32"] > 0


def test_will_it_fit_from_config_alone():
    report = will_it_fit("mistralai/Mistral-7B-v0.3", "qlora", "T4", rank=16)
    assert report.fits and report.capacity_gib == 15.0 and 4 < report.need_gib < 9
    assert str(report).startswith("Mistral-7B-v0.3 QLoRA r=16 on a T4: fits, ~")
    assert str(report).endswith(" GiB of 15")
    full = will_it_fit("meta-llama/Llama-3.1-8B", "full", "A100-80GB")
    assert not full.fits and "does not fit" in str(full) and full.need_gib > 100
    table = compare_costs("HuggingFaceTB/SmolLM2-135M", 1e6, hardware=["T4", "H100"])
    assert set(table["method"]) == {"full", "lora", "qlora"} and len(table) == 6
    assert (table["cost_usd"] > 0).all() and table["fits"].all()


def test_every_registered_method_has_a_prediction():
    from labkit.methods import list_methods

    for name in list_methods():
        kw = {"labels": ["yes", "no"], "pooling": "mean"} if name == "linear_probe" else {"alpha": 16.0}
        if name == "bitfit":
            assert predict_memory(tiny_config(attention_bias=True), name).total > 0
            continue
        est = predict_memory(tiny_config(), name, **kw)
        assert est.total > est.weights > 0 and est.phase, name


def test_the_meters_follow_the_registry_not_method_names(monkeypatch):
    """A new method of an existing family gets that family's formulas, title and settings without a meters edit."""
    from labkit import methods

    lora = methods.get_method("lora")
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))  # the new method leaves with the test
    facts = {f.name: getattr(lora, f.name) for f in dataclasses.fields(lora) if f.name not in ("name", "title")}
    methods.register_method("lora_twin", title="LoRA twin", **facts)
    config = tiny_config()
    assert analytic_trainable_params(config, "lora_twin", rank=4) == analytic_trainable_params(config, "lora", rank=4)
    assert predict_memory(config, "lora_twin", rank=4) == predict_memory(config, "lora", rank=4)
    report = will_it_fit("mistralai/Mistral-7B-v0.3", "lora_twin", "T4", rank=16)
    assert str(report).startswith("Mistral-7B-v0.3 LoRA twin r=16 on a T4") and report.rank == 16


def test_fit_reports_take_titles_and_ranks_from_the_registry():
    prompt = will_it_fit("HuggingFaceTB/SmolLM2-135M", "prompt", "T4")
    assert str(prompt).startswith("SmolLM2-135M prompt tuning on a T4: fits") and prompt.rank is None
    qlora = will_it_fit("HuggingFaceTB/SmolLM2-135M", "qlora", "T4", rank=8)
    lora = will_it_fit("HuggingFaceTB/SmolLM2-135M", "lora", "T4", rank=8)
    assert qlora.estimate.details["saved_activations"] < lora.estimate.details["saved_activations"]  # checkpointing
    assert qlora.estimate.weights < 0.7 * lora.estimate.weights  # its base_quantization, nf4 (embeddings stay fp32)


def test_full_fine_tuning_costs_six_n_d():
    config = KNOWN_CONFIGS["HuggingFaceTB/SmolLM2-135M"]
    table = compare_costs(config, 1e6, hardware=["H100"]).set_index("method")
    n = matmul_params(config)
    assert table.loc["full", "time_s"] == pytest.approx(estimate_time_s(6 * n * 1e6, "H100", "bf16"))
    trainable = analytic_trainable_params(config, "lora", rank=16)
    assert table.loc["lora", "time_s"] == pytest.approx(estimate_time_s(4 * n * 1e6 + 2 * trainable * 1e6, "H100"))


def test_keep_logits_adds_one_copy_of_the_logits():
    base = predict_memory(tiny_config(), "lora", batch_size=2, seq_len=16)
    kept = predict_memory(tiny_config(), "lora", batch_size=2, seq_len=16, keep_logits=True)
    assert kept.total - base.total == 2 * 16 * 1000 * 4


def test_measure_peak_memory_fallback_says_it_cannot_reset(monkeypatch):
    from labkit.meters import measure

    monkeypatch.setattr(measure, "_reset_hwm", lambda: False)
    with measure_peak_memory("cpu") as mem:
        x = torch.ones(10_000_000)
    assert "cannot reset" in mem.note and mem.peak_bytes >= 0 and x.numel() == 10_000_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator pin is glibc's (Linux)")
def test_the_allocator_pin_lasts_for_the_block_only():
    """Pinned, every later large allocation is a fresh mapping (1.7x slower QLoRA steps): it must not outlive the block."""
    from labkit.meters import measure

    assert not measure._PINNED
    with measure_peak_memory("cpu"):
        assert measure._PINNED
    assert not measure._PINNED
    with measure_peak_memory("cpu", pin_allocator=False):
        assert not measure._PINNED
    measure.pin_glibc_allocator()  # pinned by the caller for a whole benchmark: a block inside leaves it pinned
    try:
        with measure_peak_memory("cpu"):
            pass
        assert measure._PINNED
    finally:
        measure.unpin_glibc_allocator()
    assert not measure._PINNED


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap cache (Linux)")
def test_a_block_after_a_bigger_one_still_sees_its_own_peak():
    """glibc keeps freed heap blocks; a later block that reuses them must still count what it allocates."""
    from labkit.meters.measure import M_MMAP_THRESHOLD, _mallopt

    _mallopt(M_MMAP_THRESHOLD, 32 * MIB)  # glibc's state after large frees: 1 MB tensors come from the heap
    junk = [torch.ones(250_000) for _ in range(200)]  # 200 MB on the heap
    above = torch.ones(250_000)  # live above them, so freeing them cannot shrink the heap by itself
    del junk
    with measure_peak_memory("cpu", pin_allocator=False) as mem:
        keep = [torch.ones(250_000) for _ in range(100)]  # 100 MB
    assert 80e6 < mem.peak_bytes < 150e6, mem.peak_bytes
    assert len(keep) == 100 and above.numel() == 250_000


# ---------------------------------------------------------------- chapter 3's methods (lab 03)
CHAPTER3 = ["vera", "loha", "lokr", "oft", "adalora", "ptuning"]


@pytest.mark.parametrize("method,kw,expected", [
    ("vera", {}, 2 * ((64 + 256) + (32 + 256))),  # b (out) + d (rank 256) on q and v
    ("loha", {"rank": 4}, 2 * 2 * 4 * (128 + 96 + 96 + 128 + 192 + 192 + 192)),  # two B·A pairs per layer
    ("lokr", {"rank": 4}, 1856), ("oft", {"block_size": 8}, 3584),
    ("adalora", {"rank": 6, "target_rank": 4}, 12372), ("ptuning", {"num_virtual_tokens": 4, "encoder_hidden_size": 16},
                                                         4 * 64 + 64 * 16 + 16 + 16 * 16 + 16 + 16 * 64 + 64),
    ("lora", {"rank": 4, "layers": [1]}, 8192 // 2), ("lora", {"rank": 4, "rank_pattern": {"q_proj": 2}}, 8192 - 2 * 2 * 128)])
def test_chapter3_counts_hard_coded(method, kw, expected):
    assert analytic_trainable_params(tiny_config(), method, **kw) == expected


@pytest.mark.parametrize("method", CHAPTER3)
@pytest.mark.parametrize("cls", [LlamaForCausalLM, MistralForCausalLM])
def test_chapter3_counts_match_peft(method, cls):
    import peft

    config = tiny_config(MistralConfig if cls is MistralForCausalLM else LlamaConfig)
    configs = {"vera": peft.VeraConfig(r=256, target_modules=["q_proj", "v_proj"]),
               "loha": peft.LoHaConfig(r=8, alpha=16, target_modules="all-linear"),
               "lokr": peft.LoKrConfig(r=8, alpha=16, target_modules="all-linear"),
               "oft": peft.OFTConfig(r=0, oft_block_size=32, target_modules="all-linear"),
               "adalora": peft.AdaLoraConfig(init_r=12, target_r=8, total_step=10, target_modules="all-linear"),
               "ptuning": peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=20,
                                                   encoder_hidden_size=128)}
    model = peft.get_peft_model(tiny_model(cls, config), configs[method])
    assert trainable(model) == analytic_trainable_params(config, method)  # the registry's defaults


@pytest.mark.parametrize("method", CHAPTER3)
def test_chapter3_methods_have_a_prediction(method):
    est = predict_memory(tiny_config(), method)
    assert est.total > est.weights > 0 and est.details["trainable_params"] == analytic_trainable_params(
        tiny_config(), method)
    longer = predict_memory(tiny_config(), method, seq_len=256)
    assert longer.activations > est.activations


def test_oft_block_size_must_divide_the_inputs():
    with pytest.raises(LabkitError, match="block_size=48 does not divide"):
        analytic_trainable_params(tiny_config(), "oft", block_size=48)


def test_copy_bandwidth_measures_and_rejects_small_buffers():
    from labkit.meters import measure_copy_bandwidth_gbs

    with pytest.raises(LabkitError, match="size_mib"):
        measure_copy_bandwidth_gbs(size_mib=1)  # fits in a cache: it would measure the cache, not memory
    with pytest.raises(LabkitError, match="repeats"):
        measure_copy_bandwidth_gbs(size_mib=8, repeats=0)
    assert measure_copy_bandwidth_gbs(size_mib=8, repeats=1) > 0
