"""The formulation panel: pick a formulation, a loss and a metric; the stored predictions of every run so far are
re-scored and ranked, next to their ranking by accuracy.

>>> panel = formulation_panel(runs, labels=INTENT_LABELS)  # doctest: +SKIP
>>> panel.metric.value = "exact_match"  # the chart, the table and the message follow  # doctest: +SKIP
"""

from __future__ import annotations

import html

from ...core import LabkitError
from .formulations import FORMULATIONS
from .scoring import ABOUT, LABEL_METRICS, higher_is_better, score

PANEL_METRICS = ("accuracy", "macro_f1", "exact_match", "contains", "token_f1")  # labels: first two; answers: rest
ALL = "all"


def rank_runs(runs, metric: str, *, labels, formulation: str = ALL, loss: str = ALL):
    """The runs that match ``formulation`` and ``loss``, scored by ``metric`` on their stored predictions (label
    metrics) or answers (text metrics), best first, with their rank by accuracy alongside. A DataFrame."""
    import pandas as pd

    if metric not in PANEL_METRICS:
        raise LabkitError(f"Unknown panel metric {metric!r}: use one of {', '.join(PANEL_METRICS)}.")
    if formulation != ALL and formulation not in FORMULATIONS:
        raise LabkitError(f"Unknown formulation {formulation!r}: use 'all' or one of {', '.join(FORMULATIONS)}.")
    if not runs:
        raise LabkitError("No runs to rank yet: pass the FormulationRun objects measured so far.")
    rows = []
    for run in runs:
        row = run.row
        if formulation != ALL and row["formulation"] != formulation or loss != ALL and row["loss"] != loss:
            continue
        preds = run.predictions if metric in LABEL_METRICS else run.answers
        rows.append({"run": row["label"], "formulation": row["formulation"], "loss": row["loss"],
                     "score": score(metric, preds, run.references, labels=labels),
                     "accuracy": score("accuracy", run.predictions, run.references, labels=labels)})
    table = pd.DataFrame(rows, columns=["run", "formulation", "loss", "score", "accuracy"])
    if table.empty:
        return table.assign(rank=[], accuracy_rank=[], moved=[])
    table["rank"] = table["score"].rank(ascending=not higher_is_better(metric), method="min").astype(int)
    table["accuracy_rank"] = table["accuracy"].rank(ascending=False, method="min").astype(int)
    table["moved"] = table["accuracy_rank"] - table["rank"]  # > 0: this metric ranks the run higher than accuracy
    return table.sort_values(["rank", "run"]).reset_index(drop=True)


def ranking_figure(table, metric: str):
    """A horizontal bar per run, best on top."""
    import plotly.graph_objects as go

    shown = table.iloc[::-1]
    fig = go.Figure(go.Bar(x=shown["score"], y=shown["run"], orientation="h",
                           marker_color=["#2a9d8f" if m > 0 else "#e76f51" if m < 0 else "#8d99ae"
                                         for m in shown["moved"]],
                           text=[f"{s:.3f}" for s in shown["score"]], textposition="auto"))
    fig.update_layout(title=f"Runs ranked by {metric} (green: higher than by accuracy, red: lower)",
                      xaxis_title=metric, height=120 + 40 * max(len(table), 1), margin={"l": 10})
    return fig


def summary(table, metric: str) -> str:
    """One sentence: the order under ``metric`` and whether it differs from the order under accuracy."""
    if table.empty:
        return "No run matches this formulation and loss."
    order = " > ".join(table["run"])
    by_accuracy = " > ".join(table.sort_values(["accuracy_rank", "run"])["run"])
    changed = "the same order as accuracy" if order == by_accuracy else f"accuracy orders them {by_accuracy}"
    return f"By {metric}: {order}; {changed}."


class FormulationPanel:
    """Controls for formulation, loss and metric over the runs so far; a ranked bar chart and a table follow."""

    def __init__(self, runs, *, labels):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.runs, self.labels = list(runs), [str(x) for x in labels]
        if not self.runs:
            raise LabkitError("No runs to show yet: pass the FormulationRun objects measured so far.")
        formulations = [ALL, *[f for f in FORMULATIONS if any(r.row["formulation"] == f for r in self.runs)]]
        losses = [ALL, *dict.fromkeys(r.row["loss"] for r in self.runs)]
        self.formulation = w.Dropdown(options=formulations, value=ALL, description="formulation")
        self.loss = w.Dropdown(options=losses, value=ALL, description="loss")
        self.metric = w.ToggleButtons(options=list(PANEL_METRICS), value="accuracy", description="metric")
        self.message, self.table_html = w.HTML(), w.HTML()
        self.table = rank_runs(self.runs, "accuracy", labels=self.labels)
        self.figure = go.FigureWidget(ranking_figure(self.table, "accuracy"))
        for control in (self.formulation, self.loss, self.metric):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.formulation, self.loss]), self.metric, self.message, self.figure,
                              self.table_html])
        self.update()

    def update(self) -> None:
        """Re-score the stored predictions for the current controls and redraw."""
        from ...plots.live import refresh_figure

        metric = self.metric.value
        self.table = rank_runs(self.runs, metric, labels=self.labels, formulation=self.formulation.value,
                               loss=self.loss.value)
        refresh_figure(self.figure, ranking_figure(self.table, metric))
        self.message.value = (f"<b>{html.escape(summary(self.table, metric))}</b><br>{html.escape(metric)}: "
                              f"{html.escape(ABOUT[metric])}")
        self.table_html.value = self.table.to_html(index=False, float_format=lambda x: f"{x:.3f}",
                                                   classes="lk-ranking")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def formulation_panel(runs, *, labels) -> FormulationPanel:
    """The panel over measured runs (FormulationRun objects); drive it from code by setting its controls' values.

    >>> panel = formulation_panel(runs, labels=INTENT_LABELS)  # doctest: +SKIP
    >>> panel.formulation.value = "instruction"; panel.table  # doctest: +SKIP
    """
    return FormulationPanel(runs, labels=labels)
