"""The budget panel: model, method, tokens, epochs, sweeps, hardware, spot share and serving volume; the live total
as a stacked bar per part, with the ledger's measured time error applied as an uncertainty band.

>>> panel = budget_panel(band=(0.7, 1.6))  # doctest: +SKIP
>>> panel.method.value = "qlora"; panel.budget.total_usd  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import html

from ...core import LabkitError
from ...meters import HARDWARE
from .budget import Project, plan_project

MODELS = ("smollm2-135m", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.3")
COLOURS = {"data preparation": "#8d99ae", "sweeps": "#e9c46a", "final run": "#2a9d8f", "evaluation": "#264653",
           "serving": "#e76f51"}


def time_error_band(table, *, low_q: float = 0.1, high_q: float = 0.9) -> tuple[float, float]:
    """(low, high) factors measured/predicted time across the ledger's runs: what the prediction may be off by."""
    if table is None or len(table) == 0:
        raise LabkitError("No ledger runs to take the error from: pass lab 11's ledger table (ledger_table()).")
    ratio = table["time_s"] / table["predicted_time_s"]
    return float(ratio.quantile(low_q)), float(ratio.quantile(high_q))


def budget_figure(budget, band: tuple[float, float]):
    """One stacked bar of the parts, and the band (compute parts scaled by the ledger's error) as a whisker."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for part, usd in budget.parts_usd.items():
        fig.add_trace(go.Bar(x=[usd], y=["project"], orientation="h", name=part, marker_color=COLOURS.get(part),
                             hovertemplate=f"{part}: $%{{x:,.2f}}<extra></extra>"))
    compute = sum(v for k, v in budget.parts_usd.items() if k != "data preparation")
    fixed = budget.parts_usd.get("data preparation", 0.0)
    low, high = fixed + compute * band[0], fixed + compute * band[1]
    fig.add_trace(go.Scatter(x=[low, high], y=["band", "band"], mode="lines+markers", name="measured error band",
                             line={"color": "black"}, marker={"symbol": "line-ns-open", "size": 14}))
    fig.update_layout(barmode="stack", height=260, margin={"l": 10}, xaxis_title="dollars",
                      title=f"${budget.total_usd:,.0f} (${low:,.0f} to ${high:,.0f} with the ledger's error)")
    return fig


class BudgetPanel:
    """Controls for the project; the stacked bar and the breakdown follow each change."""

    def __init__(self, band: tuple[float, float] = (1.0, 1.0), project: Project | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go

        if not 0 < band[0] <= band[1]:
            raise LabkitError(f"band is (low, high) factors with 0 < low <= high, got {band!r}.")
        self.band, p = band, project or Project()
        gpus = [h for h in HARDWARE if h != "cpu"]
        self.model = w.Dropdown(options=MODELS if p.model in MODELS else (p.model, *MODELS), value=p.model,
                                description="model")
        self.method = w.ToggleButtons(options=["full", "lora", "qlora"], value=p.method, description="method")
        self.hardware = w.Dropdown(options=gpus, value=p.hardware, description="train on")
        self.tokens = w.FloatLogSlider(value=p.train_tokens, min=5, max=10, description="tokens")
        self.epochs = w.IntSlider(value=int(p.epochs), min=1, max=10, description="epochs")
        self.sweeps = w.IntSlider(value=p.sweep_runs, min=0, max=50, description="sweep runs")
        self.seeds = w.IntSlider(value=p.seeds, min=1, max=5, description="seeds")
        self.spot = w.FloatSlider(value=p.spot_share, min=0, max=1, step=0.05, description="spot share")
        self.requests = w.FloatLogSlider(value=max(p.requests_per_day, 1), min=0, max=7, description="requests/day")
        self.project, self.message = p, w.HTML()
        self.budget = plan_project(p)
        self.figure = go.FigureWidget(budget_figure(self.budget, band))
        controls = (self.model, self.method, self.hardware, self.tokens, self.epochs, self.sweeps, self.seeds,
                    self.spot, self.requests)
        for control in controls:
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.model, self.hardware]), self.method,
                              w.HBox([self.tokens, self.epochs, self.sweeps]), w.HBox([self.seeds, self.spot,
                                                                                       self.requests]),
                              self.message, self.figure])
        self.update()

    def update(self) -> None:
        """Re-plan the project for the current controls and redraw."""
        from ...plots.live import refresh_figure

        self.project = dataclasses.replace(
            self.project, model=self.model.value, method=self.method.value, hardware=self.hardware.value,
            train_tokens=self.tokens.value, epochs=self.epochs.value, sweep_runs=self.sweeps.value,
            seeds=self.seeds.value, spot_share=self.spot.value, requests_per_day=self.requests.value)
        self.budget = plan_project(self.project)
        refresh_figure(self.figure, budget_figure(self.budget, self.band))
        fit = ("fits" if self.budget.fits else "does NOT fit") + f" (~{self.budget.need_gib:.1f} GiB predicted)"
        self.message.value = f"<b>{html.escape(str(self.budget))}</b><br>Training {fit} on one {self.hardware.value}."

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def budget_panel(band: tuple[float, float] = (1.0, 1.0), project: Project | None = None) -> BudgetPanel:
    """The panel; ``band`` from time_error_band(ledger_table(...)). Drive it from code by setting control values."""
    return BudgetPanel(band, project)
