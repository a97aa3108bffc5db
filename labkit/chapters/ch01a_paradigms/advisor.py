"""Which fine-tuning method to pick: the chapter's four questions in, a recommendation and its numbers out.

The questions: how much GPU memory you have, how many tasks you will serve, how much the task reshapes what the
model knows, and whether inference latency is strict. The logic is a pure function (``recommend``); the panel
(``advisor_panel``) wires it to ipywidgets and a plotly figure.

>>> advice = recommend("meta-llama/Llama-3.1-8B", gpu="T4", num_tasks=5, reshape="moderate", latency="strict")
>>> advice.method
'qlora'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from ...core import LabkitError
from ...units import GIB, MIB

RESHAPE = ("light", "moderate", "heavy")  # format or style / new skills in a known domain / new knowledge or language
LATENCY = ("relaxed", "strict")  # strict: serving cannot afford any extra work per token
RANKS = {"light": 8, "moderate": 16, "heavy": 64}  # LoRA rank that matches how far the model must move
# Candidates in order of preference for each answer to "how much does the task reshape knowledge?".
PREFERENCE = {
    "light": ("lora", "ia3", "prompt", "qlora"),
    "moderate": ("lora", "dora", "qlora", "adapter"),
    "heavy": ("full", "lora", "qlora"),
}
MANY_TASKS = 3  # from this many tasks on, a full copy of the model per task is a cost worth avoiding


@dataclass(frozen=True)
class Advice:
    """A recommendation, the reasons for it and the numbers behind it."""

    method: str | None  # the recommended method, or None when nothing fits
    settings: dict  # settings for lk.apply_method, e.g. {"rank": 16}
    reasons: tuple[str, ...]  # one sentence per question, with the numbers that decided it
    table: object = field(compare=False)  # pandas DataFrame: every candidate with fit, memory, storage, latency

    def __str__(self) -> str:
        head = f"Recommended: {self.method}" + (f" (rank {self.settings['rank']})" if "rank" in self.settings else "")
        if self.method is None:
            head = "Nothing fits as asked"
        return head + "\n" + "\n".join(f"- {r}" for r in self.reasons)


def _check(num_tasks, reshape, latency) -> None:
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise LabkitError(f"num_tasks must be a whole number of tasks, 1 or more, got {num_tasks!r}.")
    if reshape not in RESHAPE:
        raise LabkitError(f"reshape must be one of {', '.join(RESHAPE)} (how far the task moves the model), "
                          f"got {reshape!r}.")
    if latency not in LATENCY:
        raise LabkitError(f"latency must be 'relaxed' or 'strict', got {latency!r}.")


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.2f} GiB" if num_bytes >= GIB / 4 else f"{num_bytes / MIB:.1f} MiB"


def candidates_table(model, gpu: str, *, reshape: str = "moderate", num_tasks: int = 1, batch_size: int = 1,
                     seq_len: int = 512):
    """Fit, predicted memory, trainable share and storage of every candidate method on ``gpu`` (pure numbers)."""
    import pandas as pd

    from ...meters import (
        analytic_storage_bytes,
        analytic_total_params,
        analytic_trainable_params,
        resolve_config,
        will_it_fit,
    )
    from ...methods import get_method

    config = resolve_config(model)
    total = analytic_total_params(config)
    rank = RANKS[reshape]
    rows = []
    for method in dict.fromkeys(PREFERENCE["light"] + PREFERENCE["moderate"] + PREFERENCE["heavy"]):
        kw = {"rank": rank} if get_method(method).size_knob == "rank" else {}
        report = will_it_fit(config, method, gpu, rank=rank, batch_size=batch_size, seq_len=seq_len)
        trainable = analytic_trainable_params(config, method, **kw)
        dtype = "fp32" if report.hardware == "cpu" else "bf16"
        per_task = analytic_storage_bytes(config, method, dtype=dtype, **kw)
        rows.append({"method": method, "rank": rank if kw else None, "fits": report.fits, "need_gib": report.need_gib,
                     "capacity_gib": report.capacity_gib, "trainable_pct": 100 * trainable / total,
                     "storage_per_task_bytes": per_task, "storage_all_tasks_bytes": per_task * num_tasks,
                     "adds_latency": get_method(method).adds_latency})  # after merging, where it can
    return pd.DataFrame(rows).set_index("method")


def recommend(model="meta-llama/Llama-3.1-8B", *, gpu: str = "T4", num_tasks: int = 1, reshape: str = "moderate",
              latency: str = "relaxed", batch_size: int = 1, seq_len: int = 512) -> Advice:
    """Recommend a method for ``model`` on ``gpu`` from the chapter's four questions; numbers from the meters.

    Rules, in order: drop methods that add inference latency when latency is strict; drop full fine-tuning when
    it would store a full copy for each of many tasks (unless the task is heavy and it is the only way); keep the
    first candidate, in the order that suits how far the task moves the model, that fits in the GPU's memory.

    >>> recommend("smollm2-135m", gpu="T4", reshape="heavy").method
    'full'
    """
    from ...meters import display_name
    from ...meters.hardware import get_hardware
    from ...methods import get_method

    _check(num_tasks, reshape, latency)
    hw = get_hardware(gpu)
    table = candidates_table(model, hw.name, reshape=reshape, num_tasks=num_tasks, batch_size=batch_size,
                             seq_len=seq_len)
    order = list(PREFERENCE[reshape])
    reasons = []
    name = display_name(model) if isinstance(model, str) else display_name(getattr(model, "config", model))
    if latency == "strict":
        dropped = [m for m in order if table.loc[m, "adds_latency"]]
        order = [m for m in order if not table.loc[m, "adds_latency"]]
        reasons.append("Latency is strict: " + (f"left out {', '.join(dropped)} (they run extra layers or tokens at "
                                                "inference); LoRA-style updates merge into the weights."
                                                if dropped else "every candidate here can be merged or adds nothing."))
    else:
        reasons.append("Latency is relaxed: adapters and soft prompts may stay separate at inference.")
    full_all = table.loc["full", "storage_all_tasks_bytes"]
    lora_all = table.loc["lora", "storage_all_tasks_bytes"]
    if num_tasks >= MANY_TASKS and get_method(order[0]).family == "all_weights":  # a full copy of the model per task
        order.append(order.pop(0))  # still possible, but only after every PEFT option
        reasons.append(f"{num_tasks} tasks: full fine-tuning would store {_gib(full_all)} (a copy per task) against "
                       f"{_gib(lora_all)} for LoRA adapters, so PEFT comes first.")
    else:
        tasks = f"{num_tasks} task" + ("s" if num_tasks > 1 else "")
        reasons.append(f"{tasks}: storage is {_gib(full_all)} with full fine-tuning, {_gib(lora_all)} with LoRA "
                       "adapters.")
    reasons.append({"light": "The task mostly changes format or style: a small update is enough (rank 8).",
                    "moderate": "The task teaches new skills in a known domain: LoRA-family methods, rank 16.",
                    "heavy": "The task reshapes knowledge (new domain or language): full fine-tuning if it fits, "
                             "else high-rank LoRA (rank 64) on every linear layer."}[reshape])
    chosen = next((m for m in order if table.loc[m, "fits"]), None)
    capacity = table["capacity_gib"].iloc[0]
    if chosen is None:
        smallest = table.loc[order, "need_gib"].idxmin()
        reasons.append(f"Memory: none of {', '.join(order)} fits in {capacity:g} GiB on {hw.name} for {name}; the "
                       f"smallest need is {smallest} at {table.loc[smallest, 'need_gib']:.1f} GiB. Try a bigger GPU, a "
                       "smaller model, shorter sequences or gradient checkpointing.")
        return Advice(None, {}, tuple(reasons), table.assign(chosen=False))
    skipped = order[:order.index(chosen)]
    why_not = "".join(f" {m} needs {table.loc[m, 'need_gib']:.1f} GiB;" for m in skipped)
    reasons.append(f"Memory on {hw.name} ({capacity:g} GiB):{why_not} {chosen} needs "
                   f"{table.loc[chosen, 'need_gib']:.1f} GiB and fits.")
    ranked = get_method(chosen).size_knob == "rank"  # the LoRA family
    settings = {"rank": RANKS[reshape]} if ranked else {}
    if reshape == "heavy" and ranked:
        settings["target_modules"] = "all-linear"
    return Advice(chosen, settings, tuple(reasons), table.assign(chosen=table.index == chosen))


class AdvisorPanel:
    """Controls for the four questions, a readout of the advice and the memory figure; updates on every change."""

    def __init__(self, model="meta-llama/Llama-3.1-8B", gpu: str = "T4", models=None):
        import ipywidgets as w
        import plotly.graph_objects as go

        from ... import plots
        from ...meters import ALIASES, known_configs
        from ...meters.hardware import HARDWARE

        choices = list(models or known_configs())
        if isinstance(model, str) and model not in choices:
            choices.insert(0, model)
        aliases = {v: k for k, v in ALIASES.items()}
        self.model = w.Dropdown(options=[(aliases.get(c, c), c) for c in choices], value=model, description="model")
        self.gpu = w.Dropdown(options=[(f"{h.name} ({h.mem_gib:g} GiB)", h.name) for h in HARDWARE.values()],
                              value=gpu, description="GPU memory")
        self.num_tasks = w.IntSlider(value=1, min=1, max=50, description="tasks", continuous_update=False)
        self.reshape = w.ToggleButtons(options=list(RESHAPE), value="moderate", description="reshape")
        self.latency = w.ToggleButtons(options=list(LATENCY), value="relaxed", description="latency")
        self.readout = w.HTML()
        self.table = w.HTML()
        self.advice = self._advice()
        self.figure = go.FigureWidget(plots.advice_figure(self.advice.table))
        for control in (self.model, self.gpu, self.num_tasks, self.reshape, self.latency):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([w.VBox([self.model, self.gpu, self.num_tasks, self.reshape, self.latency]),
                                      self.readout]), self.figure, self.table])
        self.widget.add_class("lk-advisor")
        self.update()

    def _advice(self) -> Advice:
        return recommend(self.model.value, gpu=self.gpu.value, num_tasks=self.num_tasks.value,
                         reshape=self.reshape.value, latency=self.latency.value)

    def update(self) -> None:
        """Recompute the advice from the controls and redraw."""
        from ... import plots
        from ...plots.live import refresh_figure

        self.advice = self._advice()
        a = self.advice
        title = html.escape(str(a).splitlines()[0])
        items = "".join(f"<li>{html.escape(r)}</li>" for r in a.reasons)
        self.readout.value = (f'<div class="lk-advice" data-method="{a.method or ""}"><b>{title}</b>'
                              f"<ul>{items}</ul></div>")
        refresh_figure(self.figure, plots.advice_figure(a.table))
        shown = a.table.assign(storage_per_task=a.table["storage_per_task_bytes"].map(_gib),
                               storage_all_tasks=a.table["storage_all_tasks_bytes"].map(_gib))
        shown = shown[["rank", "fits", "need_gib", "trainable_pct", "storage_per_task", "storage_all_tasks",
                       "adds_latency", "chosen"]]
        self.table.value = shown.to_html(float_format=lambda x: f"{x:.3g}", na_rep="", classes="lk-advisor-table")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def advisor_panel(model="meta-llama/Llama-3.1-8B", gpu: str = "T4", **kwargs) -> AdvisorPanel:
    """The "which to pick?" panel; display it by leaving it last in a cell.

    >>> panel = advisor_panel("meta-llama/Llama-3.1-8B", gpu="T4")  # doctest: +SKIP
    >>> panel.num_tasks.value = 10  # the advice and figure update at once  # doctest: +SKIP
    >>> panel.advice.method  # doctest: +SKIP
    """
    return AdvisorPanel(model, gpu, **kwargs)
