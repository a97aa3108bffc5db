"""Figures that redraw in place: the live loss curve while training, and any FigureWidget a panel refreshes."""

from __future__ import annotations


def refresh_figure(target, source) -> None:
    """Make FigureWidget ``target`` show figure ``source``, in place, sending only what changed."""
    same_traces = len(target.data) == len(source.data) and all(
        a.type == b.type for a, b in zip(target.data, source.data))
    with target.batch_update():
        if same_traces:
            for old, new in zip(target.data, source.data):
                _set_changed(old, new.to_plotly_json(), old.to_plotly_json())
        else:
            target.data = []
            target.add_traces(list(source.data))
        layout = {k: v for k, v in source.layout.to_plotly_json().items() if k != "template"}
        _set_changed(target.layout, layout, target.layout.to_plotly_json())


def _set_changed(obj, new: dict, old: dict) -> None:
    for key, value in new.items():
        if key != "type" and not _equal(old.get(key), value):
            obj[key] = value


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except ValueError:  # numpy arrays compare element-wise
        import numpy as np

        return np.array_equal(np.asarray(a), np.asarray(b))


def empty_loss_figure():
    """The kit's loss-curve figure with no runs in it yet (same axes and style as plots.loss_curves)."""
    import pandas as pd

    from .. import plots

    fig = plots.loss_curves({"run": pd.DataFrame({"step": [], "loss": []})})
    fig.data = []
    return fig


class LiveLoss:
    """A loss curve that redraws in place while training runs (only in notebooks)."""

    def __init__(self, label: str):
        import plotly.graph_objects as go
        from IPython.display import display

        from ..core import in_colab

        self.label = label
        first = empty_loss_figure()
        if in_colab():  # Colab shows no third-party widgets by default: redraw through a display handle
            self.widget, self.handle = None, display(first, display_id=True)
        else:
            self.widget, self.handle = go.FigureWidget(first), None
            display(self.widget)

    def update(self, history) -> None:
        """Redraw with the rows of ``history`` so far."""
        from .. import plots

        figure = plots.loss_curves({self.label: history})
        if self.widget is not None:
            refresh_figure(self.widget, figure)
        else:
            self.handle.update(figure)
