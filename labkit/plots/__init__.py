"""Figures for the labs: each function takes numbers or DataFrames and returns a plotly Figure (never shows it).

>>> from labkit import meters, plots
>>> fig = plots.memory_breakdown(meters.predict_memory("tiny-llama", "lora"))  # doctest: +SKIP
"""

from __future__ import annotations

import sys

from ..core import LabkitError
from ..units import GIB, MIB

COMPONENTS = ("weights", "gradients", "optimizer", "activations", "overhead")
COLORS = {"weights": "#4C78A8", "gradients": "#F58518", "optimizer": "#E45756", "activations": "#72B7B2",
          "overhead": "#B8B8B8", "measured": "#333333"}
TEMPLATE = "plotly_white"


def use_best_renderer(colab: bool = False) -> str | None:
    """Pick the plotly renderer for this front end ('colab', or one that works offline in Jupyter); never fails."""
    try:
        import plotly.io as pio

        if colab:
            pio.renderers.default = "colab"
            _enable_colab_widgets()
        elif _in_jupyter():
            # JupyterLab draws the plotly mimetype itself; "notebook" embeds plotly.js once, so the saved
            # notebook also renders in classic Jupyter and offline (no CDN).
            pio.renderers.default = "plotly_mimetype+notebook"
        return pio.renderers.default
    except Exception:  # noqa: BLE001  (a renderer problem must never stop a lab)
        return None


def _enable_colab_widgets() -> None:
    """Colab draws only its built-in widgets unless third-party ones (plotly's FigureWidget) are switched on."""
    try:
        from google.colab import output
    except ImportError:
        return
    output.enable_custom_widget_manager()


def _in_jupyter() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _figure(**layout):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, margin={"l": 60, "r": 20, "t": 60, "b": 50}, **layout)
    return fig


def _parts(estimate) -> dict:
    if hasattr(estimate, "as_frame"):
        return {c: getattr(estimate, c) for c in COMPONENTS}
    if isinstance(estimate, dict) and set(estimate) <= set(COMPONENTS):
        return {c: estimate.get(c, 0) for c in COMPONENTS}
    raise LabkitError("predicted must be a MemoryEstimate (lk.meters.predict_memory), a dict of them, or a dict "
                      f"with keys from {COMPONENTS} in bytes.")


def _bytes(measured) -> float:
    value = getattr(measured, "peak_bytes", measured)
    if not isinstance(value, (int, float)) or value < 0:
        raise LabkitError(f"measured must be bytes (a number >= 0) or a PeakMemory, got {measured!r}.")
    return float(value)


def memory_breakdown(predicted, measured=None, *, title: str = "Peak training memory: predicted vs measured"):
    """Stacked bars of predicted components, next to a bar of the measured peak when given.

    ``predicted``: a MemoryEstimate or {label: MemoryEstimate}; ``measured``: bytes, a PeakMemory, or
    {label: bytes or PeakMemory} with the same labels.
    """
    runs = predicted if isinstance(predicted, dict) and not set(predicted) <= set(COMPONENTS) else {"": predicted}
    parts = {label: _parts(est) for label, est in runs.items()}
    if measured is not None and not isinstance(measured, dict):
        measured = {next(iter(runs)): measured}
    measured = {label: _bytes(v) for label, v in (measured or {}).items()}
    unknown = set(measured) - set(runs)
    if unknown:
        raise LabkitError(f"measured has labels {sorted(unknown)} that predicted lacks: use the same labels.")
    biggest = max([sum(p.values()) for p in parts.values()] + list(measured.values()) + [1])
    unit, scale = ("GiB", GIB) if biggest >= GIB / 2 else ("MiB", MIB)
    fig = _figure(title=title, barmode="stack", yaxis_title=f"memory ({unit})", legend_title="component")
    x_pred = [f"{label} predicted".strip() for label in parts]
    for comp in COMPONENTS:
        fig.add_bar(name=comp, x=x_pred, y=[p[comp] / scale for p in parts.values()], marker_color=COLORS[comp],
                    hovertemplate=f"{comp}: %{{y:.3g}} {unit}<extra></extra>")
    if measured:
        fig.add_bar(name="measured peak", x=[f"{label} measured".strip() for label in measured],
                    y=[v / scale for v in measured.values()], marker_color=COLORS["measured"],
                    hovertemplate=f"measured: %{{y:.3g}} {unit}<extra></extra>")
    return fig


def memory_sweep(df, x: str = "rank", *, title: str | None = None):
    """Memory against one setting: stacked components, or one total line per ``method`` when several."""
    if x not in df.columns:
        raise LabkitError(f"Column {x!r} is not in the table: it has {list(df.columns)}.")
    fig = _figure(title=title or f"Predicted peak memory vs {x}", xaxis_title=x, yaxis_title="memory (GiB)")
    if "method" in df.columns and df["method"].nunique() > 1:
        if "total_gib" not in df.columns:
            raise LabkitError("A table with several methods needs a 'total_gib' column.")
        for method, part in df.groupby("method", sort=False):
            fig.add_scatter(x=part[x], y=part["total_gib"], mode="lines+markers", name=str(method))
        return fig
    cols = [c for c in COMPONENTS if f"{c}_gib" in df.columns]
    if not cols:
        if "total_gib" not in df.columns:
            raise LabkitError("The table needs component columns like 'weights_gib' or a 'total_gib' column.")
        fig.add_scatter(x=df[x], y=df["total_gib"], mode="lines+markers", name="total")
        return fig
    for comp in cols:
        fig.add_scatter(x=df[x], y=df[f"{comp}_gib"], mode="lines", stackgroup="memory", name=comp,
                        line_color=COLORS[comp])
    return fig


def cost_comparison(df, *, title: str = "Cost to fine-tune, by method and hardware"):
    """Grouped bars of cost_usd per hardware, one colour per method; setups that do not fit are hatched."""
    needed = {"method", "hardware", "cost_usd"}
    if not needed <= set(df.columns):
        raise LabkitError(f"The cost table needs columns {sorted(needed)} (lk.meters.compare_costs makes one).")
    fig = _figure(title=title, barmode="group", xaxis_title="hardware", yaxis_title="cost (USD)",
                  legend_title="method")
    for method, part in df.groupby("method", sort=False):
        fits = part["fits"] if "fits" in part.columns else [True] * len(part)
        mem = part["mem_gib"] if "mem_gib" in part.columns else [float("nan")] * len(part)
        fig.add_bar(name=str(method), x=part["hardware"], y=part["cost_usd"],
                    marker_pattern_shape=["" if f else "x" for f in fits],
                    customdata=[[m, "fits" if f else "does not fit"] for m, f in zip(mem, fits)],
                    hovertemplate="$%{y:.3g}, ~%{customdata[0]:.1f} GiB, %{customdata[1]}<extra>" + str(method)
                                  + "</extra>")
    fig.add_annotation(text="hatched: does not fit in that device's memory", showarrow=False, xref="paper",
                       yref="paper", x=0, y=1.06, xanchor="left", font_size=11)
    return fig


def loss_curves(histories: dict, *, x: str = "step", title: str = "Training loss"):
    """Training loss per run (solid) and evaluation loss where present (dashed, markers)."""
    if not isinstance(histories, dict) or not histories:
        raise LabkitError("histories must be a non-empty dict {run name: history DataFrame}.")
    fig = _figure(title=title, xaxis_title=x, yaxis_title="loss")
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]
    for i, (name, hist) in enumerate(histories.items()):
        missing = {x, "loss"} - set(hist.columns)
        if missing:
            raise LabkitError(f"History {name!r} lacks columns {sorted(missing)}: it needs '{x}' and 'loss'.")
        color = palette[i % len(palette)]
        fig.add_scatter(x=hist[x], y=hist["loss"], mode="lines", name=str(name), line_color=color)
        if "eval_loss" in hist.columns and hist["eval_loss"].notna().any():
            ev = hist[hist["eval_loss"].notna()]
            fig.add_scatter(x=ev[x], y=ev["eval_loss"], mode="lines+markers", name=f"{name} (eval)",
                            line={"color": color, "dash": "dash"})
    return fig


def param_breakdown(table, *, title: str = "Parameters by component"):
    """Horizontal bars of total and trainable parameters per component (log scale: trainable is tiny)."""
    if not {"total", "trainable"} <= set(table.columns):
        raise LabkitError("The table needs 'total' and 'trainable' columns (lk.meters.param_table makes one).")
    rows = table[table["total"] > 0]
    fig = _figure(title=title, barmode="overlay", xaxis_title="parameters (log scale)", xaxis_type="log")
    fig.add_bar(name="total", y=list(rows.index), x=rows["total"], orientation="h", marker_color="#C9D7E8",
                hovertemplate="%{y}: %{x:,} total<extra></extra>")
    trainable = rows["trainable"].where(rows["trainable"] > 0)
    fig.add_bar(name="trainable", y=list(rows.index), x=trainable, orientation="h", marker_color="#E45756",
                width=0.4, hovertemplate="%{y}: %{x:,} trainable<extra></extra>")
    return fig


def advice_figure(table):
    """Predicted memory of every candidate method against the GPU's capacity, the recommendation highlighted.

    ``table`` is an advice table (lab 01a's ``advisor.recommend(...).table``): need_gib, fits, chosen, capacity_gib.
    """
    import plotly.graph_objects as go

    colours = ["#2a9d8f" if chosen else ("#adb5bd" if fits else "#e76f51")
               for chosen, fits in zip(table["chosen"], table["fits"])]
    fig = go.Figure(go.Bar(x=list(table.index), y=list(table["need_gib"]), marker_color=colours, name="needs",
                           hovertemplate="%{x}: %{y:.2f} GiB<extra></extra>"))
    fig.add_hline(y=float(table["capacity_gib"].iloc[0]), line_dash="dash",
                  annotation_text=f"GPU memory {table['capacity_gib'].iloc[0]:g} GiB")
    fig.update_layout(title="Predicted training memory per method (green: recommended, red: does not fit)",
                      yaxis_title="GiB", template="plotly_white", height=360, showlegend=False)
    return fig


def ladder_figure(walk):
    """Bar chart of a ladder walk (lab 01c's ``ladder.walk_ladder``): accuracy per rung, coloured by verdict, with the target line."""
    import plotly.graph_objects as go

    colours = {"climb": "#c0c0c0", "stop here": "#2a9d8f", "not needed": "#e9c46a"}
    fig = go.Figure(go.Bar(x=list(walk["rung"]), y=list(walk["accuracy"]), name="accuracy",
                           marker_color=[colours[v] for v in walk["verdict"]],
                           text=[f"{a:.3f}<br>{v}" for a, v in zip(walk["accuracy"], walk["verdict"])],
                           textposition="outside",
                           customdata=list(zip(walk["trainable_params"], walk["train_time_s"])),
                           hovertemplate="%{x}: accuracy %{y:.3f}<br>%{customdata[0]:,} trainable<br>"
                                         "%{customdata[1]:.1f} s training<extra></extra>"))
    fig.add_hline(y=float(walk["target"].iloc[0]), line_dash="dash", annotation_text="target")
    fig.update_layout(title="The cheap-first ladder (measured)", yaxis_title="accuracy", yaxis_range=[0, 1.15],
                      xaxis_title="rung (cheapest first)", height=360, margin={"t": 50, "b": 40})
    return fig
