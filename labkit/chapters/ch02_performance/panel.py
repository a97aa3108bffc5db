"""The lever panel (predicted memory bars and step time that follow the controls; a button measures two real steps)
and the budget fit (the settings with the best predicted throughput under a memory cap).

>>> panel = LeverPanel(model, peaks_tflops={"fp32": 0.1, "bf16": 0.05}, mfu=0.3)  # doctest: +SKIP
>>> panel.checkpointing.value = True; panel.predicted_gib  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import time

from ...core import LabkitError
from ...meters import predict_memory, training_flops
from ...units import GIB
from .ladder import LORA_RANK, LR, StepSettings, make_optimizer, micro_batches, predict_step_gib, prepare, train_step

RECOMPUTE = 4 / 3  # checkpointing runs each layer's forward again in backward: 8·N·D instead of 6·N·D FLOPs


def predict_step_time_s(config, settings: StepSettings, batch_size: int, seq_len: int, peaks_tflops: dict,
                        mfu: float) -> float:
    """Seconds per step: training FLOPs (x4/3 with checkpointing) over the measured peak times an MFU."""
    from ...meters import analytic_total_params, analytic_trainable_params

    if not 0 < mfu <= 1:
        raise LabkitError(f"mfu must be a fraction in (0, 1], e.g. the plain step's measured MFU, got {mfu!r}.")
    micro_batches(batch_size, settings.micro_batch)
    n_all = analytic_total_params(config)
    kw = {"rank": LORA_RANK, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} if settings.method == "lora" else {}
    trained = analytic_trainable_params(config, settings.method, **kw)
    flops = training_flops(n_all, batch_size * seq_len, trainable_params=trained)
    flops *= RECOMPUTE if settings.grad_checkpointing else 1
    return flops / (peaks_tflops[settings.precision] * 1e12 * mfu)


def fit_budget(config, budget_gib: float, *, batch_size: int, seq_len: int, peaks_tflops: dict, mfu: float,
               methods=("full", "lora")):
    """Every combination of the levers that fits ``budget_gib``, fastest predicted first (a DataFrame).

    Combines checkpointing, each micro-batch that divides ``batch_size``, precision, optimizer and method.
    """
    import pandas as pd

    weights_gib = predict_memory(config, "lora", batch_size=1, seq_len=1).weights / GIB
    if not isinstance(budget_gib, (int, float)) or budget_gib <= weights_gib:
        raise LabkitError(f"A budget of {budget_gib!r} GiB does not even hold the fp32 weights "
                          f"({weights_gib:.2f} GiB): raise the budget.")
    micros = [m for m in range(1, batch_size + 1) if batch_size % m == 0]
    rows = []
    for ckpt, micro, precision, optimizer, method in itertools.product(
            (False, True), micros, ("fp32", "bf16"), ("adamw", "adamw8bit", "sgd"), methods):
        s = StepSettings(attention="sdpa", grad_checkpointing=ckpt, micro_batch=micro, precision=precision,
                         optimizer=optimizer, method=method)
        mem = predict_step_gib(config, s, batch_size, seq_len)
        t = predict_step_time_s(config, s, batch_size, seq_len, peaks_tflops, mfu)
        rows.append({"method": method, "optimizer": optimizer, "precision": precision, "checkpointing": ckpt,
                     "micro_batch": micro, "accum_steps": batch_size // micro, "predicted_gib": mem,
                     "predicted_tokens_per_s": batch_size * seq_len / t, "fits": mem <= budget_gib,
                     "settings": s})
    table = pd.DataFrame(rows)
    fitting = table[table["fits"]].sort_values(["predicted_tokens_per_s", "predicted_gib"], ascending=[False, True])
    if fitting.empty:
        raise LabkitError(f"No combination fits {budget_gib} GiB at batch {batch_size} x {seq_len}: raise the "
                          "budget or shorten seq_len.")
    return fitting.reset_index(drop=True)


def measure_settings(base_model, settings: StepSettings, *, batch_size: int, seq_len: int, steps: int = 2) -> dict:
    """Run ``steps`` real steps (the first warms up) and return the measured step time and tokens/s."""
    import torch

    if not isinstance(steps, int) or steps < 2:
        raise LabkitError("steps must be a whole number >= 2 (the first one warms up).")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, base_model.config.vocab_size, (batch_size, seq_len), generator=g)
    batch = {"input_ids": ids, "labels": ids.clone()}
    runner, params = prepare(base_model, settings)
    opt = make_optimizer(params, settings.optimizer, LR[settings.method])
    train_step(runner, params, opt, batch, settings)
    start = time.perf_counter()
    for _ in range(steps - 1):
        train_step(runner, params, opt, batch, settings)
    step_time_s = (time.perf_counter() - start) / (steps - 1)
    out = {"step_time_s": step_time_s, "tokens_per_s": batch_size * seq_len / step_time_s}
    if params[0].device.type == "cpu":
        from .profile import profile_step

        prof = profile_step(lambda: train_step(runner, params, opt, batch, settings))
        out["live_peak_gib"] = prof.live_peak_bytes / GIB
    return out


class LeverPanel:
    """Controls for each lever; predicted memory bars and step time follow them; ``measure()`` adds a real point."""

    def __init__(self, base_model, *, peaks_tflops: dict, mfu: float, batch_size: int = 4, seq_len: int = 128):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.model, self.peaks, self.mfu = base_model, peaks_tflops, mfu
        self.checkpointing = w.Checkbox(value=False, description="checkpointing")
        self.accum = w.Dropdown(options=[1, 2, 4, 8], value=1, description="accum steps")
        self.precision = w.ToggleButtons(options=["fp32", "bf16"], value="fp32", description="precision")
        self.optimizer = w.Dropdown(options=["adamw", "adamw8bit", "sgd", "adafactor"], value="adamw",
                                    description="optimizer")
        self.method = w.ToggleButtons(options=["full", "lora"], value="full", description="method")
        self.batch = w.Dropdown(options=sorted({1, 2, 4, 8, 16, batch_size}), value=batch_size, description="batch")
        self.seq = w.Dropdown(options=sorted({32, 64, 128, 256, 512, 1024, seq_len}), value=seq_len,
                              description="seq_len")
        self.button = w.Button(description="measure 2 steps")
        self.message = w.HTML()
        self.measured: list[dict] = []
        self.figure = go.FigureWidget()
        self.figure.add_bar(x=[], y=[], name="predicted", marker_color="#e76f51")
        self.figure.add_bar(x=[], y=[], name="measured time (s)", marker_color="#264653")
        self.figure.update_layout(height=320, barmode="group", title="predicted peak memory (GiB)")
        for control in (self.checkpointing, self.accum, self.precision, self.optimizer, self.method, self.batch,
                        self.seq):
            control.observe(lambda _: self.update(), names="value")
        self.button.on_click(lambda _: self.measure())
        self.widget = w.VBox([w.HBox([self.method, self.precision]), w.HBox([self.checkpointing, self.accum,
                              self.optimizer]), w.HBox([self.batch, self.seq, self.button]), self.message,
                              self.figure])
        self.update()

    @property
    def settings(self) -> StepSettings:
        accum = self.accum.value
        micro = self.batch.value // accum if self.batch.value % accum == 0 else None
        return StepSettings(attention="sdpa", grad_checkpointing=self.checkpointing.value,
                            micro_batch=micro if accum > 1 else None, precision=self.precision.value,
                            optimizer=self.optimizer.value, method=self.method.value)

    def update(self) -> None:
        """Redraw the predicted bars and the predicted step time for the controls' values."""
        if self.batch.value % self.accum.value:
            self.message.value = (f"<b>{self.accum.value} accumulation steps do not divide a batch of "
                                  f"{self.batch.value}</b>: pick a divisor.")
            return
        s, b, n = self.settings, self.batch.value, self.seq.value
        cfg = self.model.config
        kw = {"rank": LORA_RANK, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} if s.method == "lora" else {}
        est = predict_memory(cfg, s.method, batch_size=s.micro_batch or b, seq_len=n,
                             grad_checkpointing=s.grad_checkpointing,
                             optimizer=s.optimizer if s.optimizer != "adafactor" else "adamw", **kw)
        parts = est.as_frame()["gib"]
        self.predicted_gib = predict_step_gib(cfg, s, b, n)
        self.predicted_time_s = predict_step_time_s(cfg, s, b, n, self.peaks, self.mfu)
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = list(parts.index) + ["total (step)"], \
                [*parts.values, self.predicted_gib]
        self.message.value = html.escape(f"predicted: {self.predicted_gib:.3f} GiB, "
                                         f"{self.predicted_time_s:.2f} s per step") + self._measured_text()

    def _measured_text(self) -> str:
        if not self.measured:
            return ""
        last = self.measured[-1]
        return html.escape(f"; last measured: {last['step_time_s']:.2f} s per step "
                           f"(predicted {last['predicted_time_s']:.2f} s)")

    def measure(self) -> dict:
        """Run two real steps with the current settings and add the measured point."""
        s = self.settings
        point = measure_settings(self.model, s, batch_size=self.batch.value, seq_len=self.seq.value)
        point.update(dataclasses.asdict(s), batch_size=self.batch.value, seq_len=self.seq.value,
                     predicted_time_s=self.predicted_time_s, predicted_gib=self.predicted_gib)
        self.measured.append(point)
        with self.figure.batch_update():
            self.figure.data[1].x = [f"#{i + 1}" for i in range(len(self.measured))]
            self.figure.data[1].y = [p["step_time_s"] for p in self.measured]
        self.update()
        return point

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
