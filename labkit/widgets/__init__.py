"""The method explorer: pick a method and its settings, see parameters, memory and cost live; train to compare.

>>> explorer = method_explorer("smollm2-135m")  # doctest: +SKIP
>>> explorer  # shows the panel at the end of a notebook cell  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import html
import tempfile
import time

from ..core import LabkitError
from ..units import GIB, KIB, MIB, QUANTIZATIONS

LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BASES = {str(q).lower(): q for q in QUANTIZATIONS}  # toggle label -> quantization ("none" -> None)


def _span(cls: str, value, text: str) -> str:
    return f'<span class="{cls}" data-value="{html.escape(str(value))}">{html.escape(text)}</span>'


def _size(num_bytes: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.2f} {unit}"
    return f"{num_bytes:.0f} B"


class MethodExplorer:
    """Controls, a live readout and two FigureWidgets; ``train_now`` adds a measured run to ``runs``."""

    def __init__(self, model_name: str = "smollm2-135m", *, model=None, tokenizer=None, train_data=None,
                 num_labels: int = 8, hardware: str | None = None):
        import ipywidgets as w
        import pandas as pd
        import plotly.graph_objects as go

        from .. import meters, plots
        from ..methods import linear_module_names, list_methods
        from ..plots.live import empty_loss_figure

        self.model_name, self._model, self._tokenizer, self.train_data = model_name, model, tokenizer, train_data
        self.config = model.config if model is not None else meters.resolve_config(model_name)
        self.num_labels = num_labels
        targets = linear_module_names(model) if model is not None else list(LLAMA_LINEAR)
        self.method = w.Dropdown(options=list_methods(), value="lora", description="method")
        self.rank = w.IntSlider(value=8, min=1, max=128, description="rank", continuous_update=False)
        self.targets = w.SelectMultiple(options=targets, value=[t for t in ("q_proj", "v_proj") if t in targets]
                                        or targets[:1], description="targets", rows=len(targets))
        self.batch_size = w.IntSlider(value=4, min=1, max=64, description="batch", continuous_update=False)
        self.seq_len = w.SelectionSlider(options=[32, 64, 128, 256, 512, 1024, 2048, 4096], value=128,
                                         description="seq_len", continuous_update=False)
        self.quantization = w.ToggleButtons(options=list(BASES), value="none", description="base")
        names = list(meters.HARDWARE)
        self.hardware = w.Dropdown(options=names, value=hardware if hardware in names else names[0],
                                   description="hardware")
        self.train_steps = w.IntSlider(value=10, min=1, max=200, description="steps", continuous_update=False)
        self.train_button = w.Button(description="train N steps", button_style="primary", icon="play")
        self.readout = w.HTML()
        self.status = w.HTML()
        self.table = w.HTML()
        self.hint = w.HTML()
        self.runs = pd.DataFrame()
        self.histories: dict[str, object] = {}
        self._keys: dict[tuple, str] = {}
        self._busy = False
        self.memory_fig = go.FigureWidget(plots.memory_breakdown(self._predict()))
        self.loss_fig = go.FigureWidget(empty_loss_figure())
        for control in (self.method, self.rank, self.targets, self.batch_size, self.seq_len, self.quantization,
                        self.hardware, self.train_steps):
            control.observe(self._on_change, names="value")
        self.train_button.on_click(lambda _: self.train_now(self.train_steps.value))
        controls = w.VBox([self.method, self.rank, self.hint, self.targets, self.batch_size, self.seq_len,
                           self.quantization, self.hardware, w.HBox([self.train_steps, self.train_button]),
                           self.status])
        self.widget = w.VBox([w.HBox([controls, self.readout]), self.memory_fig, self.loss_fig, self.table])
        self.widget.add_class("lk-explorer")
        self.update()

    # ---- what the controls mean ----
    def _spec(self):
        """The registry's entry for the chosen method: its size knob, targets, family, learning rate."""
        from ..methods import get_method

        return get_method(self.method.value)

    def method_kwargs(self) -> dict:
        """The method settings the controls describe (the same keywords apply_method and meters take)."""
        spec = self._spec()
        kwargs = {}
        if spec.size_knob is not None:  # the "rank" slider sets the method's size knob
            kwargs[spec.size_knob] = self.rank.value
        if spec.takes_targets:
            kwargs["target_modules"] = list(self.targets.value)
        if spec.family == "head":
            kwargs["num_labels"] = self.num_labels
        return kwargs

    def _quant(self):
        return self._spec().base_quantization or BASES[self.quantization.value]

    def key(self) -> tuple:
        """What identifies a measured run (hardware only changes the cost, not the run)."""
        settings = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(self.method_kwargs().items()))
        return self.method.value, settings, self.batch_size.value, self.seq_len.value, self._quant()

    def _device_dtype(self) -> tuple[str, str]:
        """Device kind and compute dtype the chosen hardware implies (bf16 where it has it, else fp16/fp32)."""
        from .. import meters

        hw = meters.get_hardware(self.hardware.value)
        if self.hardware.value == "cpu":
            return "cpu", "fp32"
        return "cuda", "bf16" if "bf16" in hw.peak_tflops else "fp16"

    def _predict(self):
        from .. import meters

        device, dtype = self._device_dtype()
        return meters.predict_memory(self.config, self.method.value, batch_size=self.batch_size.value,
                                     seq_len=self.seq_len.value, quantization=self._quant(), device=device,
                                     dtype=dtype, **self.method_kwargs())

    def _cost(self, trainable: int):
        """(cost_usd, time_s) of train_steps steps on the chosen hardware, from 6ND-style FLOPs."""
        from .. import meters

        _, dtype = self._device_dtype()
        tokens = self.train_steps.value * self.batch_size.value * self.seq_len.value
        n = meters.matmul_params(self.config)
        flops = meters.training_flops(n, tokens, trainable_params=min(trainable, n))  # full: capped at 6·N·D
        hw = self.hardware.value
        return meters.estimate_cost(flops, hw, dtype), meters.estimate_time_s(flops, hw, dtype)

    # ---- updates ----
    def _on_change(self, change) -> None:
        if not self._busy:
            self.update()

    def update(self) -> None:
        """Recompute the readout and the memory figure from the config (no model is touched)."""
        from .. import meters, plots
        from ..plots.live import refresh_figure

        self._busy = True
        try:
            name, spec = self.method.value, self._spec()
            if spec.base_quantization is not None and self.quantization.value != spec.base_quantization:
                self.quantization.value = spec.base_quantization  # QLoRA means a 4-bit base
            self.rank.disabled = spec.size_knob is None
            self.targets.disabled = not spec.takes_targets
            self.hint.value = f"<small>rank sets: {spec.size_knob or 'nothing for this method'}</small>"
        finally:
            self._busy = False
        total = meters.analytic_total_params(self.config)
        run_id = self._keys.get(self.key())
        row = self.runs.loc[run_id] if run_id is not None else None
        trainable = 0
        try:  # e.g. no target layer selected, or full fine-tuning of a 4-bit base: say why, keep the last figure
            if spec.takes_targets and not self.targets.value:
                raise LabkitError("Select at least one target layer (ctrl- or shift-click to pick several).")
            trainable = meters.analytic_trainable_params(self.config, name, **self.method_kwargs())
            estimate = self._predict()
            cost_usd, time_s = self._cost(trainable)
        except LabkitError as err:
            self.readout.value = self._readout_html(trainable, total, None, None, row, error=str(err))
            self._highlight(run_id)
            return
        measured = None if row is None else row["peak_mem_gib"] * GIB  # plots take bytes
        refresh_figure(self.memory_fig, plots.memory_breakdown(estimate, measured=measured))
        self.readout.value = self._readout_html(trainable, total, estimate, (cost_usd, time_s), row)
        self._highlight(run_id)

    def _readout_html(self, trainable, total, estimate, cost, row, error: str | None = None) -> str:
        from .. import meters

        stored = trainable * 4  # trainable tensors are saved in float32
        pct = 100 * trainable / total
        hw = meters.get_hardware(self.hardware.value)
        trainable_html = _span("lk-trainable", trainable, f"{trainable:,}")
        pct_html = _span("lk-trainable-pct", f"{pct:.6g}", f"{pct:.3g}%")
        lines = [f"<b>trainable</b> {trainable_html} ({pct_html} of {total:,})",
                 f"<b>stored per task</b> {_span('lk-adapter-bytes', stored, _size(stored))}"]
        if error is not None:
            lines.append(f'<span class="lk-error">{html.escape(error)}</span>')
        else:
            gib, fits = estimate.total_gib, estimate.total_gib <= hw.mem_gib
            mem_html = _span("lk-mem-total", f"{gib:.6g}", f"{gib:.2f} GiB")
            fits_html = _span("lk-fits", int(fits), "fits" if fits else "does not fit")
            lines.append(f"<b>predicted peak memory</b> {mem_html} of {hw.mem_gib:g} GiB on "
                         f"{html.escape(hw.name)}: {fits_html}")
            cost_html = _span("lk-cost", f"{cost[0]:.6g}", f"${cost[0]:.4f}")
            time_html = _span("lk-time", f"{cost[1]:.6g}", f"~{cost[1]:.1f} s")
            lines.append(f"<b>{self.train_steps.value} steps on {html.escape(hw.name)}</b> {cost_html}, {time_html} "
                         f"(estimate at {meters.DEFAULT_MFU:.0%} of peak speed)")
        if row is not None:
            mem_html = _span("lk-run-mem", f"{row.peak_mem_gib:.6g}", f"{row.peak_mem_gib:.2f} GiB peak")
            time_html = _span("lk-run-time", f"{row.time_s:.6g}", f"{row.time_s:.1f} s")
            loss_html = _span("lk-run-loss", f"{row.final_loss:.6g}", f"loss {row.final_loss:.3f}")
            lines.append(f"<b>measured {html.escape(str(row.name))} (this machine)</b>: {mem_html}, {time_html}, "
                         f"{loss_html}")
        else:
            lines.append('<span class="lk-run-none">no measured run with these settings yet</span>')
        return '<div class="lk-readout">' + "<br>".join(lines) + "</div>"

    def _highlight(self, run_id) -> None:
        with self.loss_fig.batch_update():
            for trace in self.loss_fig.data:
                mine = trace.name.removesuffix(" (eval)") == run_id
                trace.opacity = 1.0 if run_id is None or mine else 0.35
                trace.line.width = 4 if mine else 2

    # ---- training ----
    def _fresh_model(self, quant):
        from ..models import load_model

        if quant is not None:
            return load_model(self.model_name, quantization=quant)
        if self._model is None:
            self._model, self._tokenizer = load_model(self.model_name)
        return copy.deepcopy(self._model), self._tokenizer

    def _data(self, name: str):
        from .. import data
        from ..methods import get_method

        if get_method(name).family == "head":  # a classification head trains on labelled intents
            return data.load_intents()["train"], list(data.INTENT_LABELS)
        return (self.train_data if self.train_data is not None else data.load_instructions()["train"]), None

    def train_now(self, num_steps: int | None = None):
        """Train the current setting for ``num_steps`` real steps and add it to ``runs`` (None if refused)."""
        from .. import meters, plots
        from ..methods import apply_method, get_method, list_methods, save_trainable
        from ..plots.live import refresh_figure
        from ..training import train

        num_steps = num_steps or self.train_steps.value
        name, quant, kwargs, spec = self.method.value, self._quant(), self.method_kwargs(), self._spec()
        low_rank = [m for m in list_methods() if get_method(m).family == "low_rank"]  # LoRA on a frozen base
        if quant is not None and name not in low_rank:
            self.status.value = (f'<span class="lk-error">{name} cannot train on a {quant} base: pick '
                                 f'{" or ".join(low_rank)}, or set the base to none.</span>')
            return None
        # a quantized base takes the method made for it, if there is one: LoRA on a 4-bit base is QLoRA
        applied = next((m for m in low_rank if quant is not None and get_method(m).base_quantization == quant), name)
        self.status.value = f'<span class="lk-busy">training {name} for {num_steps} steps...</span>'
        start = time.perf_counter()
        try:
            train_set, labels = self._data(name)
            kwargs.pop("num_labels", None)
            if labels is not None:
                kwargs["labels"] = labels
            # the copy of the weights counts too, as in the prediction; exact: freed memory returns to the OS
            with meters.measure_peak_memory(pin_allocator=True) as mem:
                model, tokenizer = self._fresh_model(quant)
                model = apply_method(model, applied, **kwargs)
                result = train(model, tokenizer, train_set, num_steps=num_steps, batch_size=self.batch_size.value,
                               seq_len=self.seq_len.value, lr=spec.default_lr, progress=False,
                               live_plot=False, label=f"run {len(self.runs) + 1}", exact_memory=True)
            with tempfile.TemporaryDirectory() as folder:
                stored_bytes = save_trainable(model, folder).stat().st_size
            del model
        except LabkitError as err:
            self.status.value = f'<span class="lk-error">{html.escape(str(err))}</span>'
            return None
        run_id = result.label
        row = {"method": name, **{k: v for k, v in kwargs.items() if k != "labels"},
               "batch_size": self.batch_size.value, "seq_len": self.seq_len.value, "quantization": quant or "none",
               "num_steps": num_steps, "final_loss": result.final_loss, "peak_mem_gib": mem.peak_gib,
               "train_peak_mem_gib": result.peak_mem_gib,
               "time_s": result.time_s, "tokens_per_s": result.tokens_per_s, "stored_bytes": stored_bytes,
               "wall_s": time.perf_counter() - start}
        import pandas as pd

        self.runs = pd.concat([self.runs, pd.DataFrame([row], index=[run_id])])
        self._keys[self.key()] = run_id
        self.histories[run_id] = result.history
        refresh_figure(self.loss_fig, plots.loss_curves(self.histories))
        self.table.value = self.runs.to_html(classes="lk-runs", float_format=lambda x: f"{x:.4g}")
        self.status.value = f'<span class="lk-done">{run_id}: {num_steps} steps in {result.time_s:.1f} s</span>'
        self.update()
        return result

    def snapshot_html(self) -> str:
        """The explorer's current state as static HTML: readout, memory figure and measured runs, no widgets.

        Front ends that cannot draw widgets (a notebook exported to HTML, nbviewer) show this instead of the panel.
        """
        figure = self.memory_fig.to_html(full_html=False, include_plotlyjs="cdn", default_height="360px")
        runs = self.table.value or ""
        note = ("<p><i>A static snapshot of the method explorer. Run the notebook in JupyterLab or Colab to move "
                "the controls.</i></p>")
        return f'<div class="lk-explorer-snapshot">{note}{self.readout.value}{figure}{runs}</div>'

    def _repr_mimebundle_(self, **kwargs):
        # JupyterLab and Colab draw the widget; an HTML export without widget state falls back to text/html.
        return {**self.widget._repr_mimebundle_(**kwargs), "text/html": self.snapshot_html()}


def method_explorer(model_name: str = "smollm2-135m", *, model=None, tokenizer=None, train_data=None,
                    **kwargs) -> MethodExplorer:
    """Build the method explorer for a preset (or a loaded model); display it by leaving it last in a cell.

    >>> explorer = method_explorer("smollm2-135m")  # doctest: +SKIP
    >>> explorer.rank.value = 16  # the readout and memory figure update at once  # doctest: +SKIP
    >>> explorer.train_now(10)  # a real short run, added to explorer.runs  # doctest: +SKIP
    """
    return MethodExplorer(model_name, model=model, tokenizer=tokenizer, train_data=train_data, **kwargs)
