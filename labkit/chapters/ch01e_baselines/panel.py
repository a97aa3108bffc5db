"""The training-dynamics panel: learning rate, schedule, epochs, data size and weight decay set a run whose cost is
predicted live (meters.time_to_train_s at a measured tokens/s, and a GPU's time and dollars from FLOPs); "train" (a
button, or ``panel.train()`` from code) measures it and adds its train/validation curves, with an early-stopping
marker, to one comparison plot.

>>> panel = dynamics_panel(base, rows, val_rows, tokens_per_s=result.tokens_per_s)  # doctest: +SKIP
>>> panel.lr.value = 3e-3; panel.train()  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math

from ...core import LabkitError
from ...training.config import SCHEDULES

PANEL_SCHEDULES = ("constant", "cosine", "linear")
LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def plan(*, data_size: int, epochs: float, batch_size: int, tokens_per_example: float) -> dict:
    """Steps and tokens of a run that sees ``data_size`` examples ``epochs`` times in batches of ``batch_size``."""
    for name, value in (("data_size", data_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
    if not epochs > 0:
        raise LabkitError(f"epochs must be positive (e.g. 3), got {epochs!r}.")
    steps = max(1, math.ceil(epochs * data_size / batch_size))
    return {"num_steps": steps, "tokens": steps * batch_size * tokens_per_example}


def cost_line(prediction: dict, steps: int, tokens: float) -> str:
    """One sentence with the predicted time here and on a GPU."""
    gpu = next(k for k in prediction if k.startswith("predicted_") and k != "predicted_here_s")
    hw = gpu.removeprefix("predicted_").removesuffix("_s")
    return (f"Predicted: {steps} steps, {tokens:,.0f} tokens, {prediction['predicted_here_s']:.0f} s here; "
            f"{prediction[gpu] * 1e3:.1f} ms and ${prediction[f'cost_{hw}_usd']:.2g} on one {hw}.")


class DynamicsPanel:
    """Controls for one run's settings; the predicted cost follows them; ``train()`` adds measured curves."""

    def __init__(self, base, rows, val_rows, *, tokens_per_s: float, trainable_params: int, batch_size: int = 4,
                 seq_len: int = 96, eval_every: int = 5, max_steps: int = 200, progress: bool = False):
        import ipywidgets as w
        import plotly.graph_objects as go

        from ...batches import tokenize

        self.base, self.rows, self.val_rows = base, [dict(r) for r in rows], [dict(r) for r in val_rows]
        if not self.rows or not self.val_rows:
            raise LabkitError("The panel needs training rows and validation rows: pass at least one of each.")
        if not tokens_per_s > 0:
            raise LabkitError(f"tokens_per_s must be a measured positive speed (a TrainResult's), got {tokens_per_s!r}.")
        self.tokens_per_s, self.trainable_params = tokens_per_s, trainable_params
        self.batch_size, self.seq_len, self.eval_every, self.max_steps = batch_size, seq_len, eval_every, max_steps
        self.progress = progress
        examples = tokenize(self.rows, base[1], "sft", seq_len=seq_len)
        self.tokens_per_example = sum(len(e["input_ids"]) for e in examples) / len(examples)
        self.lr = w.SelectionSlider(options=list(LR_CHOICES), value=1e-3, description="lr")
        self.schedule = w.Dropdown(options=list(PANEL_SCHEDULES), value="constant", description="schedule")
        self.epochs = w.FloatSlider(value=2.0, min=0.5, max=20.0, step=0.5, description="epochs")
        self.data_size = w.IntSlider(value=min(16, len(self.rows)), min=1, max=len(self.rows), description="data size")
        self.weight_decay = w.SelectionSlider(options=[0.0, 0.01, 0.1, 0.5], value=0.0, description="weight decay")
        self.train_button = w.Button(description="train", button_style="primary")
        self.message = w.HTML()
        self.runs: list[dict] = []  # one per train(): settings, predicted and measured time, best step
        self.figure = go.FigureWidget(layout={"title": "Measured runs: train (dotted) and validation (solid) loss",
                                              "xaxis_title": "step", "yaxis_title": "loss", "height": 380})
        for control in (self.lr, self.schedule, self.epochs, self.data_size, self.weight_decay):
            control.observe(lambda _: self.update(), names="value")
        self.train_button.on_click(lambda _: self.train())
        self.widget = w.VBox([w.HBox([self.lr, self.schedule, self.weight_decay]),
                              w.HBox([self.epochs, self.data_size, self.train_button]), self.message, self.figure])
        self.update()

    def settings(self) -> dict:
        """The run the controls describe: lk.train settings plus the data size."""
        steps = plan(data_size=self.data_size.value, epochs=self.epochs.value, batch_size=self.batch_size,
                     tokens_per_example=self.tokens_per_example)
        if self.schedule.value not in SCHEDULES:
            raise LabkitError(f"Unknown schedule {self.schedule.value!r}.")
        return {"num_steps": steps["num_steps"], "tokens": steps["tokens"], "lr": self.lr.value,
                "schedule": self.schedule.value, "weight_decay": self.weight_decay.value,
                "data_size": self.data_size.value}

    def prediction(self) -> dict:
        """Predicted seconds here and on a GPU for the current settings."""
        from .dynamics import predicted_time

        s = self.settings()
        return predicted_time(self.base[0].config, s["tokens"], self.tokens_per_s,
                              trainable_params=self.trainable_params)

    def update(self) -> None:
        """Redraw the predicted cost for the current controls."""
        s = self.settings()
        line = cost_line(self.prediction(), s["num_steps"], s["tokens"])
        warn = f" Over {self.max_steps} steps: train() refuses it; fewer epochs or less data." \
            if s["num_steps"] > self.max_steps else ""
        self.message.value = f"<b>{html.escape(line + warn)}</b> Runs so far: {len(self.runs)}."

    def train(self) -> dict:
        """Train the run the controls describe; add its curves and early-stopping marker; return its row."""
        from .dynamics import curves, early_stopping, train_lora

        s, predicted = self.settings(), self.prediction()
        if s["num_steps"] > self.max_steps:
            raise LabkitError(f"{s['num_steps']} steps is over this panel's limit of {self.max_steps}: lower epochs "
                              "or data size.")
        label = f"lr {s['lr']:g}, {s['schedule']}, wd {s['weight_decay']:g}, n {s['data_size']}, {s['num_steps']} st"
        _, result = train_lora(self.base, self.rows[:s["data_size"]], eval_data=self.val_rows,
                               num_steps=s["num_steps"], batch_size=self.batch_size, seq_len=self.seq_len,
                               lr=s["lr"], schedule=s["schedule"], weight_decay=s["weight_decay"],
                               eval_every=min(self.eval_every, s["num_steps"]), eval_limit=len(self.val_rows),
                               label=label, progress=self.progress)
        curve, stop = curves(result.history), early_stopping(result.history, patience=2)
        evals = curve[curve["eval_loss"].notna()]
        color = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8d99ae")[len(self.runs) % 6]
        with self.figure.batch_update():
            self.figure.add_scatter(x=curve["step"], y=curve["train_smooth"], mode="lines", name=f"{label} train",
                                    line={"dash": "dot", "color": color})
            self.figure.add_scatter(x=evals["step"], y=evals["eval_loss"], mode="lines+markers",
                                    name=f"{label} val", line={"color": color})
            self.figure.add_scatter(x=[stop["best_step"]], y=[stop["best_eval_loss"]], mode="markers",
                                    name=f"{label} best (early stop)", marker={"symbol": "star", "size": 14,
                                                                               "color": color})
        row = {"run": label, **{k: v for k, v in s.items() if k != "tokens"}, "predicted_here_s":
               predicted["predicted_here_s"], "measured_s": result.time_s, **stop}
        self.runs.append(row)
        self.update()
        return row

    def table(self):
        """The measured runs so far, one row each."""
        import pandas as pd

        return pd.DataFrame(self.runs)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def dynamics_panel(base, rows, val_rows, **kwargs) -> DynamicsPanel:
    """The panel over ``rows`` (instruction/answer) with ``val_rows`` for validation; see DynamicsPanel."""
    return DynamicsPanel(base, rows, val_rows, **kwargs)
