"""Round-to-nearest (RTN) quantization from first principles: absmax (symmetric) and zero-point (asymmetric) at 2-8
bits, per tensor, per output channel or per group; what each costs in bits per weight, predicted and measured from the
stored tensors; and a model whose linear weights are fake-quantized (quantized, then de-quantized to float).

>>> w_hat = fake_quantize(weight, bits=4, scheme="zeropoint", group=128)  # doctest: +SKIP
>>> predicted_bits(4, "zeropoint", group=128)  # 4 + (16 + 4) / 128  # doctest: +SKIP
4.15625
"""

from __future__ import annotations

import contextlib

from ...core import LabkitError

SCHEMES = ("absmax", "zeropoint")  # symmetric around zero / asymmetric with an integer zero point
SCALE_BITS = 16  # each scale is stored as float16, as GPTQ/AWQ checkpoints do
GRANULARITIES = ("tensor", "channel")  # or an int: that many weights of a row share one scale


def check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise LabkitError(f"bits must be a whole number from 2 to 8, got {bits!r}.")
    return bits


def _check(weight, bits, scheme, group):
    import torch

    check_bits(bits)
    if scheme not in SCHEMES:
        raise LabkitError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}.")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise LabkitError("Quantize a 2-D floating-point weight matrix, e.g. model.model.layers[0].mlp.up_proj.weight.")
    width = weight.shape[1]
    if group in GRANULARITIES:
        return group
    if isinstance(group, bool) or not isinstance(group, int) or group < 1 or width % group:
        raise LabkitError(f"group must be 'tensor', 'channel' or a group size that divides the width {width} "
                          f"(e.g. 32, 64 or 128), got {group!r}.")
    return group


def _grouped(weight, group):
    """The weight as rows of quantization groups: (groups, weights per group)."""
    if group == "tensor":
        return weight.reshape(1, -1)
    if group == "channel":
        return weight.reshape(weight.shape[0], -1)
    return weight.reshape(-1, group)


def _fp16(scale):
    """Scales as they are stored (float16, never zero), so fake quantization equals what the stored bytes rebuild."""
    return scale.clamp(min=1e-6).half().float()


def quantize_codes(weight, bits: int = 4, scheme: str = "zeropoint", group="channel"):
    """Integer codes, float scales and (zero-point scheme) integer zero points: ``w ≈ (codes - zero) * scale``."""
    import torch

    group = _check(weight, bits, scheme, group)
    g = _grouped(weight.detach().float(), group)
    if scheme == "absmax":
        qmax = 2 ** (bits - 1) - 1
        scale = _fp16(g.abs().amax(dim=1, keepdim=True) / qmax)
        codes = torch.clamp(torch.round(g / scale), -qmax - 1, qmax)
        zero = torch.zeros_like(scale)
    else:
        qmax = 2**bits - 1
        lo, hi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
        scale = _fp16((hi - lo) / qmax)
        zero = torch.round(-lo / scale).clamp(0, qmax)
        codes = torch.clamp(torch.round(g / scale) + zero, 0, qmax)
    return codes, scale, zero


def fake_quantize(weight, bits: int = 4, scheme: str = "zeropoint", group="channel"):
    """The weight after a quantize / de-quantize round trip, same shape and dtype."""
    codes, scale, zero = quantize_codes(weight, bits, scheme, group)
    return ((codes - zero) * scale).reshape(weight.shape).to(weight.dtype)


def predicted_bits(bits: int, scheme: str = "zeropoint", group="channel", shape: tuple | None = None) -> float:
    """Bits per weight: the code, plus one float16 scale (and a ``bits``-bit zero point) per group of weights."""
    check_bits(bits)
    if scheme not in SCHEMES:
        raise LabkitError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}.")
    if group in GRANULARITIES and shape is None:
        raise LabkitError("Per-tensor and per-channel costs depend on the matrix: pass shape=(rows, columns).")
    if group == "tensor":
        per_group = shape[0] * shape[1]
    elif group == "channel":
        per_group = shape[1]
    elif isinstance(group, bool) or not isinstance(group, int) or group < 1 or (shape and shape[1] % group):
        raise LabkitError(f"group must be 'tensor', 'channel' or a group size that divides the width, got {group!r}.")
    else:
        per_group = group
    extra = SCALE_BITS + (bits if scheme == "zeropoint" else 0)
    return bits + extra / per_group


def _packbits(codes, bits: int):
    """Pack non-negative integer codes of ``bits`` bits each into a uint8 tensor (a bit stream, no padding per code)."""
    import numpy as np
    import torch

    values = codes.reshape(-1).to(torch.int64).numpy().astype(np.uint8)
    stream = np.unpackbits(values[:, None], axis=1)[:, 8 - bits:]  # each code's low ``bits`` bits, high bit first
    return torch.from_numpy(np.packbits(stream.reshape(-1)))


def stored_tensors(weight, bits: int = 4, scheme: str = "zeropoint", group="channel") -> dict:
    """What a checkpoint would store: codes bit-packed into bytes, float16 scales, zero points packed likewise."""
    import torch

    codes, scale, zero = quantize_codes(weight, bits, scheme, group)
    offset = 2 ** (bits - 1) if scheme == "absmax" else 0  # absmax codes are signed: store them shifted
    stored = {"codes": _packbits(codes + offset, bits), "scales": scale.to(torch.float16).reshape(-1)}
    if scheme == "zeropoint":
        stored["zeros"] = _packbits(zero, bits)
    return stored


def measured_bits(weight, bits: int = 4, scheme: str = "zeropoint", group="channel") -> float:
    """Bits per weight read from the stored tensors' sizes (bytes x 8 / weights)."""
    stored = stored_tensors(weight, bits, scheme, group)
    return sum(t.numel() * t.element_size() for t in stored.values()) * 8 / weight.numel()


def unpack(stored: dict, bits: int, scheme: str, group, shape: tuple):
    """The float weight rebuilt from ``stored_tensors`` (proves the stored bytes hold everything)."""
    import numpy as np
    import torch

    n = shape[0] * shape[1]
    stream = np.unpackbits(stored["codes"].numpy())[: n * bits].reshape(n, bits)
    codes = torch.from_numpy((stream * (1 << np.arange(bits - 1, -1, -1))).sum(1)).float()
    scales = stored["scales"].float().reshape(-1, 1)
    if scheme == "absmax":
        codes, zeros = codes - 2 ** (bits - 1), torch.zeros_like(scales)
    else:
        z = np.unpackbits(stored["zeros"].numpy())[: scales.numel() * bits].reshape(-1, bits)
        zeros = torch.from_numpy((z * (1 << np.arange(bits - 1, -1, -1))).sum(1)).float().reshape(-1, 1)
    return ((codes.reshape(scales.shape[0], -1) - zeros) * scales).reshape(shape)


# ---- whole models -----------------------------------------------------------------------------------------------


def linear_layers(model, layers=None) -> dict:
    """The decoder's Linear layers by name (the embedding and the tied output head stay in float), optionally only
    those of the decoder layers whose index is in ``layers``."""
    import torch

    blocks = model.model.layers
    chosen = range(len(blocks)) if layers is None else layers
    out = {}
    for i in chosen:
        if not 0 <= i < len(blocks):
            raise LabkitError(f"layer {i} does not exist: the model has layers 0-{len(blocks) - 1}.")
        for name, module in blocks[i].named_modules():
            if isinstance(module, torch.nn.Linear):
                out[f"layers.{i}.{name}"] = module
    return out


@contextlib.contextmanager
def replaced_weights(modules: dict, new_weight):
    """Inside the block, each module's weight is ``new_weight(name, module)``; the float weights come back after."""
    import torch

    saved = {name: m.weight.data for name, m in modules.items()}
    try:
        with torch.no_grad():
            for name, m in modules.items():
                m.weight.data = new_weight(name, m)
        yield
    finally:
        for name, m in modules.items():
            m.weight.data = saved[name]


def fake_quantized(model, bits: int = 4, scheme: str = "zeropoint", group="channel", layers=None):
    """Context manager: the model's decoder Linear weights fake-quantized inside the block."""
    return replaced_weights(linear_layers(model, layers),
                            lambda _, m: fake_quantize(m.weight.data, bits, scheme, group))


def eval_texts(split="validation", limit: int | None = None):
    """The kit's corpus (lk.load_corpus), the split the lab scores perplexity on."""
    from ...data import load_corpus

    data = load_corpus()[split]
    return data if limit is None else data.select(range(min(limit, len(data))))


def perplexity(model, tokenizer, data, *, seq_len: int = 128, limit: int | None = None) -> float:
    """Perplexity on ``data`` (a text data set, e.g. ``eval_texts()``), with the kit's own evaluate_loss."""
    from ...training import evaluate_loss

    if data is None or len(data) == 0:
        raise LabkitError("perplexity needs at least one text: pass eval_texts() or a data set with a 'text' column.")
    return evaluate_loss(model, tokenizer, data, seq_len=seq_len, limit=limit, objective="causal_lm")[
        "eval_perplexity"]


def model_bits(model, bits: int, scheme: str, group, layers=None) -> tuple[float, float]:
    """(predicted, measured) bits per weight over the chosen Linear layers, weighted by their sizes."""
    mods = linear_layers(model, layers)
    n = sum(m.weight.numel() for m in mods.values())
    pred = sum(predicted_bits(bits, scheme, group, tuple(m.weight.shape)) * m.weight.numel() for m in mods.values())
    meas = sum(measured_bits(m.weight.data, bits, scheme, group) * m.weight.numel() for m in mods.values())
    return pred / n, meas / n


def sweep(model, tokenizer, data, *, bits=(8, 4, 3, 2), schemes=SCHEMES, groups=("tensor", "channel", 64),
          layers=None, measure_on=None, seq_len: int = 128, progress: bool = True):
    """Perplexity and bits per weight (predicted and measured) for every bits x scheme x granularity. The bits
    are averaged over the Linear layers of the decoder layers ``measure_on`` (default: those quantized)."""
    import itertools

    import pandas as pd
    from tqdm.auto import tqdm

    base = perplexity(model, tokenizer, data, seq_len=seq_len)
    rows = [{"bits": 32, "scheme": "float32", "group": "-", "perplexity": base, "predicted_bits": 32.0,
             "measured_bits": 32.0}]
    grid = list(itertools.product(bits, schemes, groups))
    for b, scheme, group in tqdm(grid, desc="RTN sweep", disable=not progress):
        pred, meas = model_bits(model, b, scheme, group, layers if measure_on is None else measure_on)
        with fake_quantized(model, b, scheme, group, layers):
            ppl = perplexity(model, tokenizer, data, seq_len=seq_len)
        rows.append({"bits": b, "scheme": scheme, "group": str(group), "perplexity": ppl, "predicted_bits": pred,
                     "measured_bits": meas})
    return pd.DataFrame(rows)


def pareto_figure(table, *, title: str = "Bits against quality"):
    """Perplexity against measured bits per weight, one trace per scheme x granularity, log y."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (scheme, group), part in table[table["scheme"] != "float32"].groupby(["scheme", "group"]):
        part = part.sort_values("measured_bits")
        fig.add_trace(go.Scatter(x=part["measured_bits"], y=part["perplexity"], mode="lines+markers",
                                 name=f"{scheme}, {group}", text=part["bits"].map(lambda b: f"{b} bits")))
    base = table[table["scheme"] == "float32"]["perplexity"]
    if len(base):
        fig.add_hline(y=float(base.iloc[0]), line_dash="dot", annotation_text="float32")
    fig.update_layout(title=title, xaxis_title="bits per weight (measured)", yaxis_title="perplexity (log)",
                      yaxis_type="log", height=420)
    return fig
