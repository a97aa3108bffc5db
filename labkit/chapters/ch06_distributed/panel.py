"""The cluster panel: model size, GPUs, ZeRO stage, offload and interconnect; live per-GPU memory bars against an
80 GB card, and the predicted step time, scaling efficiency and cost per step.

>>> panel = cluster_panel()  # doctest: +SKIP
>>> panel.gpus.value = 64; panel.plan.fits  # doctest: +SKIP
"""

from __future__ import annotations

import html

from ...core import LabkitError
from .paper import INTERCONNECTS, OFFLOADS, Cluster, plan_cluster

GPU_COUNTS = tuple(2**i for i in range(11))  # 1 ... 1,024
COLOURS = {"params": "#264653", "grads": "#2a9d8f", "optim": "#e9c46a"}


def memory_figure(plan, cluster: Cluster, limit_gib: float):
    """Stacked bar of the model states on one GPU, with the card's memory as a line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for part, gib in plan.mem_gib.items():
        fig.add_trace(go.Bar(x=["per GPU"], y=[gib], name=part, marker_color=COLOURS[part]))
    fig.add_hline(y=limit_gib, line_dash="dash", annotation_text=f"{cluster.gpu}: {limit_gib:.0f} GiB")
    fig.update_layout(barmode="stack", height=320, yaxis_title="GiB (model states)", width=420,
                      title=f"{cluster.n_params / 1e9:.0f}B, {cluster.gpus} GPUs, stage {cluster.stage}")
    return fig


class ClusterPanel:
    """Controls for a Cluster; the bars and the message follow each change."""

    def __init__(self, cluster: Cluster | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go

        from ...meters import HARDWARE

        c = cluster or Cluster()
        if c.gpus not in GPU_COUNTS:
            raise LabkitError(f"The panel offers powers of two from 1 to 1,024 GPUs; got {c.gpus}.")
        self.limit_gib = HARDWARE[c.gpu].mem_gib
        self.size = w.FloatLogSlider(value=c.n_params, min=8, max=12, description="parameters")
        self.gpus = w.SelectionSlider(options=GPU_COUNTS, value=c.gpus, description="GPUs")
        self.stage = w.ToggleButtons(options=[0, 1, 2, 3], value=c.stage, description="ZeRO stage")
        self.offload = w.Dropdown(options=OFFLOADS, value=c.offload, description="offload")
        self.link = w.Dropdown(options=tuple(INTERCONNECTS), value=c.interconnect, description="interconnect")
        self.cluster, self.message = c, w.HTML()
        self.plan = plan_cluster(c)
        self.figure = go.FigureWidget(memory_figure(self.plan, c, self.limit_gib))
        for control in (self.size, self.gpus, self.stage, self.offload, self.link):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.HBox([w.VBox([self.size, self.gpus, self.stage, self.offload, self.link, self.message]),
                              self.figure])
        self.update()

    def update(self) -> None:
        """Re-plan for the current controls and redraw; a combination that cannot work says why."""
        from ...plots.live import refresh_figure

        try:
            cluster = Cluster(n_params=self.size.value, gpus=self.gpus.value, stage=self.stage.value,
                              offload=self.offload.value, interconnect=self.link.value, gpu=self.cluster.gpu)
        except LabkitError as err:
            self.message.value = f"<b>{html.escape(str(err))}</b>"
            return
        self.cluster, self.plan = cluster, plan_cluster(cluster)
        refresh_figure(self.figure, memory_figure(self.plan, cluster, self.limit_gib))
        p = self.plan
        fit = "fits" if p.fits else "does NOT fit"
        self.message.value = (f"<b>{p.total_gib:.1f} GiB per GPU: {fit}</b><br>step {p.step_s:.2f} s "
                              f"(math {p.compute_s:.2f} s + traffic {p.comm_s:.2f} s), efficiency "
                              f"{p.efficiency:.0%}<br>${p.cost_usd:.2f} per step of "
                              f"{cluster.tokens_per_step:.0e} tokens")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def cluster_panel(cluster: Cluster | None = None) -> ClusterPanel:
    """The panel; drive it from code by setting control values (panel.gpus.value = 64)."""
    return ClusterPanel(cluster)
