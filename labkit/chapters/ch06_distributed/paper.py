"""Formulas on paper: the ZeRO paper's model-state bytes per rank, the alpha-beta fit of collectives, and a model of
step time, memory and cost per GPU from 1 to 1,024 GPUs, checked against published figures.

Sources (each cited once here):
- ZeRO: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", SC 2020
  (arXiv:1910.02054), section 5 and Figure 1: mixed-precision Adam holds 2Ψ (fp16 params) + 2Ψ (fp16 grads) + KΨ
  (K = 12: fp32 params, momentum, variance); ZeRO-1 divides KΨ by N, ZeRO-2 also the grads, ZeRO-3 also the params.
  Figure 1's example (Ψ = 7.5B, N = 64): 120 GB, 31.4 GB, 16.6 GB, 1.9 GB per device. Section 7: ZeRO-3's
  communication is 1.5x data parallelism's (3Ψ instead of 2Ψ elements per rank and step).
- Llama 2: Touvron et al. 2023 (arXiv:2307.09288), Table 2: 184,320 A100-80GB GPU-hours for 7B and 1,720,320 for
  70B, both on 2.0T tokens.
- Link bandwidths, one direction per GPU: NVLink 4 on H100 SXM 450 GB/s (NVIDIA H100 datasheet: 900 GB/s both
  directions); InfiniBand NDR 400 Gb/s = 50 GB/s (one ConnectX-7 per GPU, NVIDIA DGX H100 user guide); Ethernet
  100 GbE = 12.5 GB/s. Latencies are order-of-magnitude assumptions, not measurements: NVLink 3 µs, InfiniBand
  5 µs, Ethernet (TCP) 30 µs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core import LabkitError
from ...units import GIB

ZERO_K = 12  # bytes of optimizer state per parameter for mixed-precision Adam (ZeRO paper)
STAGES = (0, 1, 2, 3)
OFFLOADS = ("none", "optimizer", "optimizer+params")  # ZeRO-Offload moves optimizer state; ZeRO-Infinity params too
INTERCONNECTS = {  # name -> (bandwidth bytes/s one direction per GPU, latency s per hop); sources in the header
    "NVLink": (450e9, 3e-6), "InfiniBand": (50e9, 5e-6), "Ethernet": (12.5e9, 30e-6)}
ZERO_FIGURE1 = {"psi": 7.5e9, "world": 64, "gb": {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}}  # ZeRO paper, Figure 1
LLAMA2_GPU_HOURS = {7e9: 184_320, 70e9: 1_720_320}  # Llama 2 paper, Table 2 (A100-80GB, 2.0T tokens)
LLAMA2_TOKENS = 2.0e12


def _check_world_stage(world, stage) -> None:
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise LabkitError(f"The world size must be a whole number of ranks >= 1, got {world!r}.")
    if stage not in STAGES:
        raise LabkitError(f"ZeRO stage must be 0, 1, 2 or 3 (0 = plain data parallelism), got {stage!r}.")


def zero_bytes(n_params: float, world: int, stage: int, *, param_bytes: float = 2, grad_bytes: float = 2,
               k: float = ZERO_K) -> dict:
    """Model-state bytes one rank holds under ZeRO ``stage``: {"params", "grads", "optim", "total"}.

    >>> zero_bytes(7.5e9, 64, 1)["total"] / 1e9  # ZeRO paper Figure 1: 31.4 GB
    31.40625
    """
    _check_world_stage(world, stage)
    if n_params <= 0:
        raise LabkitError(f"n_params must be positive, got {n_params!r}.")
    out = {"params": param_bytes * n_params / (world if stage >= 3 else 1),
           "grads": grad_bytes * n_params / (world if stage >= 2 else 1),
           "optim": k * n_params / (world if stage >= 1 else 1)}
    out["total"] = out["params"] + out["grads"] + out["optim"]
    return out


# what each measured run is, in the paper's terms: (stage at rest, stage of the parameters inside a step, K for fp32)
# K is 12 for DeepSpeed (an fp32 master copy + Adam's two moments, even in fp32) and 8 for torch (the two moments)
EXPERIMENT_STAGES = {"ddp": (0, 0, 8), "zero_redundancy": (1, 1, 8), "zero1": (1, 1, 12), "zero2": (2, 2, 12),
                     "zero3": (3, 3, 12), "fsdp2_reshard": (3, 3, 8), "fsdp2_no_reshard": (3, 2, 8)}
ENGINE_NAMES = {"ddp": "DDP (torchrun)", "zero_redundancy": "ZeroRedundancyOptimizer (torchrun)",
                "zero1": "DeepSpeed ZeRO-1", "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3",
                "fsdp2_reshard": "FSDP2 reshard on", "fsdp2_no_reshard": "FSDP2 reshard off"}


def shard_table(results: dict, single: dict):
    """Measured bytes per rank (the larger rank) beside the ZeRO formula's, and the loss gap to one process."""
    import pandas as pd

    rows = []
    for name, (stage, step_stage, k) in EXPERIMENT_STAGES.items():
        if name not in results:
            continue
        ranks = results[name]
        world = len(ranks)
        want = zero_bytes(single["n_params"], world, stage, param_bytes=4, grad_bytes=4, k=k)
        in_step = zero_bytes(single["n_params"], world, step_stage, param_bytes=4, grad_bytes=4, k=k)["params"]
        for part, measured_key, predicted in (("params", "param_bytes", want["params"]),
                                              ("params in step", "param_bytes_in_step", in_step),
                                              ("grads", "grad_bytes", want["grads"]),
                                              ("optimizer", "optim_bytes", want["optim"])):
            measured = max(r[measured_key] for r in ranks)
            rows.append({"engine": ENGINE_NAMES[name], "experiment": name, "part": part, "measured_mib":
                         measured / 2**20, "predicted_mib": predicted / 2**20,
                         "error": measured / predicted - 1})
        gap = max(abs(a - b) for r in ranks for a, b in zip(r["losses"], single["losses"]))
        rows[-1]["loss_gap"] = gap
    return pd.DataFrame(rows)


# ---- collectives -----------------------------------------------------------------------------------------------------


def ring_allreduce_bytes(n_bytes: float, world: int) -> float:
    """Bytes each rank sends in a ring all-reduce of ``n_bytes``: reduce-scatter then all-gather, 2(N-1)/N · n."""
    _check_world_stage(world, 0)
    return 2 * (world - 1) / world * n_bytes


SEND_FACTOR = {"all_reduce": lambda n: 2 * (n - 1) / n, "reduce_scatter": lambda n: (n - 1) / n,
               "all_gather": lambda n: float(n - 1)}  # bytes sent per rank / input bytes per rank (ring algorithms)


def fit_alpha_beta(rows, world: int):
    """Fit time = alpha + bytes_sent / bandwidth per collective (least squares). Returns a DataFrame."""
    import numpy as np
    import pandas as pd

    table = pd.DataFrame([r for r in rows if r.get("time_s") is not None])
    if table.empty:
        raise LabkitError("No timed collectives to fit: run the 'collectives' experiment first.")
    out = []
    for name, part in table.groupby("collective"):
        sent = part["bytes"] * SEND_FACTOR[name](world)
        slope, alpha = np.polyfit(sent, part["time_s"], 1)
        out.append({"collective": name, "alpha_us": alpha * 1e6, "bandwidth_gbs": 1 / slope / 1e9 if slope > 0
                    else float("inf"), "points": len(part)})
    return pd.DataFrame(out)


# ---- the cluster model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """One training set-up on paper."""

    n_params: float = 7e9  # model size, parameters
    gpus: int = 8  # number of GPUs (data-parallel ranks)
    stage: int = 3  # ZeRO stage 0-3 (FSDP full sharding = 3, FSDP SHARD_GRAD_OP = 2)
    offload: str = "none"  # "none", "optimizer" (ZeRO-Offload) or "optimizer+params" (ZeRO-Infinity)
    interconnect: str = "InfiniBand"  # link between GPUs: "NVLink", "InfiniBand" or "Ethernet"
    tokens_per_step: float = 4e6  # global batch in tokens (Llama 2 used 4M)
    gpu: str = "A100-80GB"  # a name in labkit.meters.HARDWARE
    mfu: float = 0.4  # share of the bf16 peak the math reaches (what Llama 2's GPU-hours imply, ~0.4)

    def __post_init__(self):
        _check_world_stage(self.gpus, self.stage)
        if self.offload not in OFFLOADS:
            raise LabkitError(f"offload must be one of {OFFLOADS}, got {self.offload!r}.")
        if self.offload == "optimizer+params" and self.stage < 3:
            raise LabkitError("Offloading the parameters (ZeRO-Infinity) needs stage 3: use stage=3, or "
                              "offload='optimizer'.")
        if self.interconnect not in INTERCONNECTS:
            raise LabkitError(f"interconnect must be one of {tuple(INTERCONNECTS)}, got {self.interconnect!r}.")
        if self.n_params <= 0 or self.tokens_per_step <= 0 or not 0 < self.mfu <= 1:
            raise LabkitError("n_params and tokens_per_step must be positive and mfu in (0, 1].")


@dataclass
class ClusterPlan:
    """Per-GPU memory and per-step time and cost of a Cluster."""

    mem_gib: dict  # params, grads, optim on each GPU (model states only: activations come on top), GiB
    compute_s: float  # seconds of math per step: 6·N·tokens / (gpus · peak · MFU)
    comm_s: float  # seconds of gradient/parameter traffic per step (alpha-beta ring model, no overlap)
    step_s: float  # compute_s + comm_s
    efficiency: float  # compute_s / step_s: the share of the step doing math
    cost_usd: float  # dollars per step for all the GPUs
    fits: bool  # the model states fit in one GPU's memory

    @property
    def total_gib(self) -> float:
        return sum(self.mem_gib.values())


def plan_cluster(c: Cluster) -> ClusterPlan:
    """Memory per GPU (ZeRO formula, offload removes parts) and step time (6·N·D compute + ring traffic)."""
    from ...meters import HARDWARE

    hw = HARDWARE[c.gpu]
    parts = zero_bytes(c.n_params, c.gpus, c.stage)
    del parts["total"]
    if c.offload != "none":
        parts["optim"] = 0.0
    if c.offload == "optimizer+params":
        parts["params"] = 0.0
    mem = {k: v / GIB for k, v in parts.items()}
    compute_s = 6 * c.n_params * c.tokens_per_step / (c.gpus * hw.tflops("bf16") * 1e12 * c.mfu)
    bandwidth, latency = INTERCONNECTS[c.interconnect]
    comm_s = 0.0
    if c.gpus > 1:
        grad_bytes = 2 * c.n_params  # bf16 gradients, reduced once per step
        volume = ring_allreduce_bytes(grad_bytes, c.gpus) * (1.5 if c.stage == 3 else 1.0)
        comm_s = volume / bandwidth + 2 * (c.gpus - 1) * latency
    step_s = compute_s + comm_s
    return ClusterPlan(mem, compute_s, comm_s, step_s, compute_s / step_s,
                       c.gpus * hw.usd_per_hour * step_s / 3600, sum(mem.values()) <= hw.mem_gib)


def scaling_table(n_params: float = 7e9, gpu_counts=(1, 8, 64, 256, 1024), **kw):
    """Step time, efficiency and memory per GPU for each GPU count (and each interconnect)."""
    import pandas as pd

    rows = []
    for link in INTERCONNECTS:
        for g in gpu_counts:
            plan = plan_cluster(Cluster(n_params=n_params, gpus=g, interconnect=link, **kw))
            rows.append({"interconnect": link, "gpus": g, "step_s": plan.step_s, "efficiency": plan.efficiency,
                         "mem_gib": plan.total_gib, "cost_usd_per_step": plan.cost_usd})
    return pd.DataFrame(rows)


def published_checks(mfu: float = 0.4):
    """The model against published figures: ZeRO Figure 1 (memory) and Llama 2's GPU-hours (compute)."""
    import pandas as pd

    rows = []
    for stage, gb in ZERO_FIGURE1["gb"].items():
        ours = zero_bytes(ZERO_FIGURE1["psi"], ZERO_FIGURE1["world"], stage)["total"] / 1e9
        rows.append({"figure": f"ZeRO paper Fig. 1, 7.5B on 64 GPUs, stage {stage} (GB/GPU)", "published": gb,
                     "model": ours, "error": ours / gb - 1, "tolerance": 0.05})
    from ...meters import HARDWARE

    peak = HARDWARE["A100-80GB"].tflops("bf16") * 1e12
    for n, hours in LLAMA2_GPU_HOURS.items():
        ours = 6 * n * LLAMA2_TOKENS / (peak * mfu) / 3600
        rows.append({"figure": f"Llama 2 {n / 1e9:.0f}B GPU-hours on 2.0T tokens (MFU {mfu:.2f})",
                     "published": hours, "model": ours, "error": ours / hours - 1, "tolerance": 0.15})
    table = pd.DataFrame(rows)
    table["holds"] = table["error"].abs() <= table["tolerance"]
    return table


def deepspeed_estimate_gib(n_params: int, largest_layer_params: int, gpus: int, offload: str = "none") -> float:
    """DeepSpeed's own estimate of ZeRO-3 model-state memory per GPU (its estimator's formula), GiB."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    _, gpu_bytes, _ = estimate_zero3_model_states_mem_needs(
        total_params=n_params, largest_layer_params=largest_layer_params, num_gpus_per_node=min(gpus, 8),
        num_nodes=max(1, gpus // 8), cpu_offload=offload != "none", cpu_offload_params=offload == "optimizer+params",
        zero_init=True, additional_buffer_factor=1.0)
    return gpu_bytes / GIB
