"""Parameter accounting: per-component tables of a real model, and exact counts from a config alone."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..core import LabkitError
from ..methods import get_method, list_methods
from ..methods.lokr import lokr_sizes
from ..methods.lora import check_rank, pattern_value
from ..units import DTYPE_BYTES
from .arch import ATTN, LINEARS, MLP, dims, positive_int, resolve_targets

METHODS = tuple(list_methods())  # section 1.1's methods (list_methods(core_only=False) has chapter 3's too)
LOW_RANK = ("low_rank", "low_rank_magnitude")  # families that add B·A to linear layers (labkit.methods.FAMILIES)
# chapter 3's families that also adapt chosen linear layers (their formulas are below, per family)
LAYER_ADAPTERS = ("low_rank_adaptive", "shared_projection", "hadamard", "kronecker", "orthogonal")
COMPONENTS = ("embeddings", "attention", "mlp", "norms", "head", "adapters", "other")
# Settings of labkit.methods specs that do not change how many parameters train.
IGNORED_SETTINGS = {"alpha", "dropout", "lora_alpha", "lora_dropout", "grad_checkpointing", "activation",
                    "init_text", "pooling", "layer", "use_rslora", "init", "alpha_pattern", "loraplus_ratio",
                    "d_initial", "projection_prng_key", "target_rank", "tinit", "tfinal", "delta_t", "total_step"}

# Name fragments -> component; checked in this order (adapters live inside attention/MLP modules).
_PATTERNS = (
    ("adapters", ("lora_", "ia3_", "prompt_encoder", ".adapter.", "prefix_encoder", "vera_", "modules_to_save",
                  "hada_", "lokr_", "oft_")),
    ("norms", ("norm", "ln_tuning")),
    ("embeddings", ("embed_tokens", "wte", "wpe", "word_embeddings", "embed_positions")),
    ("head", ("lm_head", "score.", "classifier", "head.")),
    ("attention", ("self_attn", "attention", "attn")),
    ("mlp", ("mlp", "feed_forward", "ffn")),
)


def _component(name: str) -> str:
    for component, fragments in _PATTERNS:
        if any(f in name for f in fragments):
            return component
    return "other"


def real_numel(param) -> int:
    """Parameters a tensor stands for: a bitsandbytes 4-bit weight packs two per byte, its quant_state knows."""
    shape = getattr(getattr(param, "quant_state", None), "shape", None)
    return math.prod(shape) if shape is not None else param.numel()


def param_table(model):
    """Total and trainable parameters per component (rows) of a model, 4-bit weights counted unpacked.

    >>> param_table(model).loc["adapters", "trainable"]  # doctest: +SKIP
    """
    import pandas as pd

    rows = {c: [0, 0] for c in COMPONENTS}
    for name, param in model.named_parameters():  # a tied tensor is listed once
        n = real_numel(param)
        row = rows[_component(name)]
        row[0] += n
        row[1] += n if param.requires_grad else 0
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["total", "trainable"]).astype("int64")
    frame.index.name = "component"
    return frame


@dataclass(frozen=True)
class ParamSummary:
    """How many parameters a model has and how many train."""

    total: int  # all parameters, 4-bit ones counted as parameters (not bytes)
    trainable: int  # parameters with requires_grad
    trainable_pct: float  # 100 * trainable / total

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.trainable_pct:.3g}%)"


def param_summary(model) -> ParamSummary:
    """Total, trainable and percent trainable (correct for 4-bit models, unlike peft's printout)."""
    table = param_table(model)
    total, trainable = int(table["total"].sum()), int(table["trainable"].sum())
    return ParamSummary(total, trainable, 100.0 * trainable / total if total else 0.0)


def storage_bytes(model) -> int:
    """Bytes of the trainable tensors at their dtype: what one task's checkpoint must store."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def _method_settings(method: str, kw: dict) -> dict:
    get_method(method)  # an unknown method is refused with the registered names
    kw = dict(kw)
    aliases = {"r": "rank", "bottleneck": "adapter_size", "style": "adapter_style"}
    for old, new in aliases.items():
        if old in kw:
            kw[new] = kw.pop(old)
    if "labels" in kw:
        labels = kw.pop("labels")
        if kw.get("num_labels") is None:
            kw["num_labels"] = len(labels)
    for name in IGNORED_SETTINGS & set(kw):
        kw.pop(name)
    known = {"rank", "target_modules", "num_virtual_tokens", "adapter_size", "adapter_style",
             "feedforward_modules", "num_labels", "rank_pattern", "layers", "block_size", "decompose_factor",
             "encoder_hidden_size"}
    unknown = sorted(set(kw) - known)
    if unknown:
        raise LabkitError(f"Unknown setting(s) {unknown} for {method!r}: use {', '.join(sorted(known))}.")
    return kw


def adapted_layers(method: str, target_modules=None) -> tuple[str, ...]:
    """Linear layer names ``method`` adapts (its default targets when None); () for a method without targets."""
    spec = get_method(method)
    return resolve_targets(target_modules or spec.default("target_modules")) if spec.takes_targets else ()


def feedforward_layers(method: str, targets, feedforward_modules=None) -> set[str]:
    """Of ``targets``, the layers a scaling method rescales on their input (its default feed-forward layers)."""
    if get_method(method).family != "scaling":
        return set()
    if feedforward_modules:
        return set(resolve_targets(feedforward_modules))
    return set(get_method(method).default("feedforward_modules")) & set(targets)


def trainable_tensors(config, method: str, *, rank: int | None = None, target_modules=None, num_virtual_tokens: int = 20,
                      adapter_size: int = 64, adapter_style: str = "houlsby", feedforward_modules=None,
                      num_labels: int | None = None, rank_pattern: dict | None = None, layers=None,
                      block_size: int = 32, decompose_factor: int = -1,
                      encoder_hidden_size: int = 128) -> list[tuple[int, bool]]:
    """(size, is_base_weight) of every tensor the method trains; base weights are the model's own.

    The formula is chosen by the method's family in the registry (labkit.methods.FAMILIES), not by its name.
    """
    d = dims(config)
    chosen, layers = layers, range(d.layers)  # ``layers`` (LoRA's chosen decoder layers) becomes ``chosen``
    family = get_method(method).family
    if rank is None:  # the method's own default size (VeRA 256, AdaLoRA 12, LoRA 8)
        rank = get_method(method)._default("rank")
        rank = 8 if rank is dataclasses.MISSING else rank
    if family == "all_weights":
        sizes = [d.vocab * d.hidden] + [d.linear_params(n) for _ in layers for n in LINEARS]
        sizes += [d.hidden] * (2 * d.layers + 1) + ([] if d.tied else [d.vocab * d.hidden])
        return [(n, True) for n in sizes]
    if family in LOW_RANK and (rank_pattern or chosen is not None):
        return _patterned_low_rank(d, method, rank, target_modules, rank_pattern, chosen)
    if family in LOW_RANK:
        positive_int("rank", rank, "try 8 or 16")
        out = []
        for name in adapted_layers(method, target_modules):
            fan_in, fan_out, _ = d.linear(name)
            check_rank(rank, name, fan_in, fan_out)  # the rule apply_method applies to the real layers
            count = 1 if name == "lm_head" else d.layers
            out += [(rank * fan_in, False), (fan_out * rank, False)] * count
            out += [(fan_out, False)] * count if family == "low_rank_magnitude" else []  # DoRA's magnitude
        return out
    if family in LAYER_ADAPTERS:
        return _layer_adapter_tensors(d, method, family, rank, target_modules, block_size, decompose_factor)
    if family == "prompt_encoder":  # peft's MLP encoder: hidden -> e -> e -> hidden, with biases
        positive_int("num_virtual_tokens", num_virtual_tokens, "try 20")
        positive_int("encoder_hidden_size", encoder_hidden_size, "try 128")
        h, e = d.hidden, encoder_hidden_size
        return [(num_virtual_tokens * h, False), (h * e, False), (e, False), (e * e, False), (e, False),
                (e * h, False), (h, False)]
    if family == "bottleneck":
        positive_int("adapter_size", adapter_size, "the bottleneck width, try 16 or 64")
        per_layer = {"houlsby": 2, "pfeiffer": 1}.get(adapter_style)
        if per_layer is None:
            raise LabkitError(f"Unknown adapter style {adapter_style!r}: use 'houlsby' or 'pfeiffer'.")
        h, b = d.hidden, adapter_size
        return [(h * b, False), (b, False), (b * h, False), (h, False)] * (per_layer * d.layers)
    if family in ("kv_prefix", "soft_prompt"):
        positive_int("num_virtual_tokens", num_virtual_tokens, "try 20")
        width = d.layers * 2 * d.kv_dim if family == "kv_prefix" else d.hidden  # peft: keys and values, GQA-sized
        return [(num_virtual_tokens * width, False)]
    if family == "scaling":
        targets = adapted_layers(method, target_modules)
        ff = feedforward_layers(method, targets, feedforward_modules)
        return [(d.linear(n)[0] if n in ff else d.linear(n)[1], False) for _ in layers for n in targets]
    if family == "biases":
        biases = [d.linear(n)[1] for n in ATTN if d.attn_bias] + [d.linear(n)[1] for n in MLP if d.mlp_bias]
        return [(n, True) for _ in layers for n in biases]
    if family == "norm_weights":
        return [(d.hidden, True)] * (2 * d.layers + 1)
    if family != "head":
        raise LabkitError(f"The meters have no formula for the family {family!r} of {method!r}: add one to "
                          "labkit/meters/params.py (trainable_tensors) and labkit/meters/memory.py.")
    if num_labels is None:
        raise LabkitError(f"{method} needs num_labels (or labels=[...]): how many classes the head predicts.")
    positive_int("num_labels", num_labels, "the number of classes")
    return [(d.hidden * num_labels, False), (num_labels, False)]


def _layer_names(d, name: str) -> list[str]:
    """Full names of the ``name`` layers of every decoder layer, as peft matches its patterns against them."""
    if name == "lm_head":
        return ["lm_head"]
    block = "self_attn" if name in ATTN else "mlp"
    return [f"model.layers.{i}.{block}.{name}" for i in range(d.layers)]


def _patterned_low_rank(d, method, rank, target_modules, rank_pattern, layers):
    """LoRA/DoRA with per-layer ranks (peft rank_pattern) or on chosen decoder layers only (layers_to_transform)."""
    positive_int("rank", rank, "try 8 or 16")
    out = []
    for name in adapted_layers(method, target_modules):
        fan_in, fan_out, _ = d.linear(name)
        for i, full in enumerate(_layer_names(d, name)):
            if layers is not None and (name == "lm_head" or i not in layers):
                continue
            r = pattern_value(rank_pattern, full, rank)
            check_rank(r, name, fan_in, fan_out)
            out += [(r * fan_in, False), (fan_out * r, False)]
            out += [(fan_out, False)] if get_method(method).family == "low_rank_magnitude" else []
    return out


def _layer_adapter_tensors(d, method, family, rank, target_modules, block_size, decompose_factor):
    """Chapter 3's layer adapters, per target layer: AdaLoRA P, Λ, Q; VeRA b, d; LoHa four factors; LoKr; OFT."""
    if family == "orthogonal":
        positive_int("block_size", block_size, "try 32")
    else:
        positive_int("rank", rank, "try 8")
    out = []
    for name in adapted_layers(method, target_modules):
        fan_in, fan_out, _ = d.linear(name)
        if family == "low_rank_adaptive":
            check_rank(rank, name, fan_in, fan_out)
            sizes = [rank * fan_in, fan_out * rank, rank]  # Q, P and the singular values Λ
        elif family == "shared_projection":
            sizes = [fan_out, rank]  # b and d; the random A and B are frozen and shared
        elif family == "hadamard":
            sizes = [fan_out * rank, rank * fan_in] * 2
        elif family == "kronecker":
            sizes = lokr_sizes(fan_in, fan_out, rank, decompose_factor)
        else:
            if fan_in % block_size:
                raise LabkitError(f"block_size={block_size} does not divide {name}'s {fan_in} inputs: pick a divisor.")
            sizes = [fan_in // block_size * block_size * (block_size - 1) // 2]  # one skew-symmetric block each
        out += [(n, False) for n in sizes] * (1 if name == "lm_head" else d.layers)
    return out


def analytic_trainable_params(config, method: str, *, rank: int | None = None, target_modules=None,
                              num_virtual_tokens: int = 20, adapter_size: int = 64, num_labels: int | None = None,
                              **method_kw) -> int:
    """Exact trainable-parameter count of ``method`` from a config alone (peft 0.21 conventions).

    ``target_modules=None`` means the method's default: all linear layers for LoRA/DoRA/QLoRA, peft's
    k_proj, v_proj, down_proj for IA3. Settings that do not change the count (alpha, dropout...) are accepted.

    >>> from transformers import LlamaConfig
    >>> cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    ...                   num_key_value_heads=2, vocab_size=1000)
    >>> analytic_trainable_params(cfg, "lora", rank=8)
    16384
    """
    kw = _method_settings(method, {"rank": rank, "target_modules": target_modules, "adapter_size": adapter_size,
                                   "num_virtual_tokens": num_virtual_tokens, "num_labels": num_labels, **method_kw})
    return sum(n for n, _ in trainable_tensors(config, method, **kw))


def analytic_total_params(config) -> int:
    """All parameters of the base model described by ``config`` (a tied head counted once)."""
    return dims(config).total


def analytic_storage_bytes(config, method: str, *, dtype: str = "fp32", **method_kw) -> int:
    """Bytes one task's checkpoint needs: the trainable parameters at ``dtype`` (fp32 4, bf16/fp16 2)."""
    if dtype not in DTYPE_BYTES:
        raise LabkitError(f"Unknown storage dtype {dtype!r}: use 'fp32', 'bf16' or 'fp16'.")
    return analytic_trainable_params(config, method, **method_kw) * DTYPE_BYTES[dtype]
