"""Know the machine: cores and threads, memory bandwidth, matmul speed per dtype, a roofline next to the kit's GPU
table, the kit's training step against its prediction, and which GPU fits which model and method."""

from __future__ import annotations

import os
from pathlib import Path

from ...core import LabkitError
from ...meters import (
    HARDWARE,
    get_hardware,
    measure_copy_bandwidth_gbs,
    measure_matmul_tflops,
    training_flops,
    will_it_fit,
)

# Memory bandwidth of the GPUs in the kit's table, GB/s (NVIDIA datasheets; the table itself has no such column).
GPU_BANDWIDTH_GBS = {
    "T4": 320.0,  # NVIDIA T4 datasheet: 320+ GB/s GDDR6
    "L4": 300.0,  # NVIDIA L4 datasheet
    "A10G": 600.0,  # NVIDIA A10 datasheet (AWS's A10G is close)
    "A100-40GB": 1555.0,  # NVIDIA A100 datasheet, SXM4 40 GB HBM2
    "A100-80GB": 2039.0,  # NVIDIA A100 datasheet, SXM4 80 GB HBM2e
    "H100": 3350.0,  # NVIDIA H100 datasheet, SXM5 HBM3
    "H200": 4800.0,  # NVIDIA H200 datasheet, HBM3e
}
FIT_MODELS = ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-1.7B", "meta-llama/Llama-3.2-3B",
              "mistralai/Mistral-7B-v0.3", "meta-llama/Llama-3.1-8B")
FIT_METHODS = ("full", "lora", "qlora")


def cpu_info() -> dict:
    """Cores, threads and the processor: logical CPUs, physical cores, torch's threads, bf16-capable instructions."""
    import torch

    text = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    cores = {(block.get("physical id"), block.get("core id")) for block in _blocks(text)}
    flags = next((b.get("flags", "") for b in _blocks(text)), "").split()
    name = next((b.get("model name") for b in _blocks(text) if b.get("model name")), None)
    return {"processor": name or "unknown", "logical_cpus": os.cpu_count(),
            "physical_cores": len(cores) if text and None not in {c for pair in cores for c in pair} else None,
            "torch_threads": torch.get_num_threads(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "avx2": "avx2" in flags}


def _blocks(text: str):
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def measure_machine(*, size: int = 1024, size_mib: int = 256, repeats: int = 5) -> dict:
    """This machine's copy bandwidth (GB/s) and fp32 / bf16 matmul speed (TFLOP/s), with the bf16 speed-up."""
    bandwidth = measure_copy_bandwidth_gbs(size_mib=size_mib, repeats=repeats)
    fp32 = measure_matmul_tflops(dtype="fp32", size=size, repeats=repeats)
    bf16 = measure_matmul_tflops(dtype="bf16", size=size, repeats=repeats)
    return {"copy_gbs": bandwidth, "fp32_tflops": fp32, "bf16_tflops": bf16, "bf16_speedup": bf16 / fp32,
            "ridge_flop_per_byte": fp32 * 1e12 / (bandwidth * 1e9)}


def roofline_table(measured: dict, *, name: str = "this machine"):
    """One row per device: peak TFLOP/s (fp32 and the fastest 16-bit), bandwidth GB/s and the ridge point."""
    import pandas as pd

    for key in ("copy_gbs", "fp32_tflops"):
        if key not in measured or not measured[key] > 0:
            raise LabkitError(f"measured needs a positive {key!r}: pass what measure_machine() returned.")
    rows = [{"device": name, "fp32_tflops": measured["fp32_tflops"],
             "half_tflops": measured.get("bf16_tflops", measured["fp32_tflops"]), "half_dtype": "bf16",
             "bandwidth_gbs": measured["copy_gbs"], "source": "measured here"}]
    for gpu, bandwidth in GPU_BANDWIDTH_GBS.items():
        hw = get_hardware(gpu)
        half = "bf16" if "bf16" in hw.peak_tflops else "fp16"
        rows.append({"device": gpu, "fp32_tflops": hw.tflops("fp32"), "half_tflops": hw.tflops(half),
                     "half_dtype": half, "bandwidth_gbs": bandwidth, "source": "datasheet (kit's table)"})
    table = pd.DataFrame(rows)
    table["ridge_flop_per_byte"] = table["half_tflops"] * 1e12 / (table["bandwidth_gbs"] * 1e9)
    return table


def attainable_tflops(peak_tflops: float, bandwidth_gbs: float, intensity) -> object:
    """The roofline: min(peak, bandwidth × arithmetic intensity) in TFLOP/s, for FLOP/byte ``intensity``."""
    import numpy as np

    if peak_tflops <= 0 or bandwidth_gbs <= 0:
        raise LabkitError("peak_tflops and bandwidth_gbs must be positive.")
    return np.minimum(peak_tflops, bandwidth_gbs * 1e9 * np.asarray(intensity, dtype=float) / 1e12)


def plot_roofline(table, points=None):
    """Log-log roofline per device (16-bit peak; fp32 dashed for this machine); ``points``: {label: (FLOP/B, TFLOP/s)}."""
    import numpy as np
    import plotly.graph_objects as go

    x = np.logspace(-1, 4, 200)
    fig = go.Figure()
    for _, row in table.iterrows():
        fig.add_scatter(x=x, y=attainable_tflops(row["half_tflops"], row["bandwidth_gbs"], x), mode="lines",
                        name=f"{row['device']} ({row['half_dtype']})")
    here = table.iloc[0]
    fig.add_scatter(x=x, y=attainable_tflops(here["fp32_tflops"], here["bandwidth_gbs"], x), mode="lines",
                    line={"dash": "dash"}, name=f"{here['device']} (fp32)")
    for label, (intensity, tflops) in (points or {}).items():
        fig.add_scatter(x=[intensity], y=[tflops], mode="markers+text", text=[label], textposition="top center",
                        marker={"size": 10}, name=label)
    fig.update_layout(title="Roofline: attainable TFLOP/s against arithmetic intensity",
                      xaxis={"type": "log", "title": "arithmetic intensity (FLOP per byte moved)"},
                      yaxis={"type": "log", "title": "TFLOP/s"}, height=480)
    return fig


def step_prediction(model, tokens_per_s: float, peak_tflops: float, *, tokens_per_step: int = 512) -> dict:
    """The kit's training step against a prediction at this machine's measured matmul peak (MFU = 1).

    ``intensity_flop_per_byte`` is a rough arithmetic intensity for the roofline: the step's FLOPs over its weights
    read three times (forward, and twice in the backward pass), activations left out.
    """
    if tokens_per_s <= 0 or peak_tflops <= 0:
        raise LabkitError("tokens_per_s and peak_tflops must be positive: pass measured numbers.")
    if not isinstance(tokens_per_step, int) or tokens_per_step < 1:
        raise LabkitError(f"tokens_per_step must be a positive whole number (batch_size x seq_len), "
                          f"got {tokens_per_step!r}.")
    params = list(model.parameters())
    n_all = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    flops_per_token = training_flops(n_all, 1, trainable_params=trainable)
    predicted = peak_tflops * 1e12 / flops_per_token
    return {"flops_per_token": flops_per_token, "predicted_tokens_per_s": predicted,
            "measured_tokens_per_s": tokens_per_s, "mfu": tokens_per_s / predicted,
            "achieved_tflops": tokens_per_s * flops_per_token / 1e12,
            "intensity_flop_per_byte": flops_per_token * tokens_per_step / (3 * weight_bytes)}


def decode_intensity(model) -> float:
    """Arithmetic intensity of one batch-1 decoding step: 2 FLOPs per weight over the weight's bytes."""
    params = list(model.parameters())
    return 2 * sum(p.numel() for p in params) / sum(p.numel() * p.element_size() for p in params)


def fit_grid(models=FIT_MODELS, methods=FIT_METHODS, gpus=None, *, seq_len: int = 512, batch_size: int = 1):
    """will_it_fit across the table: one row per (model, method, GPU) with the predicted GiB and whether it fits."""
    import pandas as pd

    gpus = list(gpus) if gpus is not None else [name for name in HARDWARE if name != "cpu"]
    if not models or not methods or not gpus:
        raise LabkitError("fit_grid needs at least one model, one method and one GPU.")
    rows = []
    for model in models:
        for method in methods:
            for gpu in gpus:
                report = will_it_fit(model, method, gpu, seq_len=seq_len, batch_size=batch_size)
                rows.append({"model": report.model, "method": method, "gpu": report.hardware,
                             "need_gib": report.need_gib, "capacity_gib": report.capacity_gib, "fits": report.fits})
    return pd.DataFrame(rows)


def plot_fit_grid(grid):
    """Heat map: rows model × method, columns GPUs; colour = needed / available memory (below 1 fits)."""
    import numpy as np
    import plotly.graph_objects as go

    grid = grid.assign(row=grid["model"] + " · " + grid["method"], ratio=grid["need_gib"] / grid["capacity_gib"])
    pivot = grid.pivot(index="row", columns="gpu", values="ratio").reindex(columns=list(dict.fromkeys(grid["gpu"])))
    pivot = pivot.reindex(list(dict.fromkeys(grid["row"])))
    text = np.where(pivot.to_numpy() <= 1, "fits", "no")
    fig = go.Figure(go.Heatmap(z=np.log2(pivot.to_numpy()), x=list(pivot.columns), y=list(pivot.index), text=text,
                               texttemplate="%{text}", colorscale="RdYlGn_r", zmid=0,
                               colorbar={"title": "log2(need / memory)"}))
    fig.update_layout(title="will_it_fit across the kit's GPU table (seq 512, batch 1)", height=520,
                      yaxis={"autorange": "reversed"})
    return fig


def bf16_on(gpu: str) -> str:
    """What the kit does about bf16 on ``gpu``: the dtype lk.train's autocast and will_it_fit pick there."""
    hw = get_hardware(gpu)
    if "bf16" in hw.peak_tflops:
        return f"{hw.name}: bf16 at {hw.tflops('bf16'):g} TFLOP/s, so the kit trains in bf16."
    try:
        hw.tflops("bf16")
    except LabkitError as err:
        return (f"{hw.name}: {err} The kit falls back to fp16 with a GradScaler (lk.train's mixed_precision='auto'), "
                f"{hw.tflops('fp16'):g} TFLOP/s.")
    return f"{hw.name}: no bf16 figure."
