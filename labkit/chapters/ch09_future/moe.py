"""Mixtures of experts: a tiny random Mixtral from a config, SmolLM2 upcycled into N experts with a new router
(sparse upcycling, Komatsuzaki et al. 2022), parameter and FLOP counts, router load per layer and per task family,
and the two fine-tuning targets (LoRA on the experts, or the router alone).

>>> moe = upcycle(dense, num_experts=4, top_k=2)  # doctest: +SKIP
>>> moe_params(moe.config)["active"] / moe_params(moe.config)["total"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib

from ...core import LabkitError

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}
SWITCH_AUX_COEF = 0.01  # Switch Transformer's load-balancing coefficient alpha (Fedus et al. 2021, section 2.2)
# transformers runs the experts as one grouped matmul by default, which torch's FlopCounterMode does not count; the
# "eager" loop over experts computes the same and is counted (checked: measured = predicted FLOPs per token).
EXPERTS_IMPL = "eager"
MIXTRAL_AUX_COEF = 0.001  # transformers' MixtralConfig default router_aux_loss_coef (Mixtral 8x7B's config)


def check_experts(num_experts, top_k) -> None:
    """Refuse a router that cannot exist: top-k must be a whole number from 1 to the number of experts."""
    for name, value in (("num_experts", num_experts), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LabkitError(f"{name} must be a positive whole number (e.g. 4 experts, top-2), got {value!r}.")
    if top_k > num_experts:
        raise LabkitError(f"top_k={top_k} is more than the {num_experts} experts there are: pick top_k from 1 to "
                          f"{num_experts} (Mixtral uses 2 of 8).")


def tiny_mixtral(num_experts: int = 4, top_k: int = 2, *, aux_coef: float = 0.0, vocab_size: int = 49152,
                 seed: int = 0, **overrides):
    """A random MixtralForCausalLM from a config (2 layers, hidden 64): builds offline in a moment.

    ``aux_coef`` > 0 adds Mixtral's load-balancing loss (router_aux_loss_coef) to the training loss; 0 turns it off.
    """
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    check_experts(num_experts, top_k)
    if isinstance(aux_coef, bool) or not isinstance(aux_coef, (int, float)) or aux_coef < 0:
        raise LabkitError(f"aux_coef must be 0 (off) or a positive number (Switch used {SWITCH_AUX_COEF}), "
                          f"got {aux_coef!r}.")
    cfg = MixtralConfig(**{**TINY, **overrides}, vocab_size=vocab_size, num_local_experts=num_experts,
                        num_experts_per_tok=top_k, router_aux_loss_coef=float(aux_coef), output_router_logits=True)
    torch.manual_seed(seed)
    model = MixtralForCausalLM(cfg)
    model.set_experts_implementation(EXPERTS_IMPL)
    return model.eval()


def mixtral_config_from(dense_config, num_experts: int, top_k: int):
    """The MixtralConfig of a Llama-architecture model with its MLP split into ``num_experts`` experts."""
    from transformers import MixtralConfig

    check_experts(num_experts, top_k)
    c = dense_config
    if getattr(c, "model_type", None) not in ("llama", "mistral"):
        raise LabkitError(f"Sparse upcycling here copies a Llama/Mistral MLP; got a {c.model_type!r} model: load "
                          "lk.load_model('smollm2-135m') (or 'tiny-llama').")
    return MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=getattr(c, "head_dim", None),
        hidden_act=c.hidden_act, max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
        rope_parameters=dict(c.rope_parameters), tie_word_embeddings=c.tie_word_embeddings,
        bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
        sliding_window=None, num_local_experts=num_experts, num_experts_per_tok=top_k,
        router_aux_loss_coef=MIXTRAL_AUX_COEF, output_router_logits=False)


def upcycle(dense, num_experts: int = 4, top_k: int = 2, *, noise: float = 0.0, router_std: float = 0.02,
            seed: int = 0):
    """Sparse upcycling: a MixtralForCausalLM whose experts all start as copies of ``dense``'s MLP, with a new router.

    Attention, norms and embeddings are copied as they are. ``noise`` > 0 multiplies each expert's weights by
    (1 + noise * N(0, 1)) so that the experts differ; ``router_std`` is the new router's initial spread.
    With noise=0 the MoE computes exactly what the dense model did (the renormalised top-k gates sum to 1).

    >>> moe = upcycle(lk.load_model("smollm2-135m")[0], num_experts=4, top_k=2)  # doctest: +SKIP
    """
    import torch
    from transformers import MixtralForCausalLM

    if not hasattr(dense, "model") or not hasattr(dense.model, "layers"):
        raise LabkitError("upcycle needs a plain causal LM (e.g. lk.load_model('smollm2-135m')[0]), not a model "
                          "with a method applied: load a fresh one.")
    cfg = mixtral_config_from(dense.config, num_experts, top_k)
    for name, value in (("noise", noise), ("router_std", router_std)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise LabkitError(f"{name} must be a number >= 0 (try 0.01), got {value!r}.")
    from transformers.initialization import no_init_weights

    with no_init_weights():  # every weight is set below: skip the random init of ~N x the MLP's parameters
        moe = MixtralForCausalLM(cfg)
    moe.to(next(dense.parameters()).dtype)
    gen = torch.Generator().manual_seed(seed)
    src = dense.state_dict()
    with torch.no_grad():
        for name, tensor in moe.state_dict().items():
            if name in src and src[name].shape == tensor.shape:
                tensor.copy_(src[name])
        for i, layer in enumerate(moe.model.layers):
            mlp = dense.model.layers[i].mlp
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0)
            for e in range(num_experts):
                scale_gu = 1 + noise * torch.randn(gate_up.shape, generator=gen) if noise else 1.0
                scale_d = 1 + noise * torch.randn(mlp.down_proj.weight.shape, generator=gen) if noise else 1.0
                layer.mlp.experts.gate_up_proj[e].copy_(gate_up * scale_gu)
                layer.mlp.experts.down_proj[e].copy_(mlp.down_proj.weight * scale_d)
            layer.mlp.gate.weight.copy_(torch.randn(layer.mlp.gate.weight.shape, generator=gen) * router_std)
    moe.tie_weights()
    moe.set_experts_implementation(EXPERTS_IMPL)
    return moe.eval()


def moe_params(config) -> dict:
    """Parameters of a Mixtral config: total, active per token (top-k experts), and the dense model with one MLP.

    Embeddings are counted once when tied. Router parameters count as active (every token uses the router).
    """
    c = config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    expert = 3 * c.hidden_size * c.intermediate_size
    router = c.num_local_experts * c.hidden_size
    norms = 2 * c.hidden_size
    embed = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)
    per_layer_shared = attn + norms
    layers = c.num_hidden_layers
    total = embed + c.hidden_size + layers * (per_layer_shared + router + c.num_local_experts * expert)
    active = embed + c.hidden_size + layers * (per_layer_shared + router + c.num_experts_per_tok * expert)
    dense = embed + c.hidden_size + layers * (per_layer_shared + expert)
    return {"total": total, "active": active, "dense": dense, "expert": expert, "experts_total": layers *
            c.num_local_experts * expert, "router": layers * router}


def predicted_flops_per_token(config) -> float:
    """Forward matmul FLOPs per token, 2 per active weight it touches: attention, router, top-k experts, LM head.

    Attention's own score products (QK^T, AV) grow with the sequence and are left out: the prediction is the
    weight part, which is what top-k changes.
    """
    c = config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    experts = getattr(c, "num_experts_per_tok", 1) * 3 * c.hidden_size * c.intermediate_size
    router = getattr(c, "num_local_experts", 0) * c.hidden_size
    return 2.0 * (c.num_hidden_layers * (attn + experts + router) + c.vocab_size * c.hidden_size)


def measure_flops_per_token(model, input_ids) -> float:
    """Forward FLOPs per token counted by torch's FlopCounterMode on a real forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    input_ids = torch.as_tensor(input_ids)
    if input_ids.dim() != 2 or input_ids.numel() == 0:
        raise LabkitError("input_ids must be a non-empty (batch, seq_len) tensor, e.g. tokenizer(texts, "
                          "return_tensors='pt').input_ids.")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=input_ids)
    return counter.get_total_flops() / input_ids.numel()


def moe_layers(model) -> list:
    """The MixtralSparseMoeBlock of every layer (peft-wrapped models too)."""
    blocks = [m for m in model.modules() if type(m).__name__ == "MixtralSparseMoeBlock"]
    if not blocks:
        raise LabkitError("This model has no mixture-of-experts layers: pass a Mixtral model (tiny_mixtral() or "
                          "upcycle(dense)).")
    return blocks


@contextlib.contextmanager
def record_routing(model):
    """Count, per layer, how many token slots the router sends to each expert while the block runs.

    Yields a list (one entry per MoE layer) of torch tensors of counts, filled in place.
    """
    import torch

    blocks = moe_layers(model)
    counts = [torch.zeros(b.gate.num_experts, dtype=torch.long) for b in blocks]
    handles = []
    for i, block in enumerate(blocks):
        def hook(module, args, output, i=i):
            indices = output[2]  # (tokens, top_k)
            counts[i] += torch.bincount(indices.reshape(-1).cpu(), minlength=module.num_experts)
        handles.append(block.gate.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def expert_loads(model, tokenizer, texts, *, seq_len: int = 64, batch_size: int = 8):
    """Share of token slots each expert gets, per layer, over ``texts``: a DataFrame (layer, expert, share, tokens)."""
    import pandas as pd
    import torch

    texts = list(texts)
    if not texts:
        raise LabkitError("texts is empty: pass some texts to route, e.g. lk.load_corpus()['validation']['text'][:32].")
    device = next(model.parameters()).device
    with record_routing(model) as counts, torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                            max_length=seq_len).to(device)
            model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    rows = []
    for layer, c in enumerate(counts):
        total = int(c.sum())
        rows += [{"layer": layer, "expert": e, "share": int(n) / max(total, 1), "tokens": int(n)}
                 for e, n in enumerate(c.tolist())]
    return pd.DataFrame(rows)


def balance_summary(loads) -> dict:
    """From expert_loads: the busiest expert's mean share and the coefficient of variation of the shares."""
    per_layer = loads.groupby("layer")["share"]
    return {"max_share": float(per_layer.max().mean()),
            "cv": float((per_layer.std(ddof=0) / per_layer.mean()).mean())}


def family_usage(model, tokenizer, data, *, per_family: int = 16, seq_len: int = 64):
    """Share of token slots each task family sends to each expert, summed over layers: family x expert table."""
    import pandas as pd

    families = sorted(set(data["family"]))
    rows = {}
    for family in families:
        part = data.filter(lambda r, f=family: r["family"] == f).select(range(per_family))
        loads = expert_loads(model, tokenizer, part["instruction"], seq_len=seq_len)
        shares = loads.groupby("expert")["tokens"].sum()
        rows[family] = shares / shares.sum()
    return pd.DataFrame(rows).T.rename_axis("family")


def router_grad_norm(model, batch) -> float:
    """L2 norm of the loss gradient on the routers' weights for one batch (every other weight frozen meanwhile)."""
    import torch

    blocks = moe_layers(model)
    saved = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    weights = [b.gate.weight for b in blocks]
    for w in weights:
        w.requires_grad_(True)
        w.grad = None
    try:
        model(**batch).loss.backward()
        return float(torch.sqrt(sum((w.grad.float() ** 2).sum() for w in weights)))
    finally:
        for p, flag in saved.items():
            p.requires_grad_(flag)
            p.grad = None


def lora_on_experts(moe, rank: int = 8, *, alpha: float = 16.0):
    """LoRA on every expert's weights (peft's target_parameters on the 3-D expert tensors); all else frozen."""
    from peft import LoraConfig, get_peft_model

    moe_layers(moe)
    if hasattr(moe, "peft_config"):
        raise LabkitError("This model already has an adapter: upcycle a fresh one.")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=[],
                     target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
    return get_peft_model(moe, cfg)


def router_only(moe):
    """Freeze everything but the routers; returns the model (trainable: num_experts x hidden per layer)."""
    blocks = moe_layers(moe)
    for p in moe.parameters():
        p.requires_grad_(False)
    for b in blocks:
        b.gate.weight.requires_grad_(True)
    return moe
