"""The optimization ladder: one training step with its levers (attention kernel, checkpointing, accumulation,
precision, torch.compile, optimizer, method), measured for speed, memory and loss against the plain step.

Each rung is the plain step (fp32, eager attention, full fine-tuning, AdamW, one micro-batch) with ONE lever
changed, so the difference to the plain row is that lever's own effect. Every rung starts from the same weights and
sees the same batches, so the losses are comparable.

>>> table = run_ladder(model, batches, levers=("sdpa", "lora"), num_steps=4)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

from ...core import LabkitError
from ...meters import measure_peak_memory, predict_memory
from ...models import set_checkpointing
from ...units import GIB

ATTENTIONS = ("eager", "sdpa")
PRECISIONS = ("fp32", "bf16")
STEP_OPTIMIZERS = ("adamw", "adamw8bit", "sgd", "adafactor")
METHODS = ("full", "lora")
LORA_RANK = 8  # rank of the LoRA rung (q, k, v, o projections, peft's defaults for Llama)
# learning rates per (method, optimizer): AdamW-like steps move each weight by ~lr; SGD needs a far larger lr
LR = {"full": 2e-5, "lora": 1e-3}
SGD_LR_SCALE = 50


@dataclass(frozen=True)
class StepSettings:
    """One way to run a training step; every field is a lever."""

    attention: str = "eager"  # "eager" (scores materialised) or "sdpa" (torch's fused scaled_dot_product_attention)
    grad_checkpointing: bool = False  # recompute each layer's activations in backward
    micro_batch: int | None = None  # examples per forward pass; None: the whole batch (no accumulation)
    precision: str = "fp32"  # "fp32" or "bf16" (torch.autocast; weights stay fp32)
    compile: bool = False  # torch.compile the model
    optimizer: str = "adamw"  # "adamw" (torch), "adamw8bit" (bitsandbytes), "sgd" (torch), "adafactor" (transformers)
    method: str = "full"  # "full" fine-tuning or "lora"

    def __post_init__(self):
        for name, allowed in (("attention", ATTENTIONS), ("precision", PRECISIONS), ("optimizer", STEP_OPTIMIZERS),
                              ("method", METHODS)):
            if getattr(self, name) not in allowed:
                raise LabkitError(f"Unknown {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}.")
        if self.micro_batch is not None and (not isinstance(self.micro_batch, int) or self.micro_batch < 1):
            raise LabkitError(f"micro_batch must be a positive whole number or None, got {self.micro_batch!r}.")
        for name in ("grad_checkpointing", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise LabkitError(f"{name} must be True or False, got {getattr(self, name)!r}.")


PLAIN = StepSettings()
# each lever: the one change it makes to the plain step (accumulation halves the micro-batch: same effective batch)
LEVERS = {
    "plain": {},
    "sdpa": {"attention": "sdpa"},
    "checkpointing": {"grad_checkpointing": True},
    "accumulation": {"micro_batch": "half"},
    "bf16": {"precision": "bf16"},
    "compile": {"compile": True},
    "adamw8bit": {"optimizer": "adamw8bit"},
    "sgd": {"optimizer": "sgd"},
    "adafactor": {"optimizer": "adafactor"},
    "lora": {"method": "lora"},
}


def lever_settings(lever: str, batch_size: int, base: StepSettings = PLAIN) -> StepSettings:
    """The settings of one rung: ``base`` with ``lever`` switched on."""
    if lever not in LEVERS:
        raise LabkitError(f"Unknown lever {lever!r}: use one of {', '.join(LEVERS)}.")
    change = dict(LEVERS[lever])
    if change.get("micro_batch") == "half":
        if batch_size < 2:
            raise LabkitError("Accumulation needs a batch of at least 2 examples to split: raise batch_size.")
        change["micro_batch"] = batch_size // 2 if batch_size % 2 == 0 else 1
    return dataclasses.replace(base, **change)


def micro_batches(batch_size: int, micro_batch: int | None) -> int:
    """Forward passes per optimizer step: batch_size / micro_batch, which must be whole."""
    if micro_batch is None:
        return 1
    if micro_batch > batch_size or batch_size % micro_batch:
        divisors = ", ".join(str(d) for d in range(1, batch_size + 1) if batch_size % d == 0)
        raise LabkitError(f"micro_batch {micro_batch} does not divide the batch of {batch_size}: pick one of "
                          f"{divisors}.")
    return batch_size // micro_batch


def make_batches(tokenizer, texts, *, batch_size: int, seq_len: int, num_batches: int):
    """``num_batches`` fixed batches of ``batch_size`` x ``seq_len`` tokens from ``texts`` (short texts repeat, so
    no row is padded and every rung trains on exactly the same tokens)."""
    import torch

    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("num_batches", num_batches)):
        if not isinstance(value, int) or value < 1:
            raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
    texts = list(texts)
    need = batch_size * num_batches
    if not texts:
        raise LabkitError("No texts to make batches from: pass a list of strings (e.g. a data set's 'text' column).")
    texts = (texts * (need // len(texts) + 1))[:need]
    batches = []
    for i in range(num_batches):
        rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts[i * batch_size:(i + 1) * batch_size]]
        rows = [(r * (seq_len // max(len(r), 1) + 1))[:seq_len] for r in rows]  # repeat short texts: full rows
        ids = torch.tensor(rows, dtype=torch.long)
        batches.append({"input_ids": ids, "labels": ids.clone()})
    return batches


def make_optimizer(params, name: str, lr: float):
    """The real optimizer for ``name``: torch AdamW/SGD, bitsandbytes AdamW8bit, transformers Adafactor."""
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr * SGD_LR_SCALE)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False)
    import bitsandbytes as bnb

    return bnb.optim.AdamW8bit(params, lr=lr)


def prepare(base_model, settings: StepSettings, *, compile_backend: str = "inductor"):
    """A fresh copy of ``base_model`` set up for ``settings``; returns (model to call, trainable params)."""
    import torch

    model = copy.deepcopy(base_model)
    model.set_attn_implementation(settings.attention)
    if settings.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    if settings.grad_checkpointing:
        set_checkpointing(model, True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    runner = torch.compile(model, backend=compile_backend) if settings.compile else model
    return runner, params


def train_step(runner, params, opt, batch, settings: StepSettings):
    """One optimizer step over ``batch`` (split into micro-batches); returns the mean loss (a float)."""
    import contextlib

    import torch

    n = micro_batches(batch["input_ids"].shape[0], settings.micro_batch)
    device = params[0].device
    batch = {k: v.to(device) for k, v in batch.items()}
    cast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if settings.precision == "bf16" \
        else contextlib.nullcontext
    total = 0.0
    for ids, labels in zip(batch["input_ids"].chunk(n), batch["labels"].chunk(n)):
        with torch.profiler.record_function("forward"), cast():
            loss = runner(input_ids=ids, labels=labels).loss / n
        with torch.profiler.record_function("backward"):
            loss.backward()
        total += float(loss.detach())
    with torch.profiler.record_function("optimizer"):
        opt.step()
        opt.zero_grad(set_to_none=True)
    return total


@dataclass
class RungResult:
    """What one rung measured."""

    lever: str  # the lever switched on ("plain" for none)
    settings: StepSettings  # the step it ran
    ran: bool  # False when the lever could not run here (see error)
    error: str = ""  # the caught error, word for word, when it could not run
    tokens_per_s: float = float("nan")  # timed steps (after one warm-up step)
    step_time_s: float = float("nan")  # mean seconds per timed step
    resident_peak_gib: float = float("nan")  # process peak resident size over the timed steps (allocator caches too)
    live_peak_gib: float = float("nan")  # peak bytes of live tensors in one profiled step (torch.profiler)
    predicted_gib: float = float("nan")  # lk.meters.predict_memory for this step (+ eager attention scores)
    losses: list = dataclasses.field(default_factory=list)  # loss of every step, warm-up included
    note: str = ""  # what to know about this rung here (e.g. the compile backend used)


def eager_scores_bytes(config, batch_size: int, seq_len: int, act_bytes: int = 4) -> int:
    """Bytes eager attention keeps per step that fused attention does not: the softmax output of every layer,
    batch x heads x seq_len x seq_len (the a*s^2 term of Korthikanti et al. 2022)."""
    return (config.num_hidden_layers * batch_size * config.num_attention_heads * seq_len * seq_len * act_bytes)


def predict_step_gib(config, settings: StepSettings, batch_size: int, seq_len: int) -> float:
    """predict_memory for the step ``settings`` runs (Adafactor's factored state included), plus eager attention's
    score matrices (predict_memory assumes SDPA). Autocast keeps fp32 weights and predict_memory has no autocast
    model yet, so bf16 is predicted as an fp32 step (the bf16 copies autocast saves are not counted)."""
    micro = settings.micro_batch or batch_size
    kw = {"rank": LORA_RANK, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} if settings.method == "lora" else {}
    est = predict_memory(config, settings.method, batch_size=micro, seq_len=seq_len,
                         grad_checkpointing=settings.grad_checkpointing, optimizer=settings.optimizer, **kw)
    total = est.total
    if micro < batch_size:  # accumulation: from the second micro-batch on, its activations meet the gradients
        d = est.details
        total = max(total, est.weights + d["all_gradients"] + d["optimizer_states"] + d["saved_activations"]
                    + d["logits_at_backward_start"] + est.overhead)
    if settings.attention == "eager":
        layers = 1 if settings.grad_checkpointing else config.num_hidden_layers
        total += eager_scores_bytes(config, micro, seq_len) * layers / config.num_hidden_layers
    return total / GIB


def cpu_has_bf16() -> bool:
    """True where this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles). Elsewhere torch emulates
    bf16 matmuls through fp32, far slower than fp32 itself (``lk.meters.measure_matmul_tflops`` shows both)."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def run_rung(base_model, batches, lever: str, *, num_steps: int = 3, base: StepSettings = PLAIN,
             live_peak: bool = True, compile_backend: str = "inductor", emulated_bf16: bool = True) -> RungResult:
    """Run ``num_steps`` optimizer steps (plus one warm-up) of ``base`` with ``lever`` on; measure them.

    A lever that cannot run here (no compiler, no bitsandbytes) gives ``ran=False`` and the caught error.
    ``emulated_bf16=False`` skips a bf16 step on a CPU without bf16 arithmetic (``cpu_has_bf16``), saying why: on
    SmolLM2 one such step takes about a minute on a 2-core AVX2 CPU.
    """
    from .profile import profile_step

    if not batches:
        raise LabkitError("No batches: make them with make_batches(...).")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise LabkitError(f"num_steps must be a positive whole number, got {num_steps!r}.")
    batch_size, seq_len = batches[0]["input_ids"].shape
    settings = lever_settings(lever, batch_size, base)
    micro_batches(batch_size, settings.micro_batch)  # a clear error before any work
    result = RungResult(lever, settings, ran=False,
                        predicted_gib=predict_step_gib(base_model.config, settings, batch_size, seq_len))
    if settings.compile:
        result.note = f"torch.compile backend {compile_backend!r}"
    device = next(base_model.parameters()).device
    if settings.precision == "bf16" and device.type == "cpu" and not emulated_bf16 and not cpu_has_bf16():
        result.error = ("this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), so torch emulates every bf16 "
                        "matmul far slower than fp32 (see the matmul peaks below); it runs on a GPU, on a bf16 CPU, "
                        "or here with emulated_bf16=True")
        return result
    try:
        runner, params = prepare(base_model, settings, compile_backend=compile_backend)
        lr = LR[settings.method]
        opt = make_optimizer(params, settings.optimizer, lr)
        result.losses.append(train_step(runner, params, opt, batches[0], settings))  # warm-up (and compilation)
    except Exception as err:  # noqa: BLE001 (a lever that cannot run here, e.g. no compiler: show the error)
        result.error = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
        return result
    with measure_peak_memory(pin_allocator=False) as peak:
        start = time.perf_counter()
        for step in range(1, num_steps + 1):
            result.losses.append(train_step(runner, params, opt, batches[step % len(batches)], settings))
        elapsed = time.perf_counter() - start
    result.ran = True
    result.step_time_s = elapsed / num_steps
    result.tokens_per_s = batch_size * seq_len * num_steps / elapsed
    result.resident_peak_gib = peak.peak_bytes / GIB
    if live_peak and params[0].device.type == "cpu":  # on CUDA the peak above is already live tensors only
        prof = profile_step(lambda: train_step(runner, params, opt, batches[0], settings))
        result.live_peak_gib = prof.live_peak_bytes / GIB
    return result


def run_ladder(base_model, batches, levers=tuple(LEVERS), *, num_steps: int = 3, live_peak: bool = True,
               compile_backend: str = "inductor", progress: bool = True, emulated_bf16: bool = True):
    """Every rung in ``levers`` (the plain step first), as a table: one row per rung, ratios against plain.
    ``emulated_bf16``: see ``run_rung``."""

    levers = list(levers)
    unknown = [lever for lever in levers if lever not in LEVERS]
    if unknown:
        raise LabkitError(f"Unknown lever(s) {unknown}: use names from {', '.join(LEVERS)}.")
    if "plain" not in levers:
        levers.insert(0, "plain")
    results = []
    iterator = levers
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(levers, desc="ladder")
    for lever in iterator:
        results.append(run_rung(base_model, batches, lever, num_steps=num_steps, live_peak=live_peak,
                                compile_backend=compile_backend, emulated_bf16=emulated_bf16))
    return ladder_table(results)


def ladder_table(results):
    """The rungs as a DataFrame, with speed and loss against the plain rung."""
    import pandas as pd

    rows = []
    for r in results:
        rows.append({"lever": r.lever, "ran": r.ran, "tokens_per_s": r.tokens_per_s, "step_time_s": r.step_time_s,
                     "resident_peak_gib": r.resident_peak_gib, "live_peak_gib": r.live_peak_gib,
                     "predicted_gib": r.predicted_gib, "first_loss": r.losses[0] if r.losses else float("nan"),
                     "final_loss": r.losses[-1] if r.losses else float("nan"), "error": r.error, "note": r.note})
    table = pd.DataFrame(rows).set_index("lever")
    if "plain" in table.index:
        plain = table.loc["plain"]
        table["speedup"] = table["tokens_per_s"] / plain["tokens_per_s"]
        table["loss_change"] = table["final_loss"] - plain["final_loss"]
    table["live_error"] = table["live_peak_gib"] / table["predicted_gib"] - 1
    return table


def loss_tolerance(table) -> float:
    """How far a rung's final loss may sit from the plain step's and still count as "no harm": a tenth of what the
    plain run gained over its steps (a lever that costs less than that is lost in batch-to-batch noise), plus
    bf16's rounding (2^-8 relative, its unit roundoff) of the loss itself."""
    plain = table.loc["plain"]
    return 0.1 * abs(plain["first_loss"] - plain["final_loss"]) + 2**-8 * abs(plain["final_loss"])


def loss_verdicts(table, tolerance: float):
    """'held' where a rung's final loss is within ``tolerance`` of the plain step's, else 'worse'/'better'."""
    if not tolerance > 0:
        raise LabkitError(f"tolerance must be a positive loss difference (e.g. the seed-to-seed spread), got {tolerance!r}.")

    def verdict(change):
        if math.isnan(change):
            return "did not run"
        return "held" if abs(change) <= tolerance else ("worse" if change > 0 else "better")

    return table["loss_change"].map(verdict)


def plot_ladder(table):
    """Two panels: tokens/s against the plain step, and peak memory (live, resident, predicted) per rung."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ran = table[table["ran"]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("speed vs the plain step (x)", "peak memory (GiB)"))
    fig.add_trace(go.Bar(x=ran.index, y=ran["speedup"], name="tokens/s ÷ plain", marker_color="#2a9d8f"), 1, 1)
    for col, name, colour in (("live_peak_gib", "live tensors (profiler)", "#264653"),
                              ("resident_peak_gib", "resident (VmHWM)", "#e9c46a"),
                              ("predicted_gib", "predicted", "#e76f51")):
        fig.add_trace(go.Bar(x=ran.index, y=ran[col], name=name, marker_color=colour), 1, 2)
    fig.add_hline(y=1.0, line_dash="dot", row=1, col=1)
    fig.update_layout(barmode="group", height=380, margin={"t": 50})
    return fig
