"""Figures of lab 03: numbers in (the tables the sweeps return), plotly figures out."""

from __future__ import annotations


def rank_figure(table):
    """Held-out loss and final training loss against rank, one line per scale rule (log-scale rank)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("held-out answer loss", "training loss at the last step"))
    for i, (rule, part) in enumerate(table.groupby("rule", sort=False)):
        part = part.sort_values("rank")
        for col, y in ((1, "eval_loss"), (2, "final_loss")):
            fig.add_scatter(x=part["rank"], y=part[y], mode="lines+markers", name=rule, legendgroup=rule,
                            showlegend=col == 1, row=1, col=col, marker_color=_color(i))
    fig.update_xaxes(type="log", title_text="rank r")
    fig.update_layout(height=360, title="LoRA: rank and scale")
    return fig


def placement_figure(table):
    """Held-out loss against trainable parameters, one point per placement."""
    import plotly.express as px

    fig = px.scatter(table, x="trainable", y="eval_loss", text="placement", title="Where to put LoRA (equal budget)",
                     labels={"trainable": "trainable parameters", "eval_loss": "held-out answer loss"})
    fig.update_traces(textposition="top center")
    return fig.update_layout(height=360)


def curves_figure(runs, target=None, title="Loss curves"):
    """Training loss per step of several runs (a dashed line at ``target``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, run in enumerate(runs):
        fig.add_scatter(x=run.history["step"], y=run.history["loss"], mode="lines", name=run.label,
                        line_color=_color(i))
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", annotation_text="target")
    return fig.update_layout(height=360, title=title, xaxis_title="step", yaxis_title="training loss")


def spectrum_figure(table, values, module: str):
    """Left: normalised singular values of one module's ΔW per run. Right: effective rank per layer per run."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"σ_i / σ_1 of ΔW, {module}", "effective rank (90% energy)"))
    for i, (run, per_module) in enumerate(values.items()):
        s = per_module[module]
        top = s[0] if s and s[0] > 0 else 1.0
        fig.add_scatter(x=list(range(1, len(s) + 1)), y=[v / top for v in s], mode="lines", name=run,
                        legendgroup=run, row=1, col=1, line_color=_color(i))
        part = table[table["run"] == run].groupby("layer")["effective_rank"].mean()
        fig.add_scatter(x=part.index, y=part.values, mode="lines+markers", name=run, legendgroup=run,
                        showlegend=False, row=1, col=2, line_color=_color(i))
    fig.update_xaxes(type="log", title_text="index i", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="layer", row=1, col=2)
    fig.update_yaxes(title_text="mean over the layer's modules", row=1, col=2)
    return fig.update_layout(height=380, title="What did the update learn?")


def pareto_figure(ours, reference=None):
    """Quality relative to full fine-tuning against relative parameters, memory and step time; peft's points too."""
    from plotly.subplots import make_subplots

    axes = (("rel_params", "trainable params / full"), ("rel_memory", "training memory / full"),
            ("rel_time", "time per step / full"))
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=[a[1] for a in axes])
    for col, (x, _) in enumerate(axes, start=1):
        fig.add_scatter(x=ours[x], y=ours["rel_quality"], mode="markers+text", text=ours["method"],
                        textposition="top center", name="this lab (SmolLM2-135M, CPU)", legendgroup="ours",
                        showlegend=col == 1, marker={"size": 9, "color": _color(0)}, row=1, col=col)
        if reference is not None:
            fig.add_scatter(x=reference[x], y=reference["rel_quality"], mode="markers+text",
                            text=reference["method"], textposition="bottom center",
                            name="peft method_comparison (Llama-3.2-3B, L40S)", legendgroup="ref",
                            showlegend=col == 1, marker={"size": 9, "symbol": "diamond", "color": _color(1)},
                            row=1, col=col)
    fig.update_xaxes(type="log")
    fig.update_yaxes(title_text="quality / full fine-tuning", row=1, col=1)
    return fig.update_layout(height=420, title="The family portrait (relative to full fine-tuning)")


def _color(i: int) -> str:
    import plotly.express as px

    palette = px.colors.qualitative.Plotly
    return palette[i % len(palette)]
