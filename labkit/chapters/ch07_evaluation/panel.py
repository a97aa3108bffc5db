"""The evaluation panel: choose a test-set size, two runs and a metric; both scores are drawn with their bootstrap
intervals and the panel says, live, whether the difference is significant (paired bootstrap, and McNemar's exact
test for accuracy).

>>> panel = evaluation_panel({"lora": lora_run, "probe": probe_run})  # doctest: +SKIP
>>> panel.size.value = 40; panel.verdict  # doctest: +SKIP
"""

from __future__ import annotations

import html

from ...core import LabkitError
from .scoring import IntentRun
from .stats import bootstrap_ci, check_same_items, mcnemar, paired_bootstrap

PANEL_METRICS = ("accuracy", "macro_f1")
LABELS = tuple(range(8))  # intent class ids


def _data(run: IntentRun, metric: str, n: int):
    if metric == "accuracy":
        return run.correct[:n]
    return run.y_true[:n], run.y_pred[:n]


def compare_runs(a: IntentRun, b: IntentRun, metric: str = "accuracy", n: int | None = None, *,
                 confidence: float = 0.95, n_resamples: int = 1000) -> dict:
    """Both scores with intervals on the first ``n`` items, the paired difference, and whether it is significant."""
    if metric not in PANEL_METRICS:
        raise LabkitError(f"Unknown metric {metric!r} for the intents: use one of {', '.join(PANEL_METRICS)}.")
    check_same_items(a.ids, b.ids)
    n = len(a.ids) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(a.ids):
        raise LabkitError(f"n must be a whole number of test items from 2 to {len(a.ids)}, got {n!r}.")
    kw = {"confidence": confidence, "n_resamples": n_resamples}
    labels = list(LABELS) if metric == "macro_f1" else None
    ci_a = bootstrap_ci(_data(a, metric, n), metric, labels=labels, **kw)
    ci_b = bootstrap_ci(_data(b, metric, n), metric, labels=labels, **kw)
    diff = paired_bootstrap(_data(a, metric, n), _data(b, metric, n), metric, labels=labels, **kw)
    out = {"n": n, "metric": metric, "a": ci_a, "b": ci_b, "diff": diff, "significant": diff.significant}
    if metric == "accuracy":
        out["mcnemar_p"] = mcnemar(a.correct[:n], b.correct[:n]).p_value
    return out


def comparison_figure(names, found: dict):
    """Two bars with their interval whiskers."""
    import plotly.graph_objects as go

    cis = [found["a"], found["b"]]
    fig = go.Figure(go.Bar(x=list(names), y=[c.value for c in cis], marker_color=["#2a9d8f", "#e76f51"],
                           error_y={"type": "data", "symmetric": False, "array": [c.high - c.value for c in cis],
                                    "arrayminus": [c.value - c.low for c in cis]}))
    fig.update_layout(height=320, yaxis_title=found["metric"], yaxis_range=[0, 1],
                      title=f"{found['metric']} on {found['n']} items, {cis[0].confidence:.0%} bootstrap intervals")
    return fig


class EvaluationPanel:
    """Controls: test-set size, run A, run B, metric. The figure and the verdict follow each change."""

    def __init__(self, runs: dict):
        import ipywidgets as w
        import plotly.graph_objects as go

        if len(runs) < 2:
            raise LabkitError("The panel compares runs: give at least two, e.g. {'lora': lora_run, 'probe': probe_run}.")
        first = next(iter(runs.values()))
        for run in runs.values():
            check_same_items(first.ids, run.ids)
        self.runs = runs
        names = list(runs)
        top = len(first.ids)
        self.size = w.IntSlider(value=top, min=min(10, top), max=top, step=1, description="test items")
        self.run_a = w.Dropdown(options=names, value=names[0], description="run A")
        self.run_b = w.Dropdown(options=names, value=names[1], description="run B")
        self.metric = w.ToggleButtons(options=PANEL_METRICS, value="accuracy", description="metric")
        self.message = w.HTML()
        self.found = None
        self.verdict = ""
        self.figure = go.FigureWidget()
        for control in (self.size, self.run_a, self.run_b, self.metric):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.run_a, self.run_b]), w.HBox([self.size, self.metric]), self.message,
                              self.figure])
        self.update()

    def update(self) -> None:
        """Recompute both intervals and the paired test for the current controls and redraw."""
        from ...plots.live import refresh_figure

        a, b = self.run_a.value, self.run_b.value
        if a == b:
            self.verdict = "pick two different runs"
            self.message.value = f"<b>{self.verdict}</b>"
            return
        found = compare_runs(self.runs[a], self.runs[b], self.metric.value, self.size.value)
        self.found = found
        d = found["diff"]
        extra = f", McNemar exact p = {found['mcnemar_p']:.3f}" if "mcnemar_p" in found else ""
        word = "significant" if found["significant"] else "NOT significant"
        self.verdict = (f"{a} - {b} = {d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}] on {found['n']} items: {word} "
                        f"(paired bootstrap{extra})")
        self.message.value = f"<b>{html.escape(self.verdict)}</b>"
        refresh_figure(self.figure, comparison_figure((a, b), found))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def evaluation_panel(runs: dict) -> EvaluationPanel:
    """The panel over named runs scored on the same items; drive it from code by setting control values."""
    return EvaluationPanel(runs)
