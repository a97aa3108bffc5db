"""The futures panel: experts and top-k (active vs total parameters and FLOPs per token, live), RAFT's P and
distractors (accuracy from the runs the lab cached), or a merge method and its weights (per-task scores, live).

>>> panel = futures_panel(dense_config, raft_results=table, merge_model=model, tokenizer=tok, tasks=tasks)  # doctest: +SKIP
>>> panel.part.value = "moe"; panel.experts.value = 8; panel.top_k.value = 2  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math

from ...core import LabkitError
from .moe import mixtral_config_from, moe_params, predicted_flops_per_token


def moe_figure(dense_config, num_experts: int, top_k: int):
    """Bars: parameters (total, active, dense) and forward FLOPs per token (MoE vs dense), in millions."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cfg = mixtral_config_from(dense_config, num_experts, top_k)
    p = moe_params(cfg)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("parameters (M)", "forward FLOPs per token (M)"))
    fig.add_trace(go.Bar(x=["total", "active", "dense"], y=[p["total"] / 1e6, p["active"] / 1e6, p["dense"] / 1e6],
                         marker_color=["#264653", "#2a9d8f", "#8d99ae"], showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=["MoE", "dense"], y=[predicted_flops_per_token(cfg) / 1e6,
                                                predicted_flops_per_token(dense_config) / 1e6],
                         marker_color=["#2a9d8f", "#8d99ae"], showlegend=False), row=1, col=2)
    fig.update_layout(height=330, title=f"{num_experts} experts, top-{top_k}: {p['active'] / p['total']:.0%} of the "
                                        f"parameters active per token")
    return fig


def raft_figure(raft_results, p_oracle: float, train_distractors: int):
    """Accuracy against test-time distractors for the cached run with this P and number of training distractors."""
    import plotly.graph_objects as go

    part = raft_results[(raft_results["p_oracle"] == p_oracle)
                        & (raft_results["train_distractors"] == train_distractors)]
    part = part[part["setting"] == "oracle + distractors"]
    if part.empty:
        raise LabkitError(f"No cached RAFT run with P={p_oracle} and {train_distractors} training distractors: pick "
                          "a combination the lab ran.")
    fig = go.Figure(go.Scatter(x=part["distractors"], y=part["accuracy"], mode="lines+markers", name="RAFT"))
    fig.update_layout(height=330, xaxis_title="distractors at test time", yaxis_title="accuracy",
                      yaxis_range=[0, 1.05], title=f"RAFT, P = {p_oracle:.0%}, {train_distractors} distractors in "
                                                   "training")
    return fig


class FuturesPanel:
    """Three parts behind one figure; every control can also be set from code."""

    def __init__(self, dense_config, *, raft_results=None, merge_model=None, tokenizer=None, tasks=None,
                 seq_len: int = 64):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.dense_config, self.raft_results, self.seq_len = dense_config, raft_results, seq_len
        self.model, self.tokenizer, self.tasks = merge_model, tokenizer, tasks
        parts = ["moe"] + (["raft"] if raft_results is not None else []) + (["merge"] if merge_model else [])
        self.part = w.ToggleButtons(options=parts, value="moe", description="part")
        self.experts = w.IntSlider(value=8, min=1, max=64, description="experts")
        self.top_k = w.IntSlider(value=2, min=1, max=8, description="top-k")
        combos = [] if raft_results is None else sorted(
            {(float(p), int(d)) for p, d in zip(raft_results["p_oracle"], raft_results["train_distractors"])
             if not (math.isnan(p) or math.isnan(d))})  # runs without P (closed book, the base model) are not RAFT runs
        self.raft_run = w.Dropdown(options=[(f"P={p:.0%}, {d} distractors", (p, d)) for p, d in combos],
                                   description="RAFT run")
        self.method = w.Dropdown(options=["linear", "ties", "dare"], value="linear", description="merge")
        names = list(tasks.names) if tasks is not None else []
        self.weights = [w.FloatSlider(value=round(1 / max(len(names), 1), 2), min=0, max=1, step=0.05,
                                      description=n[:12]) for n in names]
        self.message, self.scores = w.HTML(), {}
        self.figure = go.FigureWidget()
        for control in (self.part, self.experts, self.top_k, self.raft_run, self.method, *self.weights):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([self.part, w.HBox([self.experts, self.top_k]), self.raft_run,
                              w.HBox([self.method, *self.weights]), self.message, self.figure])
        self.update()

    def update(self) -> None:
        """Redraw for the chosen part and controls; a bad choice shows its message instead of a figure."""
        from ...plots.live import refresh_figure

        try:
            if self.part.value == "moe":
                fig = moe_figure(self.dense_config, self.experts.value, self.top_k.value)
            elif self.part.value == "raft":
                fig = raft_figure(self.raft_results, *self.raft_run.value)
            else:
                fig = self.merge_figure()
        except LabkitError as err:
            self.message.value = f"<b>{html.escape(str(err))}</b>"
            return
        self.message.value = ""
        refresh_figure(self.figure, fig)

    def merge_figure(self):
        """Merge the task adapters with the chosen method and weights, score every task, draw the scores."""
        import plotly.graph_objects as go
        import torch

        from .continual import score_tasks
        from .merging import merge

        weights = [s.value for s in self.weights]
        torch.manual_seed(0)
        name = merge(self.model, self.tasks.names, weights, method=self.method.value, name="panel_merge")
        self.scores = score_tasks(self.model, self.tokenizer, self.tasks, seq_len=self.seq_len)
        fig = go.Figure(go.Bar(x=list(self.scores), y=list(self.scores.values()), marker_color="#2a9d8f"))
        fig.update_layout(height=330, yaxis_title="answer probability exp(-loss)", yaxis_range=[0, 1],
                          title=f"{self.method.value} merge, weights {', '.join(f'{x:g}' for x in weights)}")
        self.model.set_adapter(self.tasks.names[0])
        self.model.delete_adapter(name)
        return fig

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def futures_panel(dense_config, **kwargs) -> FuturesPanel:
    """The panel; ``raft_results`` (a table with p_oracle and train_distractors columns) and ``merge_model`` (a peft
    model holding one adapter per task, with ``tokenizer`` and ``tasks``) add their parts."""
    if not hasattr(dense_config, "intermediate_size"):
        raise LabkitError("Pass the dense model's config (model.config of lk.load_model('smollm2-135m')).")
    return FuturesPanel(dense_config, **kwargs)
