"""Scaling curves (peak memory and step time against batch size and sequence length, measured and predicted), the
activation slope against Korthikanti et al. 2022, and the model FLOPs utilisation (MFU) of measured steps."""

from __future__ import annotations

import time

from ...core import LabkitError
from ...meters import DEFAULT_MFU, training_flops
from ...units import GIB
from .ladder import LR, StepSettings, make_optimizer, predict_step_gib, prepare, train_step
from .profile import profile_step

VARIES = ("batch_size", "seq_len")


def _batch(vocab_size: int, batch_size: int, seq_len: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
    return {"input_ids": ids, "labels": ids.clone()}


def measure_point(base_model, settings: StepSettings, batch_size: int, seq_len: int) -> dict:
    """One warm-up step, one timed step and one profiled step at this size: the live peak and where it goes."""
    batch = _batch(base_model.config.vocab_size, batch_size, seq_len)
    runner, params = prepare(base_model, settings)
    opt = make_optimizer(params, settings.optimizer, LR[settings.method])
    train_step(runner, params, opt, batch, settings)
    start = time.perf_counter()
    train_step(runner, params, opt, batch, settings)
    step_time_s = time.perf_counter() - start
    prof = profile_step(lambda: train_step(runner, params, opt, batch, settings))
    parts = prof.by_component()
    return {"batch_size": batch_size, "seq_len": seq_len, "tokens": batch_size * seq_len,
            "attention": settings.attention, "method": settings.method, "step_time_s": step_time_s,
            "live_peak_gib": prof.live_peak_bytes / GIB, "weights_gib": parts["weights"] / GIB,
            "activations_gib": parts["activations"] / GIB,
            "predicted_gib": predict_step_gib(base_model.config, settings, batch_size, seq_len)}


def sweep(base_model, vary: str, values, *, batch_size: int = 1, seq_len: int = 128,
          attentions=("sdpa",), method: str = "lora", progress: bool = True):
    """Measured and predicted peak memory and step time over ``values`` of ``vary`` ("batch_size" or "seq_len")."""
    import pandas as pd

    if vary not in VARIES:
        raise LabkitError(f"Unknown setting to vary {vary!r}: use 'batch_size' or 'seq_len'.")
    values = list(values)
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise LabkitError(f"values must be positive whole numbers, got {values!r}.")
    limit = getattr(base_model.config, "max_position_embeddings", None)
    if vary == "seq_len" and limit and max(values) > limit:
        raise LabkitError(f"seq_len {max(values)} is longer than the model's {limit} positions: use shorter values.")
    points = [(a, v) for a in attentions for v in values]
    if progress:
        from tqdm.auto import tqdm

        points = tqdm(points, desc=f"sweep {vary}")
    rows = []
    for attention, value in points:
        settings = StepSettings(attention=attention, method=method)
        size = {"batch_size": batch_size, "seq_len": seq_len, vary: value}
        rows.append(measure_point(base_model, settings, size["batch_size"], size["seq_len"]))
    return pd.DataFrame(rows)


def crossover_tokens(table):
    """The fewest tokens per step where measured activations exceed the weights, or None if they never do."""
    over = table[table["activations_gib"] > table["weights_gib"]]
    return None if over.empty else int(over["tokens"].min())


def activation_slope(table) -> float:
    """Least-squares bytes of activations per extra token (slope of activations against tokens)."""
    import numpy as np

    if len(table) < 2 or table["tokens"].nunique() < 2:
        raise LabkitError("A slope needs measurements at two or more different sizes: sweep more values.")
    return float(np.polyfit(table["tokens"], table["activations_gib"] * GIB, 1)[0])


def korthikanti_bytes_per_token(config, seq_len: int, *, bytes_per_value: int = 4, attention_scores: bool = False):
    """Korthikanti et al. 2022 (section 4.1): activations per token of all layers, s·b·h·(34 + 5·a·s/h) bytes per
    layer in 16-bit, rescaled to ``bytes_per_value`` (fp32: x2); the 5·a·s/h term only for unfused attention."""
    h, a = config.hidden_size, config.num_attention_heads
    per_layer = h * (34 + (5 * a * seq_len / h if attention_scores else 0)) * bytes_per_value / 2
    return per_layer * config.num_hidden_layers


def predicted_slope(base_model, *, method: str = "lora", seq_len: int = 128) -> float:
    """predict_memory's activation bytes per token for this model and method (SDPA attention)."""
    from ...meters import predict_memory
    from .ladder import LORA_RANK

    kw = {"rank": LORA_RANK, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} if method == "lora" else {}
    one = predict_memory(base_model.config, method, batch_size=1, seq_len=seq_len, **kw)
    two = predict_memory(base_model.config, method, batch_size=2, seq_len=seq_len, **kw)
    return (two.activations - one.activations) / seq_len


def mfu_table(ladder, n_params: int, trainable: dict, peaks_tflops: dict):
    """Achieved TFLOP/s (6·N·D, or 4·N·D + 2·N_trained·D for frozen weights) and MFU for each rung that ran.

    ``trainable`` maps method -> trainable parameters; ``peaks_tflops`` maps "fp32"/"bf16" -> measured peak.
    """
    import pandas as pd

    rows = []
    for lever, row in ladder[ladder["ran"]].iterrows():
        method = "lora" if lever == "lora" else "full"
        precision = "bf16" if lever == "bf16" else "fp32"
        flops_per_token = training_flops(n_params, 1, trainable_params=trainable[method])
        achieved = row["tokens_per_s"] * flops_per_token / 1e12
        rows.append({"lever": lever, "tokens_per_s": row["tokens_per_s"], "achieved_tflops": achieved,
                     "peak_tflops": peaks_tflops[precision], "against": precision,
                     "mfu": achieved / peaks_tflops[precision]})
    frame = pd.DataFrame(rows).set_index("lever")
    frame["gpu_assumed_mfu"] = DEFAULT_MFU
    return frame


def plot_scaling(table, vary: str):
    """Measured (markers) and predicted (lines) live peak and step time against ``vary``, one colour per attention."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("peak live memory (GiB)", "step time (s)"))
    colours = {"sdpa": "#2a9d8f", "eager": "#e76f51"}
    for attention, part in table.groupby("attention"):
        c = colours.get(attention, "#264653")
        fig.add_trace(go.Scatter(x=part[vary], y=part["live_peak_gib"], mode="markers", name=f"{attention} measured",
                                 marker={"color": c, "size": 9}), 1, 1)
        fig.add_trace(go.Scatter(x=part[vary], y=part["predicted_gib"], mode="lines", name=f"{attention} predicted",
                                 line={"color": c, "dash": "dash"}), 1, 1)
        fig.add_trace(go.Scatter(x=part[vary], y=part["activations_gib"], mode="lines+markers",
                                 name=f"{attention} activations", line={"color": c, "dash": "dot"}), 1, 1)
        fig.add_trace(go.Scatter(x=part[vary], y=part["step_time_s"], mode="lines+markers", name=f"{attention} time",
                                 line={"color": c}), 1, 2)
    weights = table["weights_gib"].iloc[0]
    fig.add_hline(y=weights, line_dash="dot", annotation_text="weights", row=1, col=1)
    fig.update_xaxes(title_text=vary)
    fig.update_layout(height=380)
    return fig

