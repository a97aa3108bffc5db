"""Lab 00 exercises: counting parameters (a function, a value measured on the model, a freezing recipe)."""

from __future__ import annotations

from ...grading import Args, Exercise, NotAttempted, expect_function, expect_only_trainable, expect_value


def _linear_params(in_features, out_features, bias=True):
    return in_features * out_features + (out_features if bias else 0)


q1 = Exercise(
    "q1", lab="lab00", title="Parameters of a Linear layer",
    checker=expect_function(
        _linear_params,
        [Args(3, 4), Args(3, 4, bias=False), Args(576, 1536, bias=False), Args(1, 1), Args(49152, 576)],
        mistakes=[
            (lambda i, o, bias=True: i * o, "the weight matrix is right; now count the bias too (when bias=True)."),
            (lambda i, o, bias=True: i * o + i, "the bias has one entry per output feature, not per input feature."),
            (lambda i, o, bias=True: i * o + o, "with bias=False the layer has no bias vector."),
            (lambda i, o, bias=True: i + o + (o if bias else 0),
             "the weight is a matrix: one number for every (input, output) pair."),
        ]),
    hints=("nn.Linear(in_features, out_features) stores a weight of shape (out_features, in_features).",
           "With bias=True it also stores a bias vector: one number per output feature.",
           "Check yourself: sum(p.numel() for p in torch.nn.Linear(3, 4).parameters())."),
    solution_code="def linear_params(in_features, out_features, bias=True):\n"
                  "    return in_features * out_features + (out_features if bias else 0)",
)


def _counts(model):
    """(embedding entries, distinct parameters, parameters counting shared tensors every time they appear)."""
    emb = model.get_input_embeddings().weight.numel()
    return (emb, sum(p.numel() for p in model.parameters()),
            sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)))


def _embedding_fraction(model):
    emb, total, _ = _counts(model)
    return emb / total


q2 = Exercise(
    "q2", lab="lab00", title="Share of the parameters in the embedding",
    checker=expect_value(
        _embedding_fraction, abs_tol=1e-3,
        mistakes=[
            (lambda m: _counts(m)[0] / _counts(m)[2],
             "close: the output head is tied to the embedding (the same tensor), so count it once in the total."),
            (lambda m: 2 * _counts(m)[0] / _counts(m)[1],
             "only the input embedding counts here, and the tied head is the same tensor: count it once."),
            (lambda m: 2 * _counts(m)[0] / _counts(m)[2],
             "the tied head is the same tensor as the embedding: count it once, in both the share and the total."),
            (lambda m: 100 * _embedding_fraction(m), "that looks like a percentage: give a fraction between 0 and 1."),
            (lambda m: 1 - _embedding_fraction(m), "that is the share of everything except the embedding."),
            (lambda m: 1 / _embedding_fraction(m), "upside down: divide the embedding count by the total."),
        ]),
    hints=("The embedding matrix is model.get_input_embeddings().weight; .numel() counts its entries.",
           "For the total use sum(p.numel() for p in model.parameters()): it lists a shared tensor once.",
           "SmolLM2 ties its output head to the embedding (config.tie_word_embeddings): one tensor, counted once."),
    context=("model",),  # the answer comes with the model it was measured on: q2.check(embedding_fraction, model)
    solution_code="embedding_params = model.get_input_embeddings().weight.numel()\n"
                  "total_params = sum(p.numel() for p in model.parameters())  # a tied tensor is listed once\n"
                  "embedding_fraction = embedding_params / total_params",
)


def _hidden_llama():
    """A small Llama on the meta device: real parameter names, no memory, no random numbers drawn."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


_only_norms = expect_only_trainable(r"norm", "the norm weights (every layer's and the final one)")


def _check_freezing(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    model = _hidden_llama()
    try:
        returned = func(model)
    except NotImplementedError:
        raise NotAttempted from None
    except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
        return f"{getattr(func, '__name__', 'your function')}(model) raised {type(err).__name__}: {err}"
    if returned is Ellipsis:
        raise NotAttempted
    return _only_norms(returned if hasattr(returned, "named_parameters") else model)


q3 = Exercise(
    "q3", lab="lab00", title="Freeze all but the norms",
    checker=_check_freezing,
    hints=("param.requires_grad = False freezes a tensor; model.requires_grad_(False) freezes them all.",
           "Loop over model.named_parameters(): the norm weights have 'norm' in their names.",
           "A Llama has two norms per layer plus a final one: all of them should stay trainable."),
    solution_code="def freeze_all_but_norms(model):\n"
                  "    for name, param in model.named_parameters():\n"
                  "        param.requires_grad = \"norm\" in name\n"
                  "    return model",
)
