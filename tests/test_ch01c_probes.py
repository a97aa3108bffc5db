"""Transfer diagnostics: layer features, probes, linear CKA, freezing, LoRA on some layers, tokens per word."""

import copy

import numpy as np
import pytest

from labkit import LabkitError
from labkit.chapters.ch01c_transfer.probes import (
    add_domain_tokens,
    cka_matrix,
    fit_probe,
    freeze_lowest,
    general_knowledge,
    layer_features,
    linear_cka,
    lora_on_layers,
    num_layers,
    probe_layers,
    token_table,
    tokens_per_word,
)
from labkit.meters import param_summary
from labkit.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread (conftest)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


def fresh(tiny):
    return copy.deepcopy(tiny[0])


# ---- features ------------------------------------------------------------------------------------------------------

def test_layer_features_has_every_layer_and_ignores_padding(tiny):
    model, tokenizer = tiny
    texts = ["Pip ate all the salted cod", "Book a flight", "Help"]
    feats = layer_features(model, tokenizer, texts, batch_size=3, progress=False)
    assert feats.features.shape == (3, 3, 64)  # embeddings + 2 blocks, 3 texts, hidden 64
    assert feats.num_tokens == sum(len(tokenizer(t)["input_ids"]) for t in texts)
    alone = layer_features(model, tokenizer, texts[1:2], batch_size=1, progress=False)
    np.testing.assert_allclose(feats[:, 1], alone[:, 0], atol=1e-4)  # padding changes nothing
    assert len(feats) == 3 and feats.time_s > 0


def test_layer_features_refuses_empty_input(tiny):
    with pytest.raises(LabkitError, match="non-empty"):
        layer_features(*tiny, [], progress=False)


def test_layer_features_works_through_peft_and_a_classifier(tiny):
    from labkit.methods.linear_probe import add_classifier_head

    model, tokenizer = tiny
    wrapped = add_classifier_head(lora_on_layers(fresh(tiny), [1], rank=2), ["a", "b"])
    assert num_layers(wrapped) == 2
    plain = layer_features(model, tokenizer, ["hello there"], progress=False)
    through = layer_features(wrapped, tokenizer, ["hello there"], progress=False)
    np.testing.assert_allclose(plain.features, through.features, atol=1e-5)  # LoRA's B starts at zero


# ---- probes ---------------------------------------------------------------------------------------------------------

def separable(n=60, seed=0):
    """Layer 0 is noise, layer 1 carries the label in its first feature."""
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b", "c"] * (n // 3))
    x = rng.normal(size=(2, n, 5))
    x[1, :, 0] += 10 * (y == "a")
    x[1, :, 1] += 10 * (y == "b")
    return x, y


def test_probe_layers_finds_the_layer_that_carries_the_label():
    x, y = separable()
    xt, yt = separable(seed=1)
    table = probe_layers(x, y, {"test": (xt, yt)}, progress=False)
    assert list(table.columns) == ["layer", "probe_params", "fit_time_s", "train_accuracy", "test_accuracy"]
    assert table.loc[1, "test_accuracy"] == 1.0 and table.loc[0, "test_accuracy"] < 0.7
    assert table.loc[0, "probe_params"] == 5 * 3 + 3


def test_probe_layers_refuses_mismatched_shapes():
    x, y = separable()
    with pytest.raises(LabkitError, match="same model"):
        probe_layers(x, y, {"test": (x[:, :10], y)}, progress=False)
    with pytest.raises(LabkitError, match="one label per example"):
        fit_probe(x[1], y[:-1])
    with pytest.raises(LabkitError, match="two classes"):
        fit_probe(x[1], ["a"] * len(y))
    with pytest.raises(LabkitError, match="layers, examples, hidden"):
        probe_layers(x[1], y, {}, progress=False)


# ---- CKA ------------------------------------------------------------------------------------------------------------

def test_linear_cka_hard_coded_value_and_invariances():
    assert linear_cka([[1], [2], [3]], [[1], [4], [9]]) == pytest.approx(48 / 49)  # 1-D: squared correlation
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 5 * x @ q + 3) == pytest.approx(1.0)  # rotation, scale and shift do not matter
    assert linear_cka(x, rng.normal(size=(40, 6))) < 0.5


def test_cka_matrix_agrees_with_linear_cka():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 20, 4)), rng.normal(size=(2, 20, 7))
    m = cka_matrix(a, b)
    assert m.shape == (3, 2)
    assert m[2, 1] == pytest.approx(linear_cka(a[2], b[1]))
    assert np.diag(cka_matrix(a, a)) == pytest.approx(np.ones(3))


def test_cka_refuses_bad_input():
    with pytest.raises(LabkitError, match="same examples"):
        linear_cka(np.ones((4, 2)) + np.eye(4, 2), np.eye(5, 2))
    with pytest.raises(LabkitError, match="constant"):
        linear_cka(np.ones((4, 2)), np.eye(4, 2))
    with pytest.raises(LabkitError, match="at least 2 rows"):
        linear_cka([[1.0, 2.0]], [[1.0, 2.0]])


# ---- freezing and LoRA on some layers -------------------------------------------------------------------------------

def test_freeze_lowest_counts(tiny):
    model = fresh(tiny)
    total = sum(p.numel() for p in model.parameters())
    assert param_summary(freeze_lowest(model, 0)).trainable == total
    trainable = {n for n, p in freeze_lowest(model, 1).named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.layers.1.") or n == "model.norm.weight" for n in trainable)
    assert {n for n, p in freeze_lowest(model, 2).named_parameters() if p.requires_grad} == {"model.norm.weight"}
    assert param_summary(freeze_lowest(model, 0)).trainable == total  # unfreezing again works


@pytest.mark.parametrize("k", [-1, 3, 1.5, True])
def test_freeze_lowest_refuses_bad_k(tiny, k):
    with pytest.raises(LabkitError, match="from 0"):
        freeze_lowest(fresh(tiny), k)


def test_lora_on_layers_touches_only_those_layers(tiny):
    model = lora_on_layers(fresh(tiny), [1], rank=2)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {f"base_model.model.model.layers.1.self_attn.{m}_proj.lora_{ab}.default.weight"
                     for m in "qv" for ab in "AB"}
    with pytest.raises(LabkitError, match="between 0 and 1"):
        lora_on_layers(fresh(tiny), [2])
    with pytest.raises(LabkitError, match="not in this model"):
        lora_on_layers(fresh(tiny), [0], target_modules=["query"])


# ---- tokens per word and adding tokens ------------------------------------------------------------------------------

def test_tokens_per_word_on_the_real_tokenizer(tiny):
    tokenizer = tiny[1]
    assert tokens_per_word(tokenizer, "Feed the dragon") == 1.0
    assert tokens_per_word(tokenizer, ["Quillothrax", "Vyrrathi"]) == pytest.approx(4.0)
    assert list(token_table(tokenizer, ["dragon", "Quillothrax"])["tokens"]) == [1, 4]
    with pytest.raises(LabkitError, match="no words"):
        tokens_per_word(tokenizer, "   ")


def test_adding_domain_tokens_makes_each_term_one_token(tiny):
    model, tokenizer = fresh(tiny), copy.deepcopy(tiny[1])
    rows = model.get_input_embeddings().weight.shape[0]
    assert add_domain_tokens(model, tokenizer, ["Quillothrax", "Vyrrathi"]) == 4
    assert model.get_input_embeddings().weight.shape[0] == rows + 4
    text = "Quillothrax and the Vyrrathi"
    assert tokens_per_word(tokenizer, text) == 1.0
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    naive_model, naive_tok = fresh(tiny), copy.deepcopy(tiny[1])
    add_domain_tokens(naive_model, naive_tok, ["Quillothrax"], with_space=False)
    assert tokens_per_word(naive_tok, "the Quillothrax") == 1.5  # a lone space token still comes before it
    with pytest.raises(LabkitError, match="No words"):
        add_domain_tokens(model, tokenizer, [" "])


def test_general_knowledge_scores_a_model_and_a_classifier_alike(tiny):
    import datasets

    from labkit.methods.linear_probe import add_classifier_head

    model, tokenizer = tiny
    probe = datasets.Dataset.from_list([{"question": "Capital of France?", "answer": "Paris", "aliases": [],
                                         "category": "capitals"}] * 3)
    plain = general_knowledge(model, tokenizer, probe, limit=2)
    assert plain["questions"] == 2 and plain["exact_match"] == 0.0 and plain["answer_loss"] > 5  # random weights
    wrapped = general_knowledge(add_classifier_head(model, ["a", "b"]), tokenizer, probe, limit=2)
    assert wrapped == plain
