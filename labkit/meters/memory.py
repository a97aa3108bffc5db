"""Predicted peak memory of one training step, from a config alone, split into five components.

Sources, cited once:
- Model states: 16 bytes per trained parameter in mixed precision with Adam (2 weight + 2 gradient + 4 fp32 master
  + 8 fp32 moments): Rajbhandari et al. 2020, "ZeRO", section 3.1.
- NF4 with double quantization: 4.127 bits per weight (labkit.units.NF4_BITS). bitsandbytes 8-bit Adam keeps uint8 moments
  with an fp32 absmax per 256 values and fp32 moments for tensors under 4096 elements (its min_8bit_size).
- Activations: Korthikanti et al. 2022, "Reducing Activation Recomputation", section 4.1, count per layer what
  autograd saves (s*b*h*(34 + 5*a*s/h) bytes in 16-bit for GPT with unfused attention). The terms below are the
  same kind of count redone for the Hugging Face Llama code with fused (SDPA) attention, where no a*s^2 score
  matrix is saved: we listed every tensor autograd saves (torch.autograd.graph.saved_tensors_hooks) on tiny
  Llama configs, varied h, I, kv heads, heads, s, b and V one at a time, and kept the exact per-token terms
  (tests/test_meters.py re-checks them against autograd on a tiny model).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..core import LabkitError
from ..methods import get_method
from ..units import DTYPE_BYTES, GIB, MIB, NF4_BITS, OPTIMIZERS
from .arch import LINEARS, dims, positive_int
from .params import LAYER_ADAPTERS, LOW_RANK, _method_settings, adapted_layers, feedforward_layers, trainable_tensors

SOFT_PROMPTS = ("soft_prompt", "prompt_encoder")  # families whose virtual tokens lengthen every input

NF4_BYTES = {True: NF4_BITS["nf4+dq"] / 8, False: NF4_BITS["nf4"] / 8}  # double_quant -> bytes per weight
# Process growth of a CPU training step that is not tensors (Python objects, allocator slack) in a warm process:
# measured 2-3 MiB with benchmarks/memory_accuracy.py --calibrate (a 2-layer, 64-wide Llama, vocabulary 1,000;
# torch 2.13, Linux, glibc). A cold process's first backward adds a one-time 15-60 MiB (lazy imports, the
# autograd engine's threads) that this constant leaves out.
CPU_OVERHEAD_BYTES = 3 * MIB
PREDICTED_OPTIMIZERS = (*OPTIMIZERS, "adafactor")  # lk.train's optimizers, and transformers' Adafactor (lab 02)
# CUDA context and cuBLAS workspace: outside torch's allocator (not in max_memory_allocated); a rule of thumb.
CUDA_OVERHEAD_BYTES = GIB // 2
F32 = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted bytes alive at the peak of a training step, per component; ``total`` is the peak."""

    weights: int  # model weights (quantized ones at their packed size, plus their scales)
    gradients: int  # gradients alive at the peak (none yet if the peak is at the start of backward)
    optimizer: int  # optimizer states, fp32 master copies and the optimizer's temporaries at the peak
    activations: int  # tensors saved for backward, plus logits and loss buffers
    overhead: int  # fixed runtime overhead (CPU process growth, or the CUDA context)
    phase: str = ""  # when the peak happens: "backward start", "backward end", "optimizer step" or (checkpointing)
    # "recompute last layer" / "recompute first layer"
    device: str = "cpu"  # the device the estimate is for
    details: dict = field(default_factory=dict, compare=False)  # sub-terms in bytes, for the curious

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    @property
    def model_states(self) -> int:
        """Weights + all gradients + optimizer states (ZeRO's 'model states'), whatever the phase."""
        return self.weights + self.details["all_gradients"] + self.details["optimizer_states"]

    def as_frame(self):
        """One row per component: bytes and GiB."""
        import pandas as pd

        parts = {k: getattr(self, k) for k in ("weights", "gradients", "optimizer", "activations", "overhead")}
        frame = pd.DataFrame({"bytes": parts, "gib": {k: v / GIB for k, v in parts.items()}})
        frame.index.name = "component"
        return frame

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {getattr(self, k) / GIB:.2f}" for k in
                          ("weights", "gradients", "optimizer", "activations", "overhead"))
        return f"~{self.total_gib:.2f} GiB at the {self.phase} ({parts} GiB)"


def _layer_bytes(d, family, targets, ia3_ff, rank, act, adapter_size, per_adapter):
    """Bytes autograd saves per token in one decoder layer (see the module docstring); ``family`` from the registry."""
    h, inter, q, kv = d.hidden, d.inter, d.q_dim, d.kv_dim
    full, norm_trains = family == "all_weights", family in ("all_weights", "norm_weights")
    # chapter 3's layer adapters (AdaLoRA, VeRA, LoHa, LoKr, OFT) save their layer's input as LoRA does; their
    # own small intermediates are counted like LoRA's A x (rank numbers per token) except OFT's rotated input.
    # This is an approximation for them, not re-derived from autograd: lab 03 shows it next to the measurement.
    lora = set(targets) if family in LOW_RANK + LAYER_ADAPTERS else set()
    shared = act == F32  # an fp32 adapter reads the fp32 input itself; in 16-bit it saves its own fp32 copy
    out = 2 * F32 * h + 2 * F32  # both norm inputs (upcast to fp32) and their rsqrt
    out += 2 * act * h if norm_trains else 0  # normed values, kept for the norm weights' gradient
    for group in (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj")):
        adapted = [n for n in group if n in lora]
        if full or (adapted and shared):
            out += act * h  # the shared input of these linears
        elif adapted:
            out += F32 * h * len(adapted)
    out += act * (2 * q + 2 * kv) + F32 * d.heads  # q, k, v after RoPE, attention output, log-sum-exp
    out += F32 * q if "o_proj" in lora and not shared else 0
    out += 3 * act * inter  # gate output (SiLU input), SiLU output, up output
    if full or ("down_proj" in lora and shared) or "down_proj" in ia3_ff:
        out += act * inter  # input of down_proj
    elif "down_proj" in lora:
        out += F32 * inter
    if family == "orthogonal":
        out += F32 * sum(d.linear(n)[0] for n in lora)  # the rotated input, kept for the base layer's backward
    else:
        out += F32 * rank * sum(n in lora for n in LINEARS)  # A x, kept for B's gradient
    if family == "low_rank_magnitude":
        out += F32 * 2 * sum(d.linear(n)[1] for n in lora)  # base and LoRA outputs, for the magnitude scaling
    if family == "scaling":
        out += act * sum(d.linear(n)[1] for n in targets if n not in ia3_ff)  # outputs before scaling
    if family == "bottleneck":
        out += per_adapter * act * (h + 2 * adapter_size)  # adapter input, bottleneck before and after activation
    return out


def _adafactor_states(d, family, target_modules, rank, method) -> int:
    """Bytes of transformers' Adafactor state (no first moment, its default): a row and a column mean per matrix
    (Shazeer and Stern 2018, "Adafactor", section 3), a full second moment per vector; all fp32."""
    if family == "all_weights":
        mats = [(d.vocab, d.hidden)] * (1 if d.tied else 2) + [d.linear(n)[:2] for n in LINEARS] * d.layers
        vectors = (2 * d.layers + 1) * d.hidden + d.layers * sum(d.linear(n)[1] for n in LINEARS if d.linear(n)[2])
    elif family == "low_rank":
        targets = [t for t in adapted_layers(method, target_modules) if t in LINEARS]
        mats = [shape for t in targets for shape in ((rank, d.linear(t)[0]), (d.linear(t)[1], rank))] * d.layers
        vectors = 0
    else:
        raise LabkitError(f"Adafactor predictions cover full fine-tuning and LoRA, not {method!r}: use "
                          "optimizer='adamw' or 'sgd' for it.")
    return F32 * (sum(rows + cols for rows, cols in mats) + vectors)


def predict_memory(config, method: str = "lora", *, rank: int | None = None, target_modules=None, dtype: str = "fp32",
                   quantization: str | None = None, double_quant: bool = True, optimizer: str = "adamw",
                   batch_size: int = 4, seq_len: int = 128, grad_checkpointing: bool = False,
                   num_virtual_tokens: int = 20, device: str = "cpu", keep_logits: bool = False,
                   **method_kw) -> MemoryEstimate:
    """Predict the peak memory of one training step (from step 2 on) for ``method`` on ``config``.

    Assumes the usual recipes: peft keeps adapters in fp32; a quantized model is prepared with peft's
    prepare_model_for_kbit_training (non-quantized weights and the residual stream in fp32); the loop keeps only
    the loss, as ``loss = model(**batch).loss`` does (``keep_logits=True`` if it keeps the whole output through
    backward); AdamW is torch's default (single-tensor on the CPU; on CUDA the multi-tensor "foreach" one, whose
    step holds a temporary as large as the gradients). On CUDA in fp32 with grouped-query attention, PyTorch's SDPA
    has no fused kernel (flash attention needs 16-bit, the memory-efficient one takes no grouped keys), so its math
    path runs and saves each layer's attention probabilities: the a*s^2 term comes back.

    >>> from labkit.meters import KNOWN_CONFIGS
    >>> est = predict_memory(KNOWN_CONFIGS["mistralai/Mistral-7B-v0.3"], "qlora", rank=16, dtype="fp16",
    ...                      device="cuda", grad_checkpointing=True, batch_size=1, seq_len=512)
    >>> round(est.total_gib, 1)
    5.8
    """
    d = dims(config)
    positive_int("batch_size", batch_size, "try 4")
    positive_int("seq_len", seq_len, "try 128")
    if dtype in ("nf4", "int8"):  # shorthand: quantized weights computing in the device's usual dtype
        quantization, dtype = dtype, "bf16" if device.startswith("cuda") else "fp32"
    if dtype not in DTYPE_BYTES:
        raise LabkitError(f"Unknown dtype {dtype!r}: use 'fp32', 'bf16', 'fp16', or 'nf4'/'int8' for quantized.")
    if optimizer not in PREDICTED_OPTIMIZERS:
        raise LabkitError(f"Unknown optimizer {optimizer!r}: use one of {', '.join(PREDICTED_OPTIMIZERS)}.")
    if device not in ("cpu", "cuda"):
        raise LabkitError(f"Unknown device {device!r}: predictions are for 'cpu' or 'cuda'.")
    kw = _method_settings(method, {"rank": rank, "target_modules": target_modules,
                                   "num_virtual_tokens": num_virtual_tokens, **method_kw})
    spec = get_method(method)
    family = spec.family
    quantization = spec.base_quantization if quantization is None else quantization  # QLoRA: a 4-bit base
    if quantization not in (None, "nf4", "int8"):
        raise LabkitError(f"Unknown quantization {quantization!r}: use None, 'nf4' or 'int8'.")
    tensors = trainable_tensors(config, method, **kw)
    if not tensors or sum(n for n, _ in tensors) == 0:
        raise LabkitError(f"{method!r} trains nothing on this model (e.g. bitfit on a Llama without biases): "
                          "pick another method.")
    if quantization and any(base for _, base in tensors):
        raise LabkitError(f"{method!r} trains the model's own weights, which cannot be quantized: use "
                          "quantization=None, or an adapter method such as 'qlora'.")
    wbytes = DTYPE_BYTES[dtype]
    act = F32 if quantization else wbytes  # peft's k-bit preparation keeps the residual stream in fp32
    cpu = device == "cpu"

    # Weights: per-layer linears (quantized or not), the rest (embeddings, norms, untied head) and added tensors.
    comp = d.components()
    linears = comp["attention"] + comp["mlp"]
    rest = d.total - linears
    if quantization == "nf4":
        weights = int(linears * NF4_BYTES[bool(double_quant)]) + rest * F32
    elif quantization == "int8":
        rows = d.layers * sum(d.linear(n)[1] for n in LINEARS)
        weights = linears + F32 * rows + rest * F32  # int8 codes + an fp32 scale per output row (LLM.int8)
    else:
        weights = d.total * wbytes
    added = sum(n for n, base in tensors if not base)
    weights += added * F32

    # Gradients and optimizer states, tensor by tensor.
    grad_of = [(n, wbytes if base else F32, base) for n, base in tensors]
    all_grads = sum(n * b for n, b, _ in grad_of)
    states = 0
    eight_bit = optimizer in ("adamw8bit", "paged_adamw8bit")  # paging moves the same states, it does not shrink them
    for n, b, base in grad_of:
        if optimizer == "adamw" or (eight_bit and n < 4096):
            states += 8 * n
        elif eight_bit:
            states += 2 * n + 8 * -(-n // 256)
        states += F32 * n if base and b == 2 else 0  # fp32 master copy of a 16-bit weight
    if optimizer == "adafactor":
        lora_rank = (kw.get("rank") or spec.default("rank")) if family == "low_rank" else None
        states = _adafactor_states(d, family, kw.get("target_modules"), lora_rank, method)
    largest = max(n * b for n, b, _ in grad_of)
    if cpu:
        step_temp = {"adamw": 2, "sgd": 0, "adafactor": 2}.get(optimizer, 5) * largest
    else:  # foreach AdamW: sqrt of every second moment at once (torch.optim.adam._multi_tensor_adam)
        step_temp = {"adamw": all_grads, "adafactor": 2 * largest}.get(optimizer, 0)

    # Activations per token: decoder layers, then the final norm and head.
    targets = adapted_layers(method, kw.get("target_modules"))
    ia3_ff = feedforward_layers(method, targets, kw.get("feedforward_modules"))
    per_adapter = {"houlsby": 2, "pfeiffer": 1}.get(kw.get("adapter_style", "houlsby"), 2)
    rank = kw.get("rank") or spec.default("rank") if "rank" in {f.name for f in fields(spec.config)} else 8
    layer = _layer_bytes(d, family, [t for t in targets if t in LINEARS], ia3_ff, rank, act,
                         kw.get("adapter_size", 64), per_adapter)
    seq = seq_len + (kw.get("num_virtual_tokens", 20) if family in SOFT_PROMPTS else 0)
    tokens = batch_size * seq
    if not cpu and dtype == "fp32" and d.kv_heads < d.heads:  # SDPA's math path (docstring), measured on an H200
        # per token: the softmax output (heads x s), keys and values repeated to every head, no log-sum-exp
        layer += F32 * d.heads * seq + 2 * act * (d.q_dim - d.kv_dim) - F32 * d.heads
    head_trains = family == "all_weights" or "lm_head" in targets
    if family == "head":  # the backbone runs without a graph: one layer's working set, a tiny head
        saved, logits_peak, logits_held = tokens * act * (2 * d.hidden + 3 * d.inter), 0, 0
    else:
        if family == "kv_prefix":  # keys and values of the virtual tokens join every layer's attention
            layer += 2 * act * d.kv_dim * kw.get("num_virtual_tokens", 20) / seq_len
        if grad_checkpointing:  # keep each layer's input; recompute one layer at a time in backward (phase below)
            saved = tokens * d.layers * act * d.hidden
        else:
            saved = tokens * d.layers * layer
        saved += tokens * (F32 * d.hidden + F32 + (act * d.hidden if head_trains else 0)
                           + (act * d.hidden if family in ("all_weights", "norm_weights") else 0))  # final norm, head
        if family not in ("all_weights", *SOFT_PROMPTS) and not grad_checkpointing:
            saved -= tokens * (F32 * d.hidden + F32)  # frozen embeddings: the first norm's input needs no grad
        held_b = act if keep_logits else 0  # logits kept by the caller; log-softmax output and two gradients
        logits_held = tokens * d.vocab * held_b
        head_grad = d.vocab * d.hidden * wbytes if family == "all_weights" else 0  # the head's weight gradient
        logits_peak = max(tokens * d.vocab * (held_b + 3 * F32), tokens * d.vocab * (held_b + F32) + head_grad)
    saved = int(saved)
    # Checkpointing: the head's backward is over before the last layer is recomputed, so one layer's saved tensors
    # meet the layer inputs not yet used and the gradients made so far, not the logits; the residual stream's
    # gradient flows in and out of the layer (two fp32 copies). Two moments bound it: the last layer (every input
    # kept, only the head's gradient made) and the first (one input left, every gradient but its own). Checked on
    # 4-layer Llama and Mistral configs with a 1,000-token vocabulary (tests/test_meters_live.py), where the logits
    # do not hide it.
    recompute = {}
    if grad_checkpointing and family != "head":
        work = int(tokens * (layer + 2 * F32 * d.hidden))
        inputs = tokens * d.layers * act * d.hidden
        full = family == "all_weights"
        own = ((linears / d.layers + 2 * d.hidden) * wbytes) if full else all_grads / d.layers
        recompute = {"recompute last layer": ((d.vocab * d.hidden * wbytes if full else 0), states, saved + work),
                     "recompute first layer": (int(all_grads - own), states,
                                               saved - inputs + inputs // d.layers + work)}
    emb_sum = 2 * d.vocab * d.hidden * wbytes if family == "all_weights" and d.tied else 0  # tied embedding's two grads
    overhead = CPU_OVERHEAD_BYTES if cpu else CUDA_OVERHEAD_BYTES

    phases = {
        "backward start": (0, states, saved + logits_peak),
        **recompute,
        "backward end": (all_grads + emb_sum, states, logits_held),
        "optimizer step": (all_grads, states + step_temp, logits_held),
    }
    phase = max(phases, key=lambda p: sum(phases[p]))
    grads, opt, acts = phases[phase]
    details = {"all_gradients": all_grads, "optimizer_states": states, "optimizer_temp": step_temp,
               "saved_activations": saved, "logits_at_backward_start": logits_peak, "trainable_params":
               sum(n for n, _ in tensors), "tied_embedding_grad_sum": emb_sum}
    return MemoryEstimate(int(weights), int(grads), int(opt), int(acts), int(overhead), phase, device, details)


def sweep_memory(config, methods="lora", vary: str = "rank", values=(4, 8, 16, 32, 64), **kw):
    """Predictions over one setting (``vary`` takes each of ``values``): a table for plots.memory_sweep."""
    import pandas as pd

    if vary in kw:
        raise LabkitError(f"{vary!r} is the setting being varied: do not pass it as a fixed keyword too.")
    rows = []
    for method in [methods] if isinstance(methods, str) else methods:
        for value in values:
            args = {**kw, vary: value}
            if vary == "rank" and get_method(method).size_knob != "rank":
                args.pop("rank")  # rank does not apply: a flat line to compare against
            est = predict_memory(config, method, **args)
            row = {"method": method, vary: value, **{f"{c}_gib": v for c, v in est.as_frame()["gib"].items()}}
            rows.append({**row, "total_gib": est.total_gib, "phase": est.phase})
    return pd.DataFrame(rows)
