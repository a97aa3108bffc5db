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
    # chapter 3's variants and rivals (listed by list_methods(core_only=False))
    "vera": ({"rank": 16, "target_modules": "all-linear"}, 5e-2),  # mixed shapes: A and B sized for the largest
    "loha": ({"rank": 4, "target_modules": ["q_proj", "v_proj"]}, 2e-2),
    "lokr": ({"rank": 4}, 2e-2),
    "oft": ({"block_size": 8, "target_modules": ["q_proj", "v_proj"]}, 2e-2),
    "adalora": ({"rank": 6, "target_rank": 4, "target_modules": ["q_proj", "v_proj"]}, 2e-2),
    "ptuning": ({"num_virtual_tokens": 4, "encoder_hidden_size": 16}, 5e-2),
}
ALL = list(CASES)  # every registered method: the table-driven test covers each (none is marked as unable to run)

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
    "loha": {f"{LAYER}self_attn.{m}_proj.hada_w{k}_{ab}.default".format(i=i)
             for i in (0, 1) for m in ("q", "v") for k in "12" for ab in "ab"},
    "oft": {f"{LAYER}self_attn.{m}_proj.oft_R.default.weight".format(i=i) for i in (0, 1) for m in ("q", "v")},
    "adalora": {f"{LAYER}self_attn.{m}_proj.lora_{k}.default".format(i=i)
                for i in (0, 1) for m in ("q", "v") for k in "ABE"},
    "vera": {f"{LAYER}{m}.vera_lambda_{k}.default".format(i=i) for i in (0, 1) for k in "bd" for m in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")},
    "ptuning": {"prompt_encoder.default.embedding.weight"}
    | {f"prompt_encoder.default.mlp_head.{k}.{w}" for k in (0, 2, 4) for w in ("weight", "bias")},
}


# The order learners see, and every method's facts, hard-coded so that a change to the registry shows up here.
ORDER = ["full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "bitfit", "norm", "linear_probe"]
CHAPTER3 = ["vera", "loha", "lokr", "oft", "adalora", "ptuning"]  # core=False: after the core set, in this order
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
    "vera": (1e-2, "rank", True, True, False, None, "shared_projection", None, "VeRA"),
    "loha": (1e-3, "rank", True, True, False, None, "hadamard", None, "LoHa"),
    "lokr": (1e-3, "rank", True, True, False, None, "kronecker", None, "LoKr"),
    "oft": (1e-3, "block_size", True, True, False, None, "orthogonal", None, "OFT"),
    "adalora": (1e-3, "rank", True, True, False, None, "low_rank_adaptive", None, "AdaLoRA"),
    "ptuning": (1e-2, "num_virtual_tokens", False, False, True, None, "prompt_encoder", None, "P-tuning"),
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
    ("vera", {}), ("vera", {"rank": 16, "target_modules": "all-linear"}), ("loha", {"rank": 4}), ("lokr", {"rank": 4}),
    ("lokr", {"rank": 2, "target_modules": ["gate_proj", "down_proj"]}), ("lokr", {"rank": 8, "decompose_factor": 4}),
    ("oft", {"block_size": 8}), ("oft", {"block_size": 16, "target_modules": ["q_proj"]}),
    ("adalora", {"rank": 6, "target_rank": 4}), ("ptuning", {"num_virtual_tokens": 4, "encoder_hidden_size": 16}),
    ("lora", {"rank": 4, "rank_pattern": {"q_proj": 2, "layers.1.mlp.down_proj": 8}}), ("lora", {"rank": 4, "layers": [1]}),
    ("lora", {"rank": 4, "layers": [0], "target_modules": ["q_proj", "v_proj"], "rank_pattern": {"v_proj": 1}}),
    ("dora", {"rank": 4, "layers": [1]}), ("lora", {"rank": 4, "use_rslora": True, "init": "olora"}),
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
    return [m for m in list_methods(core_only=False)
            if get_method(m).mergeable == on_cpu_base and not get_method(m).base_quantization]


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
    assert list_methods() == ORDER  # the core set: what lab 01a compares and the method explorer offers
    assert list_methods(core_only=False) == ORDER + CHAPTER3
    assert len(list_methods(core_only=False)) >= 17  # issue 16's floor
    assert [get_method(n).core for n in list_methods(core_only=False)] == [True] * 11 + [False] * 6
    for name in list_methods(core_only=False):
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
    assert set(FACTS) == set(list_methods(core_only=False)) == set(CASES)


@pytest.mark.parametrize("name", ORDER + CHAPTER3)
def test_method_facts(name):
    method = get_method(name)
    assert {fact: getattr(method, fact) for fact in FACT_NAMES} == dict(zip(FACT_NAMES, FACTS[name]))
    assert method.family in FAMILIES and method.note
    fields = {f.name for f in dataclasses.fields(method.config)}
    assert method.size_knob is None or method.size_knob in fields
    assert method.takes_targets == ("target_modules" in fields)
    assert method.analogue is None or method.analogue in list_methods(core_only=False)
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
    registered_by = {get_method(name).apply.__module__.rpartition(".")[2] for name in list_methods(core_only=False)}
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


# ---- chapter 3: LoRA's options and the new methods' own rules ----

def test_plain_lora_builds_the_same_peft_config_as_before():
    from peft import LoraConfig

    from labkit.methods.lora import LoraSpec, lora_config

    before = LoraConfig(r=8, lora_alpha=16.0, lora_dropout=0.0, target_modules="all-linear", use_dora=False,
                        bias="none", task_type="CAUSAL_LM")
    assert lora_config(LoraSpec()).to_dict() == before.to_dict()


def test_rslora_scales_by_alpha_over_the_square_root_of_the_rank(tiny):
    plain = apply_method(copy.deepcopy(tiny[0]), "lora", rank=16, alpha=8, target_modules=["q_proj"])
    rs = apply_method(copy.deepcopy(tiny[0]), "lora", rank=16, alpha=8, target_modules=["q_proj"], use_rslora=True)
    layer = lambda m: m.base_model.model.model.layers[0].self_attn.q_proj
    assert layer(plain).scaling["default"] == 0.5 and layer(rs).scaling["default"] == 2.0  # 8/16 and 8/4


@pytest.mark.parametrize("init", ["pissa", "pissa_niter_2", "olora", "gaussian"])
def test_every_init_starts_at_the_base_models_outputs(init, tiny):
    batch = torch.randint(3, 1000, (1, 8), generator=torch.Generator().manual_seed(3))
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, target_modules=["q_proj", "v_proj"], init=init)
    with torch.no_grad():
        expected, got = tiny[0](input_ids=batch).logits, model(input_ids=batch).logits
    if init == "gaussian":  # B = 0: the update starts at zero exactly
        assert torch.equal(got, expected)
    else:  # PiSSA/OLoRA move W's top directions into B·A and keep the rest: the sum is W again (to rounding)
        assert torch.allclose(got, expected, atol=1e-3)
        b = model.base_model.model.model.layers[0].self_attn.q_proj.lora_B.default.weight
        assert b.abs().sum() > 0  # unlike the default, B does not start at zero


def test_loraplus_gives_b_a_larger_learning_rate(tiny):
    data = _data("lora", 1000)
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, target_modules=["q_proj"], loraplus_ratio=16.0)
    from labkit.methods import TrainingHooks

    opt, name = TrainingHooks(model, 3).optimizer("adamw", 1e-3, 0.0)
    lrs = {}
    for group in opt.param_groups:
        for p in group["params"]:
            lrs[next(n for n, q in model.named_parameters() if q is p).split(".")[-3]] = group["lr"]
    assert name == "adamw" and lrs == {"lora_A": 1e-3, "lora_B": 16e-3}
    result = train(model, None, data, objective="causal_lm", num_steps=2, batch_size=4, seq_len=16, lr=1e-2,
                   progress=False, live_plot=False)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_loraplus_off_leaves_lk_train_as_it_was(tiny):
    from labkit.methods import TrainingHooks

    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
    assert TrainingHooks(model, 3).optimizer("adamw", 1e-3, 0.0) is None  # lk.train makes its usual AdamW
    assert not TrainingHooks(apply_method(copy.deepcopy(tiny[0]), "ia3"), 3)  # no hooks at all for the others


def test_adalora_reallocates_ranks_during_training(tiny):
    from labkit.methods.adalora import ranks

    model = apply_method(copy.deepcopy(tiny[0]), "adalora", rank=6, target_rank=3)
    assert set(ranks(model).values()) == {6}
    train(model, None, _data("adalora", 1000), objective="causal_lm", num_steps=4, batch_size=4, seq_len=16, lr=1e-2,
          progress=False, live_plot=False)
    assert model.peft_config["default"].total_step == 4  # lk.train told peft how long the run is
    after = ranks(model)
    assert len(set(after.values())) > 1 and sum(after.values()) <= 3 * len(after)  # moved around, within budget


@pytest.mark.parametrize("name, kwargs, says", [
    ("adalora", {"rank": 4, "target_rank": 8}, "target_rank=8 is above rank=4.*pick target_rank <= rank"),
    ("adalora", {"tinit": 5, "total_step": 5}, "needs steps between its warm-up and its final phase"),
    ("lora", {"loraplus_ratio": 0.0}, "loraplus_ratio .* must be positive; LoRA\\+ suggests 16"),
    ("lora", {"loraplus_ratio": -2.0}, "must be positive"),
    ("lora", {"init": "svd"}, "Unknown init 'svd': peft knows default, gaussian, pissa, olora"),
    ("dora", {"init": "pissa_niter_0"}, "Unknown init"),
    ("lora", {"rank_pattern": {"q_proj": 0}}, "rank_pattern maps layer names to positive whole numbers"),
    ("lora", {"layers": [0, 7]}, "layers \\[0, 7\\] name a layer this model does not have: it has layers 0 to 1"),
    ("lora", {"layers": []}, "layers must be a non-empty list"),
    ("oft", {"block_size": 24}, "block_size=24 does not divide q_proj's 64 inputs"),
    ("oft", {"block_size": 1}, "at least 2"),
    ("vera", {"rank": 0}, "rank must be a positive whole number"),
    ("lokr", {"decompose_factor": 0}, "decompose_factor must be -1"),
    ("ptuning", {"encoder_hidden_size": 0}, "encoder_hidden_size must be a positive whole number"),
    ("loha", {"target_modules": ["query"]}, "not in this model"),
])
def test_chapter3_bad_input_is_refused(name, kwargs, says, tiny):
    with pytest.raises(LabkitError, match=says):
        apply_method(copy.deepcopy(tiny[0]), name, **kwargs)


def test_adalora_with_too_short_a_run_is_refused_by_lk_train(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "adalora", rank=4, target_rank=2, tinit=3)
    with pytest.raises(LabkitError, match="train longer or lower them"):
        train(model, None, _data("adalora", 1000), objective="causal_lm", num_steps=3, batch_size=4, seq_len=16,
              progress=False, live_plot=False)


def test_loraplus_with_an_8bit_optimizer_is_refused(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, loraplus_ratio=16.0)
    with pytest.raises(LabkitError, match="LoRA\\+ runs here with optimizer 'adamw' or 'sgd'"):
        train(model, None, _data("lora", 1000), objective="causal_lm", num_steps=1, batch_size=4, seq_len=16,
              optimizer="adamw8bit", progress=False, live_plot=False)


def test_vera_accepts_mixed_shapes_by_sharing_the_largest(tiny):
    """peft 0.21 does not refuse VeRA on layers of different shapes: one A and B sized for the largest, sliced."""
    model = apply_method(copy.deepcopy(tiny[0]), "vera", rank=16, target_modules=["q_proj", "v_proj", "gate_proj"])
    layer = model.base_model.model.model.layers[0]
    assert tuple(layer.self_attn.v_proj.vera_A["default"].shape) == (16, 64)  # largest fan_in among the targets
    assert tuple(layer.self_attn.v_proj.vera_B["default"].shape) == (128, 16)  # gate_proj's 128 outputs
    assert layer.self_attn.v_proj.vera_lambda_b["default"].numel() == 32  # but b is v_proj's own size
