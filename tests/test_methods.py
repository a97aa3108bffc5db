"""The method registry, table-driven: exact trainable sets, loss falls, save/load round-trips, bad input refused."""

import copy
import dataclasses
import re
from pathlib import Path

import datasets
import pytest
import torch

from labkit import LabkitError, apply_method, get_method, list_methods, methods
from labkit.methods import (
    FAMILIES,
    discover_methods,
    load_trainable,
    merge_lora,
    register_method,
    save_trainable,
    trainable_names,
)
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


# The order learners see, and every method's facts, hard-coded so that a change to the registry shows up here.
ORDER = ["full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "bitfit", "norm", "linear_probe"]
FACT_NAMES = ("default_lr", "size_knob", "takes_targets", "mergeable", "adds_latency", "analogue", "family",
              "base_quantization", "title")
FACTS = {
    "full": (5e-5, None, False, False, False, None, "all_weights", None, "full fine-tuning"),
    "lora": (1e-3, "rank", True, True, False, None, "low_rank", None, "LoRA"),
    "dora": (1e-3, "rank", True, True, False, None, "low_rank_magnitude", None, "DoRA"),
    "qlora": (1e-3, "rank", True, True, False, None, "low_rank", "nf4", "QLoRA"),
    "adapter": (1e-3, "bottleneck", False, False, True, None, "bottleneck", None, "adapters"),
    "prefix": (1e-2, "num_virtual_tokens", False, False, True, None, "kv_prefix", None, "prefix tuning"),
    "prompt": (3e-2, "num_virtual_tokens", False, False, True, None, "soft_prompt", None, "prompt tuning"),
    "ia3": (1e-2, None, True, True, False, None, "scaling", None, "(IA)^3"),
    "bitfit": (1e-3, None, False, False, False, "norm", "biases", None, "BitFit"),
    "norm": (1e-2, None, False, True, False, None, "norm_weights", None, "norm tuning"),
    "linear_probe": (3e-3, None, False, False, False, None, "head", None, "linear probe"),
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


def _mergeable(on_cpu_base: bool) -> list[str]:
    return [m for m in list_methods() if get_method(m).mergeable == on_cpu_base and not get_method(m).base_quantization]


@pytest.mark.parametrize("name", _mergeable(True))
def test_merging_gives_the_same_outputs(name, tiny):
    model = apply_method(copy.deepcopy(tiny[0]), name, **CASES[name][0])
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
        assert not any(part in n for n, _ in merged.named_parameters() for part in ("lora_", "ia3_", "ln_tuning"))
        assert torch.allclose(merged(input_ids=batch).logits, expected, atol=1e-4)


@pytest.mark.parametrize("name", _mergeable(False))
def test_merge_refuses_what_the_registry_calls_not_mergeable(name, tiny, biased):
    model = apply_method(copy.deepcopy(biased if name == "bitfit" else tiny[0]), name, **CASES[name][0])
    with pytest.raises(LabkitError, match="apply_method|cannot be"):
        merge_lora(model)


def test_merge_refuses_a_plain_model(tiny):
    with pytest.raises(LabkitError, match="apply_method.*mergeable method: lora, dora, qlora, ia3, norm"):
        merge_lora(copy.deepcopy(tiny[0]))


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
    assert list_methods() == ORDER
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


# ---- the registry knows each method ----

def test_every_registered_method_has_hard_coded_facts():
    assert set(FACTS) == set(list_methods())


@pytest.mark.parametrize("name", ORDER)
def test_method_facts(name):
    method = get_method(name)
    assert {fact: getattr(method, fact) for fact in FACT_NAMES} == dict(zip(FACT_NAMES, FACTS[name]))
    assert method.family in FAMILIES and method.note
    fields = {f.name for f in dataclasses.fields(method.config)}
    assert method.size_knob is None or method.size_knob in fields
    assert method.takes_targets == ("target_modules" in fields)
    assert method.analogue is None or method.analogue in list_methods()
    assert not (method.mergeable and method.adds_latency)


def test_the_size_knob_sets_the_size(tiny):
    """Twice the size knob, about twice the trainable parameters: the knob is the size, not another setting."""
    for name in ("lora", "adapter", "prompt"):
        knob = get_method(name).size_knob
        small, big = (apply_method(copy.deepcopy(tiny[0]), name, **{knob: size}) for size in (4, 8))
        count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
        assert 1.8 < count(big) / count(small) <= 2.0, name  # adapters: their output bias does not grow


def test_discovery_finds_every_method_module():
    folder = Path(methods.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert set(discover_methods()) == modules  # importing again registers nothing twice
    registered_by = {get_method(name).apply.__module__.rpartition(".")[2] for name in list_methods()}
    assert registered_by == modules - {"saving"}  # every module but the save/load helper registers a method


def test_the_order_is_the_order_fact_not_the_import_order(monkeypatch):
    monkeypatch.setattr(methods, "_REGISTRY", dict(reversed(methods._REGISTRY.items())))
    assert list_methods() == ORDER
    facts = dict(zip(FACT_NAMES, FACTS["full"]))
    register_method("zz_first_after_full", config=get_method("full").config, apply=lambda m, c: m, summary="",
                    adds="", stores="", trainable=(), order=5, note="-", **facts)
    assert list_methods()[:3] == ["full", "zz_first_after_full", "lora"]


# ---- bad input is refused with a sentence that says what to do ----

def test_unknown_method_lists_the_registered_ones(tiny):
    with pytest.raises(LabkitError, match="Unknown method 'lorra'.*lora.*linear_probe"):
        apply_method(copy.deepcopy(tiny[0]), "lorra")


@pytest.mark.parametrize("rank", [0, -4, 2.5])
def test_rank_must_be_positive(rank, tiny):
    with pytest.raises(LabkitError, match="rank must be a (positive )?whole number"):
        apply_method(copy.deepcopy(tiny[0]), "lora", rank=rank)


@pytest.mark.parametrize("name, kwargs, says", [
    ("lora", {"alpha": "big"}, "lora setting alpha must be a number, like the default alpha=16.0; got 'big'"),
    ("dora", {"dropout": None}, "dropout must be a number"),
    ("lora", {"target_modules": 7}, "target_modules must be a list or a string"),
    ("adapter", {"bottleneck": "64"}, "bottleneck must be a whole number, like the default bottleneck=64"),
    ("adapter", {"style": 2}, "style must be a string"),
    ("prompt", {"init_text": 5}, "init_text must be a string or None"),
    ("ia3", {"feedforward_modules": 1.0}, "feedforward_modules must be a list or a string"),
    ("linear_probe", {"labels": "ab"}, "labels must be a list; got 'ab'"),
])
def test_settings_of_the_wrong_type_are_refused(name, kwargs, says, tiny):
    with pytest.raises(LabkitError, match=re.escape(says)):
        apply_method(copy.deepcopy(tiny[0]), name, **kwargs)


def test_settings_of_the_right_type_pass(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "lora", alpha=16, target_modules=("q_proj",))  # int alpha, tuple
    assert trainable_names(model)
    model = apply_method(copy.deepcopy(tiny[0]), "ia3", target_modules="k_proj", feedforward_modules=[])
    assert len(trainable_names(model)) == 2


@pytest.mark.parametrize("name", ["lora", "dora"])
def test_a_rank_larger_than_a_layer_is_refused_as_the_meters_refuse_it(name, tiny):
    from labkit import meters

    config = tiny[0].config  # q_proj 64 -> 64, v_proj 64 -> 32, gate_proj 64 -> 128
    with pytest.raises(LabkitError, match="rank=100000 is larger than q_proj .* at most 64"):
        apply_method(copy.deepcopy(tiny[0]), name, rank=100000)
    with pytest.raises(LabkitError, match="rank=100000 is larger than q_proj .* at most 64"):
        meters.analytic_trainable_params(config, name, rank=100000)
    for where in (apply_method, meters.analytic_trainable_params):
        with pytest.raises(LabkitError, match=r"v_proj \(64 -> 32\) can use: pick a rank of at most 32"):
            where(copy.deepcopy(tiny[0]) if where is apply_method else config, name, rank=33,
                  target_modules=["v_proj"])
    assert len(trainable_names(apply_method(copy.deepcopy(tiny[0]), name, rank=32, target_modules=["v_proj"])))


def test_qlora_refuses_a_rank_larger_than_a_layer(tiny_nf4):
    with pytest.raises(LabkitError, match="rank=100000 is larger than"):
        apply_method(copy.deepcopy(tiny_nf4[0]), "qlora", rank=100000)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_checkpoint_is_explained(damage, tiny, tmp_path):
    path = save_trainable(apply_method(copy.deepcopy(tiny[0]), "lora", rank=4), tmp_path / "run.safetensors")
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a checkpoint at all", "truncated": data[:-100], "empty": b""}[damage])
    with pytest.raises(LabkitError, match="not a readable safetensors file.*save the model again with save_trainable"):
        load_trainable(copy.deepcopy(tiny[0]), path)


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
                        stores="", trainable=(), order=99, note="-", **dict(zip(FACT_NAMES, FACTS["lora"])))


@pytest.mark.parametrize("wrong, says", [
    ({"size_knob": "width"}, "size_knob 'width'.*not a setting"), ({"takes_targets": False}, "takes_targets"),
    ({"family": "lora"}, "Unknown family 'lora'"), ({"default_lr": 0}, "default_lr.*positive"),
    ({"adds_latency": True}, "both mergeable and add latency"),
])
def test_registry_refuses_facts_that_contradict_the_config(wrong, says, monkeypatch):
    config = get_method("lora").config
    monkeypatch.setattr(methods, "_REGISTRY", {})  # the real registry stays as it is
    facts = {**dict(zip(FACT_NAMES, FACTS["lora"])), **wrong}
    with pytest.raises(LabkitError, match=says):
        register_method("new", config=config, apply=lambda m, c: m, summary="", adds="", stores="", trainable=(),
                        order=99, note="-", **facts)


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
