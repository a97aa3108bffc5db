"""The reproducibility panel: seed, threads, deterministic mode and dropout for two runs; run both and see whether
their loss curves coincide, bit for bit.

>>> panel = repro_panel("tiny-llama", data)  # doctest: +SKIP
>>> panel.seed_b.value = 1; panel.run()["identical"]  # doctest: +SKIP
False
"""

from __future__ import annotations

import html

from ...core import LabkitError
from .repro import compare_losses, repro_run

THREADS = ("default", 1, 2)


class ReproPanel:
    """Run A uses the controls' left column, run B the right; the button (or ``run()``) trains both."""

    def __init__(self, model_name: str, data, *, num_steps: int = 4, batch_size: int = 4, seq_len: int = 64):
        import ipywidgets as w
        import plotly.graph_objects as go

        if not isinstance(num_steps, int) or num_steps < 2:
            raise LabkitError(f"num_steps must be a whole number >= 2 (a curve needs two points), got {num_steps!r}.")
        self.model_name, self.data = model_name, data
        self.sizes = {"num_steps": num_steps, "batch_size": batch_size, "seq_len": seq_len}
        self.seed_a = w.BoundedIntText(value=0, min=0, max=2**31, description="seed A")
        self.seed_b = w.BoundedIntText(value=0, min=0, max=2**31, description="seed B")
        self.threads_a = w.Dropdown(options=THREADS, value="default", description="threads A")
        self.threads_b = w.Dropdown(options=THREADS, value="default", description="threads B")
        self.deterministic = w.Checkbox(value=False, description="deterministic algorithms (both)")
        self.dropout = w.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.05, description="LoRA dropout")
        self.button = w.Button(description="run twice", button_style="primary")
        self.message = w.HTML("Set the controls, then run.")
        self.figure = go.FigureWidget()
        self.figure.add_scatter(x=[], y=[], mode="lines+markers", name="run A")
        self.figure.add_scatter(x=[], y=[], mode="lines", name="run B", line={"dash": "dash", "width": 3})
        self.figure.update_layout(height=320, xaxis_title="step", yaxis_title="training loss",
                                  title="Two runs: do the curves coincide?")
        self.button.on_click(lambda _: self.run())
        self.last = None
        self.widget = w.VBox([w.HBox([self.seed_a, self.threads_a]), w.HBox([self.seed_b, self.threads_b]),
                              w.HBox([self.deterministic, self.dropout]), self.button, self.message, self.figure])

    def _settings(self, seed, threads) -> dict:
        return {"seed": seed.value, "threads": None if threads.value == "default" else threads.value,
                "deterministic": self.deterministic.value, "lora_dropout": self.dropout.value, **self.sizes}

    def run(self) -> dict:
        """Train run A, draw it, train run B, draw it; return compare_losses' verdict."""
        self.message.value = "training run A..."
        a = repro_run(self.model_name, self.data, label="A", **self._settings(self.seed_a, self.threads_a))
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = a.history["step"].tolist(), a.history["loss"].tolist()
            self.figure.data[1].x, self.figure.data[1].y = [], []
        self.message.value = "training run B..."
        b = repro_run(self.model_name, self.data, label="B", **self._settings(self.seed_b, self.threads_b))
        with self.figure.batch_update():
            self.figure.data[1].x, self.figure.data[1].y = b.history["step"].tolist(), b.history["loss"].tolist()
        verdict = compare_losses(a, b)
        text = ("identical, bit for bit" if verdict["identical"]
                else f"different: largest gap {verdict['max_abs_diff']:.3g}")
        self.message.value = f"<b>The two runs are {html.escape(text)}.</b>"
        self.last = verdict
        return verdict

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def repro_panel(model_name: str, data, **sizes) -> ReproPanel:
    """The panel for ``model_name`` trained on ``data``; drive it from code by setting controls and calling run()."""
    return ReproPanel(model_name, data, **sizes)
