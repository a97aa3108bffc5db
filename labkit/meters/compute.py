"""Training FLOPs, measured throughput, time and dollars on the hardware table, and "will it fit"."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core import LabkitError
from ..fourbit import training_layout
from ..methods import get_method
from ..units import GIB
from .arch import dims, display_name, positive_int, resolve_config
from .hardware import HARDWARE, get_hardware
from .memory import MemoryEstimate, predict_memory
from .params import analytic_trainable_params

DEFAULT_MFU = 0.35  # assumed share of peak speed a fine-tuning run reaches (typically 0.3-0.5 on GPUs; measure it)


def training_flops(n_params: int, n_tokens: int, *, trainable_params: int | None = None) -> float:
    """FLOPs to train on ``n_tokens``: 6·N·D for full fine-tuning, 4·N·D + 2·N_trainable·D otherwise.

    Per token and parameter a matmul costs 2 FLOPs forward, 2 for the gradient with respect to its input and 2
    for the gradient of the weight (Kaplan et al. 2020, "Scaling Laws", section 2.1: C = 6ND). A frozen weight
    still passes gradients back to earlier layers but needs no weight gradient. ``n_params`` counts every
    parameter in the forward pass (frozen and trainable), so this equals 4·N_frozen·D + 6·N_trainable·D.

    >>> training_flops(1e9, 1e6)
    6000000000000000.0
    """
    if n_params <= 0 or n_tokens <= 0:
        raise LabkitError(f"n_params and n_tokens must be positive, got {n_params} and {n_tokens}.")
    if trainable_params is None:
        return 6.0 * n_params * n_tokens
    if not 0 <= trainable_params <= n_params:
        raise LabkitError(f"trainable_params must be between 0 and n_params ({n_params}), got {trainable_params}.")
    return 4.0 * n_params * n_tokens + 2.0 * trainable_params * n_tokens


def matmul_params(config) -> int:
    """Parameters that cost FLOPs per token: all but the embedding lookup, plus the head's matmul even if tied."""
    d = dims(config)
    return d.total - d.vocab * d.hidden + (d.vocab * d.hidden if d.tied else 0)


def estimate_time_s(flops: float, hardware="A100-80GB", dtype: str = "bf16", *, mfu: float = DEFAULT_MFU) -> float:
    """Seconds to do ``flops`` on one unit of ``hardware`` running at ``mfu`` of its peak for ``dtype``."""
    if not 0 < mfu <= 1:
        raise LabkitError(f"mfu is a fraction of peak speed in (0, 1], got {mfu!r}.")
    return flops / (get_hardware(hardware).tflops(dtype) * 1e12 * mfu)


def estimate_cost(flops: float, hardware="A100-80GB", dtype: str = "bf16", *, mfu: float = DEFAULT_MFU) -> float:
    """Dollars (cost_usd) to do ``flops`` on ``hardware`` at its table price."""
    return estimate_time_s(flops, hardware, dtype, mfu=mfu) / 3600 * get_hardware(hardware).usd_per_hour


def measure_matmul_tflops(*, dtype: str = "fp32", size: int = 1024, repeats: int = 8, device: str = "cpu",
                          max_seconds: float = 3.0) -> float:
    """This machine's matmul speed in TFLOP/s: the best of ``repeats`` timed ``size`` x ``size`` products.

    A square matmul does 2·size³ FLOPs. The best time, not the mean, estimates what the hardware can do when
    nothing else runs; this is the peak a run's MFU (model FLOPs utilisation) is measured against. Timing stops
    early once ``max_seconds`` have gone (after at least one timed product): a CPU without bf16 instructions
    emulates bf16 some 50x slower than fp32, and eight such products would take the better part of a minute.
    """
    import torch

    positive_int("size", size, "try 1024")
    positive_int("repeats", repeats, "try 8")
    if not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
        raise LabkitError(f"max_seconds must be a positive number of seconds (try 3), got {max_seconds!r}.")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in dtypes:
        raise LabkitError(f"Unknown dtype {dtype!r} for the matmul benchmark: use one of {', '.join(dtypes)}.")
    a, b = (torch.randn(size, size, device=device).to(dtypes[dtype]) for _ in range(2))
    best, began = float("inf"), time.perf_counter()
    for i in range(repeats + 1):  # the first product warms up the kernels and is not timed
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - start)
            if time.perf_counter() - began > max_seconds:
                break
    return 2 * size**3 / best / 1e12


def measure_copy_bandwidth_gbs(*, size_mib: int = 256, repeats: int = 5, device: str = "cpu") -> float:
    """This machine's memory bandwidth in GB/s: the best of ``repeats`` torch copies of ``size_mib`` MiB.

    A copy reads every byte once and writes it once, so it moves 2·size bytes. The buffer must be larger than the
    caches, or the benchmark measures the cache instead of memory. Decode speed and other memory-bound steps are
    predicted against this number (a roofline).
    """
    import torch

    if not isinstance(size_mib, int) or size_mib < 8:
        raise LabkitError(f"size_mib must be a whole number >= 8 (larger than the CPU caches; try 256), got {size_mib!r}.")
    positive_int("repeats", repeats, "try 5")
    src = torch.ones(size_mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for i in range(repeats + 1):  # the first copy also faults the pages in and is not timed
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * src.element_size() / best / 1e9


def time_to_train_s(n_tokens: float, tokens_per_s: float) -> float:
    """Seconds to train on ``n_tokens`` at a measured ``tokens_per_s``."""
    if n_tokens <= 0 or tokens_per_s <= 0:
        raise LabkitError("n_tokens and tokens_per_s must be positive.")
    return n_tokens / tokens_per_s


@dataclass(frozen=True)
class Throughput:
    """Measured training speed."""

    tokens_per_s: float  # tokens processed per second (forward, backward and optimizer step)
    time_s: float  # wall time of the timed steps
    num_steps: int  # timed steps (after one warm-up step)
    tflops_per_s: float  # achieved TFLOP/s by training_flops' count

    def __str__(self) -> str:
        return f"{self.tokens_per_s:,.0f} tokens/s ({self.tflops_per_s:.3f} TFLOP/s achieved)"


def measure_throughput(model, *, batch_size: int = 4, seq_len: int = 128, num_steps: int = 3) -> Throughput:
    """Time real training steps on random tokens (lr=0, so the weights do not change)."""
    import torch

    positive_int("batch_size", batch_size, "try 4")
    positive_int("seq_len", seq_len, "try 128")
    positive_int("num_steps", num_steps, "try 3")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabkitError("This model has no trainable parameters: apply a method first (lk.apply_method).")
    device = next(model.parameters()).device
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), device=device)
    opt = torch.optim.AdamW(params, lr=0.0)
    was_training = model.training
    model.train()
    try:
        with training_layout(model):  # the timed steps run the kernels a real training step runs
            for step in range(num_steps + 1):
                if step == 1:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                model(input_ids=ids, labels=ids).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
    finally:
        model.train(was_training)
    n_tokens = batch_size * seq_len * num_steps
    n_all = sum(p.numel() for p in model.parameters())
    flops = training_flops(n_all, n_tokens, trainable_params=sum(p.numel() for p in params))
    return Throughput(n_tokens / elapsed, elapsed, num_steps, flops / elapsed / 1e12)


@dataclass(frozen=True)
class FitReport:
    """Whether a training setup fits in one device's memory, computed from the config alone."""

    model: str  # short model name
    method: str  # method name
    rank: int | None  # LoRA-family rank, None for other methods
    hardware: str  # hardware table name
    need_gib: float  # predicted peak, GiB
    capacity_gib: float  # the device's memory, GiB
    fits: bool  # need_gib <= capacity_gib
    estimate: MemoryEstimate  # the full breakdown

    def __str__(self) -> str:
        title = get_method(self.method).title + (f" r={self.rank}" if self.rank else "")
        article = "an" if self.hardware[0] in "AH" else "a"
        where = "on the CPU" if self.hardware == "cpu" else f"on {article} {self.hardware}"
        verdict = "fits" if self.fits else "does not fit"
        return f"{self.model} {title} {where}: {verdict}, ~{self.need_gib:.1f} GiB of {self.capacity_gib:g}"


def will_it_fit(model_id_or_config, method: str, gpu: str = "T4", *, rank: int = 16, batch_size: int = 1,
                seq_len: int = 512, dtype: str | None = None, optimizer: str = "adamw",
                grad_checkpointing: bool | None = None, **method_kw) -> FitReport:
    """Predict from the config alone (no weights downloaded) whether training fits on ``gpu``.

    ``dtype=None`` picks bf16, or fp16 where the GPU lacks bf16 (T4), fp32 on the CPU;
    ``grad_checkpointing=None`` turns it on where the method needs a quantized base (QLoRA), as peft's k-bit
    preparation does by default.

    >>> print(will_it_fit("mistralai/Mistral-7B-v0.3", "qlora", "T4", rank=16))
    Mistral-7B-v0.3 QLoRA r=16 on a T4: fits, ~5.8 GiB of 15
    """
    hw = get_hardware(gpu)
    device = "cpu" if hw.name == "cpu" else "cuda"
    if dtype is None:
        dtype = "fp32" if device == "cpu" else ("bf16" if "bf16" in hw.peak_tflops else "fp16")
    hw.tflops(dtype)  # a clear error for bf16 on a T4
    spec = get_method(method)
    if grad_checkpointing is None:
        grad_checkpointing = spec.base_quantization is not None
    config = resolve_config(model_id_or_config)
    ranked = spec.size_knob == "rank"  # rank applies to the LoRA family only
    extra = {"rank": rank} if ranked else {}
    est = predict_memory(config, method, dtype=dtype, optimizer=optimizer, batch_size=batch_size, seq_len=seq_len,
                         grad_checkpointing=grad_checkpointing, device=device, **extra, **method_kw)
    name = display_name(model_id_or_config if isinstance(model_id_or_config, str) else config)
    return FitReport(name, method, rank if ranked else None, hw.name, est.total_gib, hw.mem_gib,
                     est.total <= hw.mem_gib * GIB, est)


def compare_costs(model_id_or_config, n_tokens: float, *, methods=("full", "lora", "qlora"), hardware=None,
                  rank: int = 16, batch_size: int = 1, seq_len: int = 512, mfu: float = DEFAULT_MFU):
    """Table of memory, fit, time and cost_usd to train ``n_tokens`` for each method on each hardware."""
    import pandas as pd

    config = resolve_config(model_id_or_config)
    n_all = matmul_params(config)
    rows = []
    for name in hardware or [h for h in HARDWARE if h != "cpu"]:
        hw = get_hardware(name)
        for method in methods:
            report = will_it_fit(config, method, hw.name, rank=rank, batch_size=batch_size, seq_len=seq_len)
            dtype = "fp32" if hw.name == "cpu" else ("bf16" if "bf16" in hw.peak_tflops else "fp16")
            kw = {"rank": rank} if get_method(method).size_knob == "rank" else {}
            trainable = analytic_trainable_params(config, method, **kw)
            # full fine-tuning trains every matmul weight (and the embeddings): capped, that is 6·N·D
            flops = training_flops(n_all, n_tokens, trainable_params=min(trainable, n_all))
            time_s = estimate_time_s(flops, hw, dtype, mfu=mfu)
            rows.append({"method": method, "hardware": hw.name, "mem_gib": report.need_gib, "fits": report.fits,
                         "time_s": time_s, "cost_usd": time_s / 3600 * hw.usd_per_hour})
    return pd.DataFrame(rows)
