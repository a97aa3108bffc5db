"""Lab 05 on real models: calibration, salience, pruning, layer removal and back-ends on tiny-llama; healing (lk.train
LoRA) and distillation learning on a 2-layer cut of SmolLM2, after the calls the lab makes first."""

import pytest
import torch

import labkit as lk
from labkit import LabkitError
from labkit.chapters.ch05_compression import backends, pruning, recovery, rtn, salience
from labkit.chapters.ch05_compression.panel import CompressionPanel
from labkit.models import bitsandbytes_works

TEXTS = ["Incident report 3, the Hatchery. What happened: a drake ate a boot.",
         "Action: passed safely after a dose of wyrmwort. Reported by Vesna.", "Minor damage to the east pen."]


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = lk.load_model("tiny-llama")
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def calib(tiny):
    return salience.calibrate(*tiny, TEXTS)


def test_calibration_and_salience(tiny, calib):
    model, tokenizer = tiny
    name = "layers.0.mlp.down_proj"
    width = model.model.layers[0].mlp.down_proj.in_features
    assert calib.mean_abs[name].shape == (width,) and calib.sample[name].shape[1] == width
    assert calib.tokens == sum(len(tokenizer(t).input_ids) for t in TEXTS)
    keep = salience.salient_channels(calib.mean_abs[name], 0.05)
    assert len(keep) == round(0.05 * width) and calib.mean_abs[name][keep].min() >= calib.mean_abs[name].median()
    w = model.model.layers[0].mlp.down_proj.weight.data
    kept = salience.quantize_keeping(w, keep, bits=3, group=32)
    assert torch.equal(kept[:, keep], w[:, keep])
    awq_w, _alpha = salience.awq_search(w, calib.sample[name], calib.mean_abs[name], bits=3, group=32)
    naive = rtn.fake_quantize(w, 3, "zeropoint", 32)
    x = calib.sample[name]
    assert (x @ awq_w.T - x @ w.T).pow(2).mean() <= (x @ naive.T - x @ w.T).pow(2).mean() + 1e-9  # alpha 0 = naive
    table = salience.compare_salience(model, tokenizer, calib, TEXTS, bits=3, group=32, share=0.05)
    assert list(table.index) == ["float", "naive", "salient 5%", "random 5%", "AWQ scaling"]
    assert (table["perplexity"] > 1).all()
    with pytest.raises(LabkitError, match="empty"):
        salience.calibrate(model, tokenizer, [])
    with pytest.raises(LabkitError, match=r"\[0, 1\)"):
        salience.salient_channels(calib.mean_abs[name], 1.0)


def test_masks_and_pruning(tiny, calib):
    model, tokenizer = tiny
    w = model.model.layers[0].mlp.up_proj.weight.data
    for mask in (pruning.unstructured_mask(w.abs(), 0.5), pruning.nm_mask(w.abs(), 2, 4)):
        assert mask.float().mean().item() == 0.5
    assert (pruning.nm_mask(w.abs(), 2, 4).reshape(-1, 4).sum(1) == 2).all()
    score = pruning.wanda_score(w, calib.norm["layers.0.mlp.up_proj"])
    assert torch.equal(score, w.abs() * calib.norm["layers.0.mlp.up_proj"])
    table = pruning.compare_pruning(model, tokenizer, calib, TEXTS)
    assert table["zeros"].between(0.49, 0.51).all() and len(table) == 4
    assert torch.count_nonzero(model.model.layers[0].mlp.up_proj.weight) == w.numel()  # restored after the block
    scan = pruning.sensitivity_scan(model, tokenizer, calib, TEXTS, progress=False)
    assert list(scan.index) == [0, 1]
    for bad, says in ((lambda: pruning.unstructured_mask(w, 1.0), r"\[0, 1\)"),
                      (lambda: pruning.nm_mask(w, 4, 4), "N < M"), (lambda: pruning.nm_mask(w, 2, 3), "divisible"),
                      (lambda: pruning.layer_mask(w, "wanda", 0.5), "calibration"),
                      (lambda: pruning.drop_layers(model, [0, 1]), "not all")):
        with pytest.raises(LabkitError, match=says):
            bad()


def test_layer_removal(tiny):
    model, tokenizer = tiny
    sims = pruning.layer_similarity(model, tokenizer, TEXTS)
    assert list(sims.index) == [0, 1] and sims["cosine_in_out"].between(-1, 1).all()
    small = pruning.drop_layers(model, [1])
    assert len(small.model.layers) == 1 and len(model.model.layers) == 2
    ids = tokenizer("Hello", return_tensors="pt").input_ids
    out = small.generate(ids, max_new_tokens=3, do_sample=False)  # the KV cache works with renumbered layers
    assert out.shape[1] == ids.shape[1] + 3
    assert pruning.forward_time(small, tokenizer, "Hello there") > 0


def test_backends_sizes_are_predicted(tiny):
    model, tokenizer = tiny
    names = backends.BACKENDS if bitsandbytes_works() else backends.BACKENDS[:3]
    table = backends.compare_backends(model, tokenizer, TEXTS, backends=names, new_tokens=2, progress=False)
    assert (table["error"] == "").all(), table["error"]
    assert table["size_error"].abs().max() < 0.01
    assert (table["perplexity"] > 1).all() and (table["s_per_token"] > 0).all()
    with pytest.raises(LabkitError, match="back-end"):
        backends.build("int3", model)
    with pytest.raises(LabkitError, match="new_tokens"):
        backends.latency_per_token(model, tokenizer, "Hi", new_tokens=1)


def test_panel_caches_and_drives_from_code(tiny, calib):
    model, tokenizer = tiny
    panel = CompressionPanel(model, tokenizer, TEXTS, calib, auto=False)
    panel.group.options = [32, 64]
    panel.group.value = 32
    first = panel.measure()
    panel.pattern.value = "2:4"
    second = panel.measure()
    assert second["predicted_bits"] < first["predicted_bits"] and len(panel.cache) == 2
    panel.pattern.value = "none"
    assert panel.measure() == first and len(panel.figure.data[0].x) == 2


@pytest.fixture(scope="module")
def small_smollm2():
    model, tokenizer = lk.load_model("smollm2-135m")
    return pruning.drop_layers(model, range(2, len(model.model.layers))).eval(), tokenizer


def test_heal_learns_after_quantizing(small_smollm2):
    model, tokenizer = small_smollm2
    data = lk.load_instructions()
    squeezed = recovery.compressed_copy(model, bits=3, group=64)
    assert rtn.perplexity(squeezed, tokenizer, TEXTS) > 1  # the lab scores it first
    batch = data["train"].select(range(4))  # one fixed batch (lk.train's batch size is 4): train and score on it
    before, after, _result = recovery.heal(squeezed, tokenizer, batch, batch, steps=8, lr=1e-3)
    assert after < 0.8 * before, (before, after)  # measured here: the training loss 25.5 -> 18.4 in 8 steps
    pruned = recovery.compressed_copy(model, bits=None, prune=("magnitude", (2, 4)))
    zeros = (pruned.model.layers[0].mlp.up_proj.weight.reshape(-1, 4) == 0).sum(1)
    assert (zeros >= 2).all()  # two of every four pruned (a kept weight may already be exactly zero)
    with pytest.raises(LabkitError, match="Nothing to compress"):
        recovery.compressed_copy(model, bits=None)


def test_distillation_learns(small_smollm2):
    teacher, tokenizer = small_smollm2
    texts = rtn.eval_texts("train", limit=2)  # packs into one block: every step sees the same fixed batch
    student = recovery.student_from(teacher, [0])
    history = recovery.distil(teacher, student, tokenizer, texts, loss="kl", steps=6, batch_size=1, lr=1e-3,
                              progress=False)
    assert history["loss"].iloc[-2:].mean() < 0.7 * history["loss"].iloc[:2].mean(), history["loss"].tolist()
    with pytest.raises(LabkitError, match="loss must be"):
        recovery.distil(teacher, student, tokenizer, texts, loss="mse")
    with pytest.raises(LabkitError, match="every layer"):
        recovery.student_from(teacher, [0, 1])
