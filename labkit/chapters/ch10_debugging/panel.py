"""The debugging panel: pick a zoo member, see its loss curve beside the healthy one, then its pre-flight report.

>>> panel = debug_panel(histories, reports)  # doctest: +SKIP
>>> panel.select("missing_eos")  # the curve and the report follow  # doctest: +SKIP
"""

from __future__ import annotations

import html

from ...core import LabkitError

HEALTHY = "healthy"


def member_figure(histories: dict, member: str):
    """Loss curves of ``member`` and of the healthy set-up (plots.loss_curves)."""
    from ... import plots

    runs = {HEALTHY: histories[HEALTHY]} if member == HEALTHY else {member: histories[member],
                                                                      HEALTHY: histories[HEALTHY]}
    fig = plots.loss_curves(runs, title=f"Training loss: {member} vs healthy")
    fig.update_layout(height=340)
    return fig


class DebugPanel:
    """A dropdown of zoo members, a FigureWidget of loss curves and the member's pre-flight report."""

    def __init__(self, histories: dict, reports: dict, bugs: dict | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go

        if HEALTHY not in histories or HEALTHY not in reports:
            raise LabkitError("The panel needs the 'healthy' run in histories and reports, to compare against.")
        members = [m for m in histories if m in reports]
        self.histories, self.reports, self.bugs = histories, reports, bugs or {}
        self.member = w.Dropdown(options=members, value=next((m for m in members if m != HEALTHY), HEALTHY),
                                 description="zoo member")
        self.about = w.HTML()
        self.report = w.HTML()
        self.figure = go.FigureWidget(member_figure(histories, self.member.value))
        self.member.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([self.member, self.about, self.figure, self.report])
        self.update()

    def select(self, member: str) -> DebugPanel:
        """Show ``member`` (what the dropdown does), from code."""
        if member not in self.member.options:
            raise LabkitError(f"Unknown zoo member {member!r}: use one of {', '.join(self.member.options)}.")
        self.member.value = member
        return self

    def update(self) -> None:
        """Redraw the curve, the description and the report for the selected member."""
        from ...plots.live import refresh_figure

        member = self.member.value
        refresh_figure(self.figure, member_figure(self.histories, member))
        bug = self.bugs.get(member)
        self.about.value = ("<i>the healthy set-up: every check should pass</i>" if bug is None else
                            f"<b>{html.escape(bug.title)}</b>: {html.escape(bug.symptom)}. <b>Caught by</b> "
                            f"<code>{html.escape(bug.check)}</code>. <b>Fix</b>: {html.escape(bug.fix)}")
        self.report.value = self.reports[member]._repr_html_()

    @property
    def shown(self) -> dict:
        """What the panel shows now: member, the failed checks and the curves' last losses."""
        member = self.member.value
        return {"member": member, "failed": self.reports[member].failed,
                "curves": {trace.name: float(trace.y[-1]) for trace in self.figure.data}}

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def debug_panel(histories: dict, reports: dict, bugs: dict | None = None) -> DebugPanel:
    """The panel over measured runs: ``histories`` {member: DataFrame of step, loss}, ``reports`` {member:
    PreflightReport}, ``bugs`` the zoo (zoo.ZOO) for the descriptions."""
    return DebugPanel(histories, reports, bugs)
