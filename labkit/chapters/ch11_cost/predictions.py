"""How good are the kit's predictions? The run ledger read back: predicted vs measured peak memory and time, MFU.

>>> runs = ledger_table(peak_tflops=0.4)  # doctest: +SKIP
"""

from __future__ import annotations

from ... import ledger
from ...core import LabkitError, pick
from ...meters import DEFAULT_MFU, get_hardware

# Model FLOPs utilisation of published large training runs (Chowdhery et al. 2022, "PaLM", Table 3): the evidence
# behind the kit's assumed DEFAULT_MFU. Fine-tuning small models with short sequences usually reaches less.
PUBLISHED_MFU = {
    "GPT-3 175B (V100)": 0.213,
    "Gopher 280B (TPU v3)": 0.325,
    "Megatron-Turing NLG 530B (A100)": 0.297,
    "PaLM 540B (TPU v4)": 0.462,
}
MFU_SOURCE = "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways, Table 3 (arXiv:2204.02311)"

TOP_UP = (("lora", {"rank": 8}), ("full", {}), ("ia3", {}), ("prompt", {}))  # methods run when the ledger has few


def top_up(model_name: str, data, *, min_runs: int = 4, steps: int | None = None, batch_sizes=(2, 4)) -> int:
    """Train short runs of ``model_name`` (each one a ledger row) until the ledger holds ``min_runs`` runs with a
    memory prediction (at most one per method and batch size); return how many were added. A fresh machine has an
    empty ledger; after labs 1.1, 1.2 and 2 it holds dozens."""
    from ...methods import apply_method
    from ...models import load_model
    from ...training import train

    if ledger.ledger_path() is None:
        raise LabkitError("The ledger is off (LABKIT_LEDGER=0): unset LABKIT_LEDGER so runs are recorded.")
    have = int(ledger.read_runs()["predicted_peak_gib"].notna().sum())  # runs the memory prediction covers
    added = 0
    steps = steps if steps is not None else pick(2, 4)
    for batch_size in batch_sizes:
        for method, settings in TOP_UP:
            if have + added >= min_runs:
                return added
            model, tokenizer = load_model(model_name)
            model = apply_method(model, method, **settings)
            train(model, tokenizer, data, num_steps=steps, batch_size=batch_size, seq_len=96, progress=False,
                  live_plot=False, label=f"lab11 {method} b{batch_size}")
            added += 1
    return added


def ledger_table(runs=None, *, peak_tflops: float, mfu: float = DEFAULT_MFU):
    """The ledger's runs with their errors: memory (predicted / measured - 1), time as the hardware table's CPU
    row predicts it at ``mfu`` (predicted / measured - 1), and MFU against this machine's measured ``peak_tflops``."""
    if peak_tflops <= 0:
        raise LabkitError(f"peak_tflops must be positive (measure it: lk.meters.measure_matmul_tflops()), got "
                          f"{peak_tflops!r}.")
    runs = ledger.read_runs() if runs is None else runs.copy()
    runs = runs[runs["time_s"].notna() & (runs["time_s"] > 0) & runs["flops"].notna()].copy()
    if runs.empty:
        raise LabkitError("The ledger holds no finished runs yet: train something (or call top_up) first.")
    cpu_peak = get_hardware("cpu").tflops("fp32") * 1e12
    runs["memory_error"] = runs["predicted_peak_gib"] / runs["measured_peak_gib"] - 1
    runs["predicted_time_s"] = runs["flops"] / (cpu_peak * mfu)
    runs["time_error"] = runs["predicted_time_s"] / runs["time_s"] - 1
    runs["achieved_tflops"] = runs["flops"] / runs["time_s"] / 1e12
    runs["mfu"] = runs["achieved_tflops"] / peak_tflops
    keep = ["id", "label", "model", "method", "device", "tokens", "predicted_peak_gib", "measured_peak_gib",
            "memory_error", "predicted_time_s", "time_s", "time_error", "achieved_tflops", "mfu"]
    return runs[keep].reset_index(drop=True)


def error_summary(table):
    """Median and spread of the errors per method; a negative median memory error means the kit is too optimistic."""
    grouped = table.groupby("method")
    out = grouped.agg(runs=("id", "count"), memory_error_median=("memory_error", "median"),
                      memory_error_max=("memory_error", lambda e: e.abs().max()),
                      time_error_median=("time_error", "median"), mfu_median=("mfu", "median"))
    return out.sort_values("memory_error_median")


def plot_predictions(table):
    """Predicted against measured peak memory and time, one point per run, coloured by method, with y = x."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("peak memory (GiB)", "training time (s)"))
    for method, part in table.groupby("method"):
        for col, (x, y) in enumerate((("measured_peak_gib", "predicted_peak_gib"), ("time_s", "predicted_time_s")), 1):
            fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="markers", name=method, legendgroup=method,
                                     showlegend=col == 1, text=part["label"]), row=1, col=col)
    for col, (x, y) in enumerate((("measured_peak_gib", "predicted_peak_gib"), ("time_s", "predicted_time_s")), 1):
        values = table[[x, y]].stack().dropna()
        if len(values):
            low, high = values.min(), values.max()
            fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dot", "color": "gray"},
                                     name="prediction = measurement", showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="measured", row=1, col=col)
        fig.update_yaxes(title_text="predicted", row=1, col=col)
    fig.update_layout(height=380, title="The kit's predictions against the ledger's measurements")
    return fig


def plot_errors(table):
    """The distribution of the memory and time errors per method, as box plots (0 = the prediction was right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("memory: predicted / measured - 1",
                                                        "time: predicted / measured - 1"))
    for col, column in enumerate(("memory_error", "time_error"), 1):
        for method, part in table.groupby("method"):
            fig.add_trace(go.Box(y=part[column], name=method, boxpoints="all", showlegend=False), row=1, col=col)
        fig.add_hline(y=0, line={"dash": "dot", "color": "gray"}, row=1, col=col)
    fig.update_layout(height=360, title="Prediction errors per method (below 0: the kit was too optimistic)")
    return fig
