"""The method registry, table-driven: exact trainable sets, loss falls, save/load round-trips, bad input refused."""

import copy
import dataclasses

import datasets
import pytest
import torch

from labkit import LabkitError, apply_method, get_method, list_methods
from labkit.methods import load_trainable, merge_lora, register_method, save_trainable, trainable_names
from labkit.models import bitsandbytes_works, load_model
from labkit.training import train
from labkit.training.evaluate import run_eval

LABELS = ["billing", "refund", "weather"]

# method -> (settings for tiny-llama, learning rate that moves it in 3 steps)
CASES = {
    "full": ({}, 1e-3),
    "lora": ({"rank": 4, "target_modules": ["q_proj", "v_proj"]}, 2e-2),
    "dora": ({"rank": 4, "target_modules": "all-linear"}, 2e-2),
    "qlora": ({"rank": 4}, 2e-2),
    "adapter": ({"bottleneck": 8}, 1e-2),
    "prefix": ({"num_virtual_tokens": 4}, 5e-2),
    "prompt": ({"num_virtual_tokens": 4}, 1e-1),
    "ia3": ({}, 5e-2),
    "bitfit": ({}, 5e-2),
    "norm": ({}, 5e-2),
    "linear_probe": ({"labels": LABELS}, 5e-2),
}

# The exact trainable names each method promises on tiny-llama (2 layers), hard-coded so that a change shows up.
LAYER = "base_model.model.model.layers.{i}."
EXPECTED = {
    "lora": {f"{LAYER}self_attn.{m}_proj.lora_{ab}.default.weight".format(i=i)
             for i in (0, 1) for m in ("q", "v") for ab in "AB"},
    "ia3": {f"{LAYER}{m}.ia3_l.default".format(i=i)
            for i in (0, 1) for m in ("self_attn.k_proj", "self_attn.v_proj", "mlp.down_proj")},
    "adapter": {f"model.layers.{i}.{block}.adapter.{part}.{kind}"
                for i in (0, 1) for block in ("self_attn", "mlp") for part in ("down", "up") for kind in ("weight", "bias")},
    "prefix": {"prompt_encoder.default.embedding.weight"},
    "prompt": {"prompt_encoder.default.embedding.weight"},
    "linear_probe": {"head.weight", "head.bias"},
    "bitfit": {f"model.layers.{i}.{m}.bias" for i in (0, 1) for m in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")},
    "norm": {f"{LAYER}{n}.ln_tuning_layers.default.weight".format(i=i)
             for i in (0, 1) for n in ("input_layernorm", "post_attention_layernorm")}
    | {"base_model.model.model.norm.ln_tuning_layers.default.weight"},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread (conftest)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def tiny_nf4():
    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize here; QLoRA's refusal is tested separately")
    return load_model("tiny-llama", quantization="nf4")


@pytest.fixture(scope="module")
def biased():
    """A tiny Llama with bias terms (attention_bias, mlp_bias), the kind of model BitFit is for."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=True)
    return LlamaForCausalLM(cfg).eval()


def _base(name, tiny, tiny_nf4, biased):
    if name == "bitfit":
        return biased
    if name == "qlora":
        return tiny_nf4[0]
    return tiny[0]


def _data(name, vocab):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (4, 16), generator=gen).tolist()
    if name == "linear_probe":
        return datasets.Dataset.from_dict({"input_ids": ids, "label": ["billing", "refund", "weather", "refund"]})
    return datasets.Dataset.from_dict({"input_ids": ids})


def _loss(model, examples, objective):
    return run_eval(model, examples, 4, 0, objective)["eval_loss"]


def check_trainable(model, name):
    """Names trained but not promised, and promised but not trained (both empty when the method keeps its word)."""
    method = get_method(name)
    trained = trainable_names(model)
    promised = {n for n, _ in model.named_parameters() if method.promises(n)}
    return trained - promised, promised - trained


@pytest.mark.parametrize("name", list(CASES))
def test_method_trains_exactly_what_it_promises_and_round_trips(name, tiny, tiny_nf4, biased, tmp_path):
    from labkit.batches import tokenize

    base = _base(name, tiny, tiny_nf4, biased)
    kwargs, lr = CASES[name]
    model = apply_method(copy.deepcopy(base), name, **kwargs)

    extra, missing = check_trainable(model, name)
    assert not extra and not missing
    assert trainable_names(model)
    if name in EXPECTED:
        assert trainable_names(model) == EXPECTED[name]
    if name != "full":
        assert any(not p.requires_grad for p in model.parameters())

    objective = "classification" if name == "linear_probe" else "causal_lm"
    data = _data(name, base.config.vocab_size)
    examples = tokenize(data, None, objective, seq_len=16, label2id=getattr(model, "label2id", None))
    before = _loss(model, examples, objective)
    result = train(model, None, data, objective=objective, num_steps=3, batch_size=4, seq_len=16, lr=lr,
                   progress=False, live_plot=False)
    assert list(result.history["step"]) == [1, 2, 3]
    assert _loss(model, examples, objective) < before

    path = save_trainable(model, tmp_path / name)
    stored = {n for n, p in model.named_parameters() if p.requires_grad}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == stored  # only the trainable part is on disk
    batch = torch.tensor(data["input_ids"])
    restored = load_trainable(copy.deepcopy(base), path)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=batch).logits, restored(input_ids=batch).logits)


def test_the_trainable_check_catches_an_extra_or_missing_parameter(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
    model.base_model.model.model.norm.weight.requires_grad_(True)
    assert check_trainable(model, "lora")[0] == {"base_model.model.model.norm.weight"}
    model.base_model.model.model.norm.weight.requires_grad_(False)
    next(p for n, p in model.named_parameters() if "lora_A" in n).requires_grad_(False)
    assert len(check_trainable(model, "lora")[1]) == 1


@pytest.mark.parametrize("name, kwargs", [
    ("full", {}), ("lora", {"rank": 4}), ("lora", {"rank": 8, "target_modules": ["q_proj", "v_proj"]}),
    ("dora", {"rank": 4}), ("adapter", {"bottleneck": 8}), ("adapter", {"bottleneck": 8, "style": "pfeiffer"}),
    ("prefix", {"num_virtual_tokens": 4}), ("prompt", {"num_virtual_tokens": 4}), ("ia3", {}), ("norm", {}),
    ("linear_probe", {"labels": LABELS}),
])
def test_trainable_count_matches_the_meters_formula(name, kwargs, tiny):
    meters = pytest.importorskip("labkit.meters")
    model = apply_method(copy.deepcopy(tiny[0]), name, **kwargs)
    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert meters.analytic_trainable_params(tiny[0].config, name, **kwargs) == real  # the same settings, as given


def test_bitfit_and_qlora_counts_match_the_meters_formula(biased, tiny_nf4):
    from labkit import meters

    model = apply_method(copy.deepcopy(biased), "bitfit")
    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # biases per layer: q, o, down 32 each; k, v 16 each (2 kv heads of 8); gate, up 64 each
    assert real == meters.analytic_trainable_params(biased.config, "bitfit") == 2 * (3 * 32 + 2 * 16 + 2 * 64)
    model = apply_method(copy.deepcopy(tiny_nf4[0]), "qlora", rank=4)
    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert real == meters.analytic_trainable_params(tiny_nf4[0].config, "qlora", rank=4)


def test_lora_parameters_on_tiny_llama_by_hand(tiny):
    # q_proj: 64 -> 64, v_proj: 64 -> 32 (2 of 4 heads are kv heads); per layer r*(64+64) + r*(64+32); 2 layers
    qv = ["q_proj", "v_proj"]
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, target_modules=qv)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 4 * (128 + 96)
    doubled = apply_method(copy.deepcopy(tiny[0]), "lora", rank=8, target_modules=qv)
    assert sum(p.numel() for p in doubled.parameters() if p.requires_grad) == 2 * 8 * (128 + 96)


@pytest.mark.parametrize("name", ["lora", "dora", "ia3"])
def test_merging_gives_the_same_outputs(name, tiny):
    model = apply_method(copy.deepcopy(tiny[0]), name, **({"rank": 4} if name != "ia3" else {}))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # a non-trivial update (lora_B starts at zero)
    batch = torch.randint(3, 1000, (2, 12), generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=batch).logits
        merged = merge_lora(model)
        assert not hasattr(merged, "peft_config") or not merged.peft_config
        assert not any("lora_" in n or "ia3_" in n for n, _ in merged.named_parameters())
        assert torch.allclose(merged(input_ids=batch).logits, expected, atol=1e-4)


def test_merge_refuses_what_cannot_be_merged(tiny):
    with pytest.raises(LabkitError, match="apply_method"):
        merge_lora(copy.deepcopy(tiny[0]))
    with pytest.raises(LabkitError, match="cannot|Only LoRA"):
        merge_lora(apply_method(copy.deepcopy(tiny[0]), "prompt", num_virtual_tokens=2))


def test_adapters_start_equal_to_the_base_and_pfeiffer_adapts_half_the_blocks(tiny):
    base = tiny[0]
    batch = torch.randint(3, 1000, (1, 10), generator=torch.Generator().manual_seed(2))
    houlsby = apply_method(copy.deepcopy(base), "adapter", bottleneck=8)
    pfeiffer = apply_method(copy.deepcopy(base), "adapter", bottleneck=8, style="pfeiffer")
    with torch.no_grad():
        assert torch.equal(houlsby(input_ids=batch).logits, base(input_ids=batch).logits)
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert count(houlsby) == 2 * count(pfeiffer) == 2 * 2 * (64 * 8 + 8 + 8 * 64 + 64)


def test_every_method_describes_what_it_adds_and_stores():
    assert list_methods() == ["full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "bitfit",
                              "norm", "linear_probe"]
    for name in list_methods():
        method = get_method(name)
        text = method.describe()
        assert name in text and "adds:" in text and "stores per task:" in text
        assert dataclasses.is_dataclass(method.config)


def test_save_is_atomic_and_small(tiny, tmp_path):
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, target_modules=["q_proj", "v_proj"])
    path = save_trainable(model, tmp_path / "run.safetensors")
    assert path.name == "run.safetensors"
    assert [p.name for p in tmp_path.iterdir()] == ["run.safetensors"]  # no temp file left behind
    assert 7_000 < path.stat().st_size < 9_000  # 1792 fp32 numbers plus the header
    save_trainable(model, path)  # overwriting is fine
    assert len(list(tmp_path.iterdir())) == 1


# ---- bad input is refused with a sentence that says what to do ----

def test_unknown_method_lists_the_registered_ones(tiny):
    with pytest.raises(LabkitError, match="Unknown method 'lorra'.*lora.*linear_probe"):
        apply_method(copy.deepcopy(tiny[0]), "lorra")


@pytest.mark.parametrize("rank", [0, -4, 2.5])
def test_rank_must_be_positive(rank, tiny):
    with pytest.raises(LabkitError, match="rank must be a positive"):
        apply_method(copy.deepcopy(tiny[0]), "lora", rank=rank)


def test_target_modules_must_exist(tiny):
    with pytest.raises(LabkitError, match=r"\['query'\] are not in this model: choose from .*q_proj"):
        apply_method(copy.deepcopy(tiny[0]), "lora", target_modules=["q_proj", "query"])
    with pytest.raises(LabkitError, match="not in this model"):
        apply_method(copy.deepcopy(tiny[0]), "ia3", target_modules=["c_attn"], feedforward_modules=[])


@pytest.mark.parametrize("name", ["prefix", "prompt"])
@pytest.mark.parametrize("length", [0, -1])
def test_prefix_and_prompt_length_must_be_positive(name, length, tiny):
    with pytest.raises(LabkitError, match="num_virtual_tokens .* must be a positive"):
        apply_method(copy.deepcopy(tiny[0]), name, num_virtual_tokens=length)


def test_full_fine_tuning_refuses_quantized_weights(tiny_nf4):
    with pytest.raises(LabkitError, match="cannot train 4-bit/8-bit weights.*qlora"):
        apply_method(copy.deepcopy(tiny_nf4[0]), "full")


def test_qlora_needs_a_4bit_model(tiny):
    with pytest.raises(LabkitError, match="quantization='nf4'"):
        apply_method(copy.deepcopy(tiny[0]), "qlora")


def test_qlora_refused_where_bitsandbytes_cannot_run(tiny, monkeypatch):
    monkeypatch.setenv("LABKIT_DISABLE_BNB", "1")
    with pytest.raises(LabkitError, match="bitsandbytes"):
        apply_method(copy.deepcopy(tiny[0]), "qlora")


def test_the_biased_tiny_model_gives_bitfit_fourteen_bias_vectors():
    from labkit.methods.bitfit import tiny_model_with_biases

    model = apply_method(tiny_model_with_biases(), "bitfit")
    assert len(trainable_names(model)) == 14  # 7 linear layers x 2 decoder layers
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)


def test_bitfit_on_a_bias_free_model_points_to_norm_tuning(tiny):
    with pytest.raises(LabkitError, match="has none.*method='norm'"):
        apply_method(copy.deepcopy(tiny[0]), "bitfit")


def test_other_settings_are_checked(tiny):
    with pytest.raises(LabkitError, match="has no setting rnak"):
        apply_method(copy.deepcopy(tiny[0]), "lora", rnak=8)
    with pytest.raises(LabkitError, match="style"):
        apply_method(copy.deepcopy(tiny[0]), "adapter", style="parallel")
    with pytest.raises(LabkitError, match="at least two distinct"):
        apply_method(copy.deepcopy(tiny[0]), "linear_probe", labels=["only"])
    with pytest.raises(LabkitError, match="already has a fine-tuning method"):
        apply_method(apply_method(copy.deepcopy(tiny[0]), "lora"), "lora")


def test_registry_refuses_duplicates():
    with pytest.raises(LabkitError, match="already registered"):
        register_method("lora", config=get_method("lora").config, apply=lambda m, c: m, summary="", adds="",
                        stores="", trainable=())


# ---- the real model, for the main methods ----

@pytest.mark.parametrize("name", ["lora", "qlora"])
def test_main_methods_on_smollm2(name, tmp_path):
    if name == "qlora" and not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize here")
    model, tokenizer = load_model("smollm2-135m", quantization="nf4" if name == "qlora" else None)
    model = apply_method(model, name, rank=4, target_modules=["q_proj", "v_proj"])
    extra, missing = check_trainable(model, name)
    assert not extra and not missing
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 30 * 4 * (576 * 2 + 576 + 192)
    text = ["The lighthouse keeper counted the ships that passed the rocks before dawn."] * 4
    result = train(model, tokenizer, text, objective="causal_lm", num_steps=2, batch_size=2, seq_len=16, lr=1e-2,
                   progress=False, live_plot=False)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]
    path = save_trainable(model, tmp_path)
    assert path.stat().st_size < 1_000_000  # 230k numbers: under a megabyte, the base is 538 MB
