"""Lab 01a (section 1.1) exercises: BitFit's share on a model with biases, LoRA's size and forward pass, a method for a budget."""

from __future__ import annotations

from ...grading import Args, Exercise, NotAttempted, expect_function

# ---- q1: BitFit on a model that has biases ---------------------------------------------------------------------


def _bitfit_count(model) -> int:
    """Parameters the kit's BitFit trains on a copy of ``model``."""
    import copy

    from ...methods import apply_method

    adapted = apply_method(copy.deepcopy(model), "bitfit")
    return sum(p.numel() for p in adapted.parameters() if p.requires_grad)


def _counts(model) -> dict:
    named = list(model.named_parameters())
    norm = [p.numel() for n, p in named if ".ln" in n or "norm" in n]
    return {"bias": sum(p.numel() for n, p in named if n.endswith(".bias")),
            "linear_bias": sum(p.numel() for n, p in named if n.endswith(".bias") and ".ln" not in n
                               and "norm" not in n),
            "norm_all": sum(norm), "total": sum(p.numel() for _, p in named)}


def _check_bitfit(answer, model):
    from ...grading import _number

    got = _number(answer)
    if got == _bitfit_count(model):
        return None
    c = _counts(model)
    if got == c["linear_bias"]:
        return "close: the LayerNorms have a bias vector too, and BitFit trains every bias."
    if got == c["bias"] + c["norm_all"] - (c["bias"] - c["linear_bias"]):
        return "BitFit trains the LayerNorm biases but not their scale weights."
    if got == c["total"]:
        return "that is every parameter: BitFit freezes all the weight matrices and trains only the biases."
    if 0 < got < 100 and got != int(got):
        return "that looks like a percentage: give the number of trainable parameters."
    return f"{answer!r} is not right yet."


q1 = Exercise(
    "q1", lab="lab01a", title="What BitFit trains on a model with biases",
    checker=_check_bitfit, context=("model",),
    hints=("BitFit keeps every parameter whose name ends in '.bias' trainable and freezes everything else.",
           "GPT-2 has biases in its attention and MLP layers, and in every LayerNorm (ln_1, ln_2, ln_f).",
           "sum(p.numel() for n, p in gpt.named_parameters() if n.endswith('.bias'))"),
    solution_code="bitfit_params = sum(p.numel() for name, p in gpt.named_parameters() if name.endswith(\".bias\"))\n"
                  "# or apply it and count: lk.apply_method(copy.deepcopy(gpt), 'bitfit'), then sum the trainable ones",
)

# ---- q2: LoRA's parameters for one layer -----------------------------------------------------------------------


def _lora_params(in_features, out_features, rank):
    return rank * (in_features + out_features)


q2 = Exercise(
    "q2", lab="lab01a", title="LoRA parameters of one linear layer",
    checker=expect_function(
        _lora_params,
        [Args(576, 576, 8), Args(576, 192, 8), Args(4096, 14336, 16), Args(10, 3, 1), Args(1536, 576, rank=64)],
        mistakes=[
            (lambda i, o, r: i * o + r * (i + o), "W stays frozen: count only the new matrices A and B."),
            (lambda i, o, r: r * i * o, ("A and B are thin: A has rank rows of in_features, B has out_features rows "
                                        "of rank.")),
            (lambda i, o, r: 2 * r * i, ("A and B have different shapes: A is (rank, in_features), B is "
                                        "(out_features, rank).")),
            (lambda i, o, r: 2 * r * o, ("A and B have different shapes: A is (rank, in_features), B is "
                                        "(out_features, rank).")),
            (lambda i, o, r: r * r + r * (i + o), "there is no r x r matrix in LoRA: only A and B."),
        ]),
    hints=("LoRA adds two matrices per layer: A of shape (rank, in_features) and B of shape (out_features, rank).",
           "Count the entries of both; the frozen weight W is not part of the count."),
    solution_code="def lora_params(in_features, out_features, rank):\n"
                  "    return rank * in_features + out_features * rank",
)

# ---- q3: the LoRA forward pass, checked against peft ------------------------------------------------------------

_CASES = ((8, 6, 2, 16.0, 3), (16, 16, 4, 8.0, 5), (32, 12, 8, 32.0, 2), (5, 7, 1, 1.0, 4))  # in, out, r, alpha, rows


def peft_lora_layer(in_features: int, out_features: int, rank: int, alpha: float, *, seed: int = 0):
    """A peft LoRA layer around a bias-free nn.Linear, with a non-zero B so the update matters."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(seed)
    holder = torch.nn.Module()
    holder.proj = torch.nn.Linear(in_features, out_features, bias=False)
    holder = inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=["proj"]), holder)
    layer = holder.proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()  # peft starts B at zero; a zero update would prove nothing
    return layer


def _layer_weights(layer):
    return (layer.base_layer.weight.detach(), layer.lora_A["default"].weight.detach(),
            layer.lora_B["default"].weight.detach())


def _check_forward(func, *context):
    import torch

    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    name = getattr(func, "__name__", "your function")
    for i, (fan_in, fan_out, rank, alpha, rows) in enumerate(_CASES):
        layer = peft_lora_layer(fan_in, fan_out, rank, alpha, seed=i)
        weight, lora_a, lora_b = _layer_weights(layer)
        x = torch.randn(rows, fan_in, generator=torch.Generator().manual_seed(100 + i))
        with torch.no_grad():
            want = layer(x)
            try:
                got = func(x, weight, lora_a, lora_b, alpha, rank)
            except NotImplementedError:
                raise NotAttempted from None
            except RuntimeError as err:
                return (f"{name} raised RuntimeError ({err}): check the shapes; W is (out, in), lora_A is "
                        "(r, in) and lora_B is (out, r), so x (rows, in) needs their transposes.")
            except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
                return f"{name} raised {type(err).__name__}: {err}"
        if got is Ellipsis:
            raise NotAttempted
        if not isinstance(got, torch.Tensor):
            return f"{name} should return a torch tensor, not a value of type {type(got).__name__}."
        if got.shape != want.shape:
            return f"{name} returned shape {tuple(got.shape)} for x of shape {tuple(x.shape)}: expected (rows, out)."
        if torch.allclose(got, want, atol=1e-5, rtol=1e-4):
            continue
        base = x @ weight.T
        update = x @ lora_a.T @ lora_b.T
        if torch.allclose(got, base, atol=1e-5):
            return "that is only the frozen layer x W^T: add the low-rank update."
        if torch.allclose(got, base + update, atol=1e-5, rtol=1e-4):
            return "almost: peft scales the update by alpha / r before adding it."
        if torch.allclose(got, base + alpha * update, atol=1e-5, rtol=1e-4):
            return "the scale is alpha / r, not alpha alone."
        if torch.allclose(got, base + rank / alpha * update, atol=1e-5, rtol=1e-4):
            return "the scale is upside down: alpha / r."
        if torch.allclose(got, (alpha / rank) * update, atol=1e-5, rtol=1e-4):
            return "the frozen layer's own output x W^T is missing: LoRA adds the update to it."
        return f"{name} does not match peft's LoRA layer on the same weights yet."
    return None


q3 = Exercise(
    "q3", lab="lab01a", title="The LoRA forward pass (matches peft)",
    checker=_check_forward,
    hints=("nn.Linear stores W as (out, in) and computes x W^T; LoRA adds (alpha / r) x A^T B^T.",
           "Shapes: x (rows, in), A (r, in), B (out, r): x @ A.T is (rows, r), then @ B.T gives (rows, out).",
           "Put together: x @ W.T + (alpha / r) * (x @ A.T @ B.T)."),
    solution_code="def lora_forward(x, W, A, B, alpha, r):\n"
                  "    return x @ W.T + (alpha / r) * (x @ A.T @ B.T)",
)

# ---- q4: a method for a memory budget ---------------------------------------------------------------------------

BUDGET = {"model": "meta-llama/Llama-3.1-8B", "gpu": "L4", "rank": 16, "batch_size": 1, "seq_len": 512}
CHOICES = ("full", "lora", "qlora")


def _fitting() -> set[str]:
    from ...meters import will_it_fit

    return {m for m in CHOICES if will_it_fit(BUDGET["model"], m, BUDGET["gpu"], rank=BUDGET["rank"],
                                              batch_size=BUDGET["batch_size"], seq_len=BUDGET["seq_len"]).fits}


def _check_budget(answer, *context):
    if isinstance(answer, str):
        answer = [answer]
    try:
        got = {str(a).strip().lower() for a in answer}
    except TypeError:
        return f"give a set of method names, e.g. {{'qlora'}}, not a value of type {type(answer).__name__}."
    unknown = sorted(got - set(CHOICES))
    if unknown:
        return f"{unknown} are not among the choices {list(CHOICES)}."
    want = _fitting()
    if got == want:
        return None
    if got - want:
        extra = min(got - want)
        return f"{extra} does not fit: compare its predicted need with the GPU's {BUDGET['gpu']} memory."
    return "a method that fits is missing: check all three with lk.meters.will_it_fit."


q4 = Exercise(
    "q4", lab="lab01a", title="Which methods fit a memory budget",
    checker=_check_budget,
    hints=("lk.meters.will_it_fit(model, method, gpu, rank=16, batch_size=1, seq_len=512) answers for one method.",
           ("Full fine-tuning needs gradients and optimizer state for every weight; LoRA needs the 16-bit base; "
           "QLoRA stores the base in 4 bits."),
           "Loop over ('full', 'lora', 'qlora') and keep the ones whose report says .fits."),
    solution_code="fits = {m for m in (\"full\", \"lora\", \"qlora\")\n"
                  "        if lk.meters.will_it_fit(\"meta-llama/Llama-3.1-8B\", m, \"L4\", rank=16, batch_size=1,\n"
                  "                                 seq_len=512).fits}",
)
