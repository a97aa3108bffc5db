"""Lab 09's mixtures of experts: upcycling keeps the dense model's output, parameter and FLOP counts match what is
measured, routing is counted per layer, the balancing loss is wired, and both fine-tuning targets learn on the real
SmolLM2 after the calls the lab makes first."""

import copy

import pytest
import torch

import labkit as lk
from labkit.batches import collate, tokenize
from labkit.chapters.ch09_future import moe
from labkit.chapters.ch09_future.panel import futures_panel
from labkit.core import LabkitError


@pytest.fixture(scope="module")
def tiny_llama():
    return lk.load_model("tiny-llama")


@pytest.fixture(scope="module")
def smollm():
    return lk.load_model("smollm2-135m")


@pytest.fixture(scope="module")
def noisy_smollm(smollm):
    """SmolLM2 upcycled as the lab's fast mode does (3 experts, top-2, 1% noise), built once: tests train copies."""
    return moe.upcycle(smollm[0], 3, 2, noise=0.01)


def test_upcycled_tiny_llama_computes_the_dense_output_and_counts_match(tiny_llama):
    dense, tokenizer = tiny_llama
    ids = tokenizer(["Feed Pip the roasted goat."], return_tensors="pt").input_ids
    up = moe.upcycle(dense, num_experts=4, top_k=2)
    with torch.no_grad():
        assert (dense(input_ids=ids).logits - up(input_ids=ids).logits).abs().max() < 1e-4
    p = moe.moe_params(up.config)
    assert p["total"] == sum(x.numel() for x in up.parameters())
    assert p["dense"] == sum(x.numel() for x in dense.parameters())
    assert p["total"] - p["active"] == up.config.num_hidden_layers * 2 * p["expert"]  # 2 of 4 experts idle
    assert moe.measure_flops_per_token(up, ids) == moe.predicted_flops_per_token(up.config)
    assert moe.measure_flops_per_token(dense, ids) == moe.predicted_flops_per_token(dense.config)


@pytest.mark.parametrize(("experts", "top_k", "match"), [(4, 5, "more than the 4 experts"), (0, 1, "num_experts"),
                                                          (4, 0, "top_k"), (2, 1.5, "top_k")])
def test_impossible_routers_are_refused(tiny_llama, experts, top_k, match):
    with pytest.raises(LabkitError, match=match):
        moe.upcycle(tiny_llama[0], num_experts=experts, top_k=top_k)
    with pytest.raises(LabkitError, match=match):
        moe.tiny_mixtral(num_experts=experts, top_k=top_k)


def test_bad_inputs_say_what_to_do(tiny_llama):
    with pytest.raises(LabkitError, match="aux_coef"):
        moe.tiny_mixtral(aux_coef=-1)
    with pytest.raises(LabkitError, match="noise"):
        moe.upcycle(tiny_llama[0], noise=-0.1)
    with pytest.raises(LabkitError, match="no mixture-of-experts"):
        moe.expert_loads(tiny_llama[0], tiny_llama[1], ["hi"])
    with pytest.raises(LabkitError, match="texts is empty"):
        moe.expert_loads(moe.tiny_mixtral(), tiny_llama[1], [])
    with pytest.raises(LabkitError, match="input_ids"):
        moe.measure_flops_per_token(tiny_llama[0], torch.zeros(3, dtype=torch.long))
    with pytest.raises(LabkitError, match="config"):
        futures_panel(None)


def test_routing_counts_every_token_slot_and_the_aux_loss_is_added(tiny_llama):
    tokenizer = tiny_llama[1]
    model = moe.tiny_mixtral(num_experts=4, top_k=2, aux_coef=0.5)
    enc = tokenizer(["one two three four"], return_tensors="pt")
    loads = moe.expert_loads(model, tokenizer, ["one two three four"])
    tokens = enc.input_ids.shape[1]
    assert loads.groupby("layer")["tokens"].sum().tolist() == [2 * tokens, 2 * tokens]
    out = model(input_ids=enc.input_ids, labels=enc.input_ids)
    off = moe.tiny_mixtral(num_experts=4, top_k=2, aux_coef=0.0)(input_ids=enc.input_ids, labels=enc.input_ids)
    assert torch.isclose(out.loss, off.loss + 0.5 * out.aux_loss, atol=1e-5)  # same seed: same weights
    summary = moe.balance_summary(loads)
    assert 0.25 <= summary["max_share"] <= 1 and summary["cv"] >= 0


def test_panel_moe_part_follows_and_explains_a_bad_top_k(tiny_llama):
    panel = futures_panel(tiny_llama[0].config)
    panel.experts.value, panel.top_k.value = 8, 2
    assert "8 experts, top-2" in panel.figure.layout.title.text
    panel.top_k.value = 4
    panel.experts.value = 2
    assert "more than the 2 experts" in panel.message.value


def _batch(tokenizer):
    rows = lk.load_instructions()["train"].filter(lambda r: r["family"] == "convert_units").select(range(2))
    return collate(tokenize(rows, tokenizer, "sft", seq_len=96), tokenizer.pad_token_id)


def _loss(model, batch):
    with torch.no_grad():
        return model(**batch).loss.item()


def test_identical_experts_give_the_router_no_gradient_and_noise_does(tiny_llama, smollm, noisy_smollm):
    dense, tokenizer = tiny_llama
    batch = _batch(tokenizer)
    assert moe.router_grad_norm(moe.upcycle(dense, 3, 2), batch) < 1e-6
    assert moe.router_grad_norm(moe.upcycle(dense, 3, 2, noise=0.01), batch) > 1e-5
    # top-1 with renormalised gates: the one gate is always exactly 1, so the router gets no gradient even then
    assert moe.router_grad_norm(moe.upcycle(dense, 2, 1, noise=0.01), batch) < 1e-6
    assert moe.router_grad_norm(noisy_smollm, _batch(smollm[1])) > 1e-3  # and on the lab's own model


@pytest.mark.parametrize(("target", "lr", "factor"), [("experts", 1e-3, 0.7), ("router", 1e-2, 0.99)])
def test_both_fine_tuning_targets_learn_on_smollm2(smollm, noisy_smollm, target, lr, factor):
    tokenizer = smollm[1]
    batch = _batch(tokenizer)
    model = copy.deepcopy(noisy_smollm)
    model = moe.lora_on_experts(model) if target == "experts" else moe.router_only(model)
    lk.training.evaluate_loss(model, tokenizer, [{"instruction": "Convert 2 km to m.", "answer": "2000"}],
                              objective="sft", seq_len=96)  # the lab evaluates first
    before = _loss(model, batch)
    rows = lk.load_instructions()["train"].filter(lambda r: r["family"] == "convert_units").select(range(2))
    lk.train(model, tokenizer, rows, num_steps=2, batch_size=2, seq_len=96, lr=lr, live_plot=False, progress=False)
    assert _loss(model, batch) < factor * before
