"""The chapter's checklist as a planner: task, data and budget in; pretraining vs full fine-tuning vs PEFT out.

Every figure comes from the meters: FLOPs by ``training_flops`` (6·N·D, or 4·N·D + 2·N_trainable·D for PEFT),
time and dollars by ``estimate_time_s`` on the dated ``HARDWARE`` table, memory by ``will_it_fit``.

>>> p = plan(PlanRequest(task="domain adaptation", model="meta-llama/Llama-2-7b-hf", data_tokens=300_000))
>>> p.choice
'lora'
>>> planner_panel()  # the same as an ipywidgets panel  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from ...core import LabkitError
from ...units import DTYPE_BYTES, GIB

PATHS = ("pretrain", "full", "lora", "qlora")  # from scratch, then the fine-tuning paths, heaviest first


def path_title(path: str) -> str:
    """How tables and advice name a path: the method's registered title, or pretraining."""
    from ...methods import get_method

    return "pretrain from scratch" if path == "pretrain" else get_method(path).title
TASKS = {
    "new language or modality": "data the available base models never saw (a new script, a new modality)",
    "domain adaptation": "the same language in a new domain: its vocabulary, names and style",
    "instruction following": "a format or behaviour taught from prompt/answer pairs",
    "classification": "text to a fixed set of labels",
}
# Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", Chinchilla): ~20 tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20


@dataclass
class PlanRequest:
    """What the learner knows before choosing: the task, the data, the money and the hardware."""

    task: str = "domain adaptation"  # one of TASKS
    model: str = "meta-llama/Llama-2-7b-hf"  # a model the meters know offline (KNOWN_CONFIGS id, alias or preset)
    data_tokens: float = 1e6  # training tokens in one pass over the task data
    epochs: int = 3  # passes over the task data
    budget_usd: float = 100.0  # money available for training compute
    hardware: str = "A100-80GB"  # a name from meters.HARDWARE
    max_devices: int = 1  # devices usable at once (sharding splits model states across them)
    num_tasks: int = 1  # tasks (or customers) served from one base: each needs its own checkpoint
    rank: int = 16  # LoRA/QLoRA rank
    large_data_tokens: float = 1e8  # from this much task data on, full fine-tuning can use its extra capacity

    def __post_init__(self):
        if self.task not in TASKS:
            raise LabkitError(f"Unknown task {self.task!r}: use one of {', '.join(TASKS)}.")
        for name in ("data_tokens", "budget_usd", "large_data_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise LabkitError(f"{name} must be a positive number, got {value!r}.")
        for name in ("epochs", "max_devices", "num_tasks", "rank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")


@dataclass(frozen=True)
class PathCost:
    """Compute, time, dollars and memory of one path for one model and token count."""

    path: str  # "pretrain", "full", "lora" or "qlora"
    tokens: float  # tokens trained on
    flops: float  # training FLOPs (meters.training_flops)
    gpu_hours: float  # device-hours at the assumed MFU
    cost_usd: float  # gpu_hours x the table's hourly price
    mem_gib: float  # predicted training memory on one device, unsharded
    devices: int  # devices needed to hold it (model states sharded evenly; a rough lower bound)
    trainable_params: int  # parameters that receive gradients
    stored_gib: float  # one task's checkpoint in bf16: the whole model, or only the adapter
    model_gib: float  # the base model in bf16 (PEFT paths store it once for all tasks)


def _dtype(hw) -> str:
    return "fp32" if hw.name == "cpu" else ("bf16" if "bf16" in hw.peak_tflops else "fp16")


def path_cost(model, path: str, tokens: float, hardware: str = "A100-80GB", *, rank: int = 16,
              mfu: float | None = None) -> PathCost:
    """Cost of one path: pretraining or full fine-tuning (6·N·D) or LoRA/QLoRA (4·N·D + 2·N_trainable·D).

    >>> round(path_cost("smollm2-135m", "pretrain", 2e12, "H100").gpu_hours)  # doctest: +SKIP
    """
    from ... import meters
    from ...methods import get_method

    if path not in PATHS:
        raise LabkitError(f"Unknown path {path!r}: use one of {', '.join(PATHS)}.")
    if not tokens > 0:
        raise LabkitError(f"tokens must be positive, got {tokens!r}.")
    config = meters.resolve_config(model)
    hw = meters.get_hardware(hardware)
    method = "full" if path == "pretrain" else path
    kw = {"rank": rank} if get_method(method).size_knob == "rank" else {}
    n_matmul = meters.matmul_params(config)
    trainable = meters.analytic_trainable_params(config, method, **kw)
    flops = meters.training_flops(n_matmul, tokens, trainable_params=min(trainable, n_matmul))
    time_s = meters.estimate_time_s(flops, hw, _dtype(hw), mfu=mfu or meters.DEFAULT_MFU)
    fit = meters.will_it_fit(config, method, hw.name, rank=rank)
    stored = meters.analytic_storage_bytes(config, method, dtype="bf16", **kw) / GIB
    model_gib = meters.analytic_total_params(config) * DTYPE_BYTES["bf16"] / GIB
    return PathCost(path, float(tokens), flops, time_s / 3600, time_s / 3600 * hw.usd_per_hour, fit.need_gib,
                    max(1, math.ceil(fit.need_gib / fit.capacity_gib)), trainable, stored, model_gib)


def run_cost(model, runs) -> dict:
    """What lk.train runs of ``model`` measured and cost: tokens, FLOPs, time_s, TFLOP/s, peak memory, dollars.

    ``runs`` is one lk.train result or several rounds of the same run (their tokens and times add up).
    """
    from ... import meters

    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    if not runs or not all(hasattr(r, "history") and hasattr(r, "time_s") for r in runs):
        raise LabkitError("run_cost needs lk.train results: pass one result or a list of rounds.")
    n_all, total = meters.matmul_params(model.config), sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens = sum(float(r.history["tokens"].iloc[-1]) for r in runs)
    flops = meters.training_flops(n_all, tokens, trainable_params=None if trainable >= total else trainable)
    time_s = sum(r.time_s for r in runs)
    return {"trainable_params": trainable, "tokens": tokens, "flops": flops, "time_s": time_s,
            "tflops_per_s": flops / time_s / 1e12, "peak_mem_gib": max(r.peak_mem_gib for r in runs),
            "cost_usd_cpu_vm": time_s / 3600 * meters.get_hardware("cpu").usd_per_hour}


@dataclass
class Plan:
    """The planner's answer: a table of every path and the recommended one with its reasons."""

    request: PlanRequest  # what was asked
    costs: dict  # path -> PathCost
    choice: str | None  # recommended path, or None when nothing fits the budget and hardware
    reasons: list = field(default_factory=list)  # the checklist items that decided, with their numbers

    def table(self):
        """One row per path: tokens, FLOPs, GPU-hours, dollars, memory, devices, storage, feasible."""
        import pandas as pd

        rows = []
        for path, c in self.costs.items():
            ok = _feasible(c, self.request)
            rows.append({"path": path_title(path), "tokens": c.tokens, "flops": c.flops, "gpu_hours": c.gpu_hours,
                         "cost_usd": c.cost_usd, "mem_gib": c.mem_gib, "devices": c.devices,
                         "storage_gib": _storage_gib(c, self.request.num_tasks), "feasible": ok,
                         "recommended": path == self.choice})
        return pd.DataFrame(rows).set_index("path")

    def __str__(self) -> str:
        head = f"recommended: {path_title(self.choice)}" if self.choice else "no path fits this budget and hardware"
        return "\n".join([head, *(f"- {r}" for r in self.reasons)])


def _storage_gib(c: PathCost, num_tasks: int) -> float:
    """What serving ``num_tasks`` tasks stores: a model per task, or one base plus an adapter per task."""
    if c.stored_gib < c.model_gib:  # an adapter per task on one shared base
        return c.model_gib + c.stored_gib * num_tasks
    return c.model_gib * num_tasks


def _feasible(c: PathCost, req: PlanRequest) -> bool:
    return c.cost_usd <= req.budget_usd and c.devices <= req.max_devices


def plan(request: PlanRequest) -> Plan:
    """Walk the checklist for ``request`` and recommend a path (pure: the same request, the same plan).

    >>> plan(PlanRequest(task="classification", data_tokens=1e5)).choice
    'lora'
    """
    from ... import meters

    req = request
    n_params = meters.analytic_total_params(meters.resolve_config(req.model))
    ft_tokens = req.data_tokens * req.epochs
    costs = {"pretrain": path_cost(req.model, "pretrain", CHINCHILLA_TOKENS_PER_PARAM * n_params, req.hardware,
                                   rank=req.rank)}
    costs.update({p: path_cost(req.model, p, ft_tokens, req.hardware, rank=req.rank) for p in PATHS[1:]})
    ok = {p: _feasible(c, req) for p, c in costs.items()}
    usd = {p: f"${c.cost_usd:,.2f}" for p, c in costs.items()}
    reasons = []
    if req.task == "new language or modality":
        need = costs["pretrain"].tokens
        if ok["pretrain"] and req.data_tokens >= need:
            reasons.append(f"the base models never saw this data; you have {req.data_tokens:.2g} tokens, enough for "
                           f"compute-optimal pretraining ({need:.2g}, ~20 per parameter), at {usd['pretrain']}")
            return Plan(req, costs, "pretrain", reasons)
        if req.data_tokens < need:
            reasons.append(f"pretraining from scratch wants ~{need:.2g} tokens (~20 per parameter) and you have "
                           f"{req.data_tokens:.2g}: adapt the closest pretrained model instead")
        else:
            reasons.append(f"pretraining from scratch would cost {usd['pretrain']} "
                           f"({costs['pretrain'].gpu_hours:,.0f} GPU-hours): out of reach, so adapt the closest "
                           "pretrained model instead")
    else:
        reasons.append(f"the base model already knows the language: pretraining ({usd['pretrain']}) buys nothing here")
    big_data = ft_tokens >= req.large_data_tokens or req.task == "new language or modality"
    if ok["full"] and big_data and req.num_tasks == 1:
        reasons.append(f"{ft_tokens:.2g} training tokens and one task: full fine-tuning ({usd['full']}) can use all "
                       "its capacity; PEFT learns less from large shifts")
        return Plan(req, costs, "full", reasons)
    if req.num_tasks > 1:
        reasons.append(f"{req.num_tasks} tasks: PEFT stores {costs['lora'].stored_gib * 1024:,.0f} MiB per task "
                       f"instead of {costs['full'].stored_gib:,.1f} GiB")
    if not big_data:
        reasons.append(f"{ft_tokens:.2g} training tokens is little data: PEFT trains few parameters, overfits and "
                       "forgets less")
    for path in ("lora", "qlora", "full"):
        if ok[path]:
            c = costs[path]
            reasons.append(f"{path_title(path)} fits: {c.mem_gib:.1f} GiB on {c.devices} device(s), {usd[path]}")
            if path == "qlora":
                reasons.append(f"LoRA needs {costs['lora'].devices} device(s) ({costs['lora'].mem_gib:.1f} GiB): "
                               "4-bit weights make room")
            return Plan(req, costs, path, reasons)
    cheapest = min(costs["qlora"].cost_usd, costs["lora"].cost_usd)
    reasons.append(f"even the cheapest fine-tuning costs ${cheapest:,.2f} or needs more than {req.max_devices} "
                   "device(s): raise the budget, use fewer tokens, a smaller model or bigger hardware")
    return Plan(req, costs, None, reasons)


# ---- the panel ------------------------------------------------------------------------------------------------------

class PlannerPanel:
    """Controls for a PlanRequest and a readout that re-plans on every change (``plan`` holds the latest)."""

    def __init__(self, request: PlanRequest | None = None):
        import ipywidgets as w

        from ... import meters

        req = request or PlanRequest()
        models = list(dict.fromkeys([req.model, *meters.KNOWN_CONFIGS]))
        style = {"description_width": "110px"}
        self.task = w.Dropdown(options=list(TASKS), value=req.task, description="task", style=style)
        self.model = w.Dropdown(options=models, value=req.model, description="model", style=style)
        self.data_tokens = w.FloatLogSlider(value=req.data_tokens, base=10, min=4, max=12, step=0.25,
                                            description="data tokens", readout_format=".2g", style=style)
        self.epochs = w.IntSlider(value=req.epochs, min=1, max=10, description="epochs", style=style)
        self.budget_usd = w.FloatLogSlider(value=req.budget_usd, base=10, min=0, max=7, step=0.25,
                                           description="budget $", readout_format=",.0f", style=style)
        self.hardware = w.Dropdown(options=list(meters.HARDWARE), value=meters.get_hardware(req.hardware).name,
                                   description="hardware", style=style)
        self.max_devices = w.IntSlider(value=req.max_devices, min=1, max=64, description="devices", style=style)
        self.num_tasks = w.IntSlider(value=req.num_tasks, min=1, max=50, description="tasks served", style=style)
        self.readout = w.HTML()
        self.controls = (self.task, self.model, self.data_tokens, self.epochs, self.budget_usd, self.hardware,
                         self.max_devices, self.num_tasks)
        for control in self.controls:
            control.observe(lambda _: self.update(), names="value")
        self._rank = req.rank
        self.widget = w.VBox([w.HBox([w.VBox(list(self.controls[:4])), w.VBox(list(self.controls[4:]))]),
                              self.readout])
        self.plan: Plan | None = None
        self.update()

    def request(self) -> PlanRequest:
        """The PlanRequest the controls describe."""
        return PlanRequest(task=self.task.value, model=self.model.value, data_tokens=float(self.data_tokens.value),
                           epochs=self.epochs.value, budget_usd=float(self.budget_usd.value),
                           hardware=self.hardware.value, max_devices=self.max_devices.value,
                           num_tasks=self.num_tasks.value, rank=self._rank)

    def update(self) -> None:
        """Re-plan and redraw the readout."""
        self.plan = plan(self.request())
        table = self.plan.table()
        shown = table.assign(tokens=table["tokens"].map("{:.3g}".format), flops=table["flops"].map("{:.2e}".format),
                             gpu_hours=table["gpu_hours"].map("{:,.1f}".format),
                             cost_usd=table["cost_usd"].map("${:,.2f}".format),
                             mem_gib=table["mem_gib"].map("{:,.1f}".format),
                             storage_gib=table["storage_gib"].map("{:,.2f}".format))
        choice = path_title(self.plan.choice) if self.plan.choice else "nothing fits: change the inputs"
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in self.plan.reasons)
        self.readout.value = (f'<div class="lk-planner"><b>Recommended:</b> <span class="lk-plan-choice" '
                              f'data-value="{self.plan.choice}">{html.escape(choice)}</span><ul>{reasons}</ul>'
                              f'{shown.to_html(classes="lk-plan-table")}</div>')

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def planner_panel(request: PlanRequest | None = None) -> PlannerPanel:
    """The planner as an ipywidgets panel; leave it last in a cell to show it.

    >>> panel = planner_panel(PlanRequest(task="classification"))  # doctest: +SKIP
    >>> panel.num_tasks.value = 20  # the plan updates at once: panel.plan.choice  # doctest: +SKIP
    """
    return PlannerPanel(request)
