"""Progress bar and live loss curve: a plotly FigureWidget updated in place inside notebooks, nothing elsewhere."""

from __future__ import annotations


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live figure can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def refresh_figure(target, source) -> None:
    """Copy the traces and layout of figure ``source`` into ``target`` (a FigureWidget) in place."""
    with target.batch_update():
        if len(target.data) == len(source.data) and all(
                a.type == b.type and a.name == b.name for a, b in zip(target.data, source.data)):
            for old, new in zip(target.data, source.data):
                old.update(new.to_plotly_json(), overwrite=True)
        else:
            target.data = []
            target.add_traces(list(source.data))
        target.layout.update(source.layout.to_plotly_json(), overwrite=False)


def _loss_figure(histories: dict):
    from .. import plots

    return plots.loss_curves(histories)


class LiveLoss:
    """A loss curve that redraws in place while training runs (only in notebooks)."""

    def __init__(self, label: str):
        import plotly.graph_objects as go
        from IPython.display import display

        from ..core import in_colab

        self.label = label
        first = _loss_figure({})
        if in_colab():  # Colab shows no third-party widgets by default: redraw through a display handle
            self.widget, self.handle = None, display(first, display_id=True)
        else:
            self.widget, self.handle = go.FigureWidget(first), None
            display(self.widget)

    def update(self, history) -> None:
        """Redraw with the rows of ``history`` so far."""
        figure = _loss_figure({self.label: history})
        if self.widget is not None:
            refresh_figure(self.widget, figure)
        else:
            self.handle.update(figure)


def make_progress(total: int, enabled: bool, label: str):
    """A tqdm bar (notebook-aware) or None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="step", leave=True)
