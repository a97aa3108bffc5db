"""Dated hardware table: memory, peak TFLOP/s per dtype, power and an hourly price, each with its source.

Prices are data, not constants: they change every few months and differ between providers by 2-3x. None of
them could be checked from this offline machine; each is an approximate on-demand list price for one GPU
(or a small CPU VM), with the page it comes from. Peak TFLOP/s are dense (no 2:4 sparsity) datasheet figures.

>>> get_hardware("T4").mem_gib
15.0
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError

DTYPES = ("fp32", "tf32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Hardware:
    """One accelerator (or CPU VM) with its memory, peak speed and price."""

    name: str  # short name used as the table key, e.g. "T4"
    about: str  # what exactly is meant (form factor, instance type)
    mem_gib: float  # memory usable for tensors, GiB (GPU: total as nvidia-smi reports it)
    peak_tflops: dict  # dtype -> dense peak TFLOP/s; a dtype the chip lacks is absent
    usd_per_hour: float  # approximate on-demand price of one unit
    price_date: str  # when the price was listed (YYYY-MM)
    source: str  # where the price and the speeds come from
    watts: float | None = None  # board power (GPU: the datasheet's max TDP) or the VM's share of its CPU's TDP

    def __post_init__(self):
        if self.mem_gib <= 0 or self.usd_per_hour < 0:
            raise LabkitError(f"{self.name}: mem_gib must be positive and usd_per_hour non-negative.")
        unknown = set(self.peak_tflops) - set(DTYPES)
        if unknown:
            raise LabkitError(f"{self.name}: unknown dtypes {sorted(unknown)} in peak_tflops; use {DTYPES}.")

    def tflops(self, dtype: str) -> float:
        """Peak TFLOP/s for ``dtype`` ('fp16' and 'bf16' share tensor cores; 'tf32' falls back to fp32)."""
        if dtype not in DTYPES:
            raise LabkitError(f"Unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
        if dtype in self.peak_tflops:
            return self.peak_tflops[dtype]
        if dtype == "tf32":
            return self.peak_tflops["fp32"]
        supported = ", ".join(self.peak_tflops)
        raise LabkitError(f"{self.name} has no fast {dtype} path: use one of {supported}"
                          + (" (T4 has no bf16: use fp16)." if dtype == "bf16" and self.name == "T4" else "."))


_NV = "NVIDIA datasheet (dense figures; watts: max board power)"
_PRICES_2026 = "mercatus-ai.com/blog/cloud-gpu-pricing, 'specialty provider' on-demand range (middle), May 2026"

HARDWARE: dict[str, Hardware] = {h.name: h for h in (
    Hardware("cpu", "2 physical cores (4 vCPU) cloud VM, e.g. AWS m7i.xlarge, 16 GiB", 16.0,
             {"fp32": 0.4},  # 2 cores x 2 AVX-512 FMA units x 16 fp32 lanes x 2 FLOP x ~3 GHz
             0.20, "2025-06",
             "approx. AWS on-demand list price, us-east-1, aws.amazon.com/ec2/pricing/on-demand; speed from the "
             "core count and vector width (not measured); watts: 2 of the 48 cores of the m7i's Xeon Platinum 8488C, "
             "350 W TDP (Intel ARK), pro rata", 15.0),
    Hardware("T4", "NVIDIA T4 16 GB (Colab free tier, AWS g4dn.xlarge)", 15.0,
             {"fp32": 8.1, "fp16": 65.0, "int8": 130.0},
             0.53, "2025-06", f"approx. AWS g4dn.xlarge on-demand list price, us-east-1; {_NV}", 70.0),
    Hardware("L4", "NVIDIA L4 24 GB (GCP g2-standard-4)", 22.5,
             {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0, "int8": 242.0},
             0.71, "2025-06", f"approx. GCP g2-standard-4 on-demand list price, us-central1; {_NV}", 72.0),
    Hardware("A10G", "NVIDIA A10G 24 GB (AWS g5.xlarge)", 22.5,
             {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0, "int8": 250.0},
             1.01, "2025-06", "approx. AWS g5.xlarge on-demand list price, us-east-1; speeds from the NVIDIA A10 "
                              "datasheet (AWS's A10G variant is close, not identical)", 150.0),
    Hardware("A100-40GB", "NVIDIA A100 SXM4 40 GB", 40.0,
             {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
             1.29, "2025-06", f"approx. Lambda on-demand list price (lambda.ai/pricing), 1x A100 40 GB; {_NV}", 400.0),
    Hardware("A100-80GB", "NVIDIA A100 SXM4 80 GB", 80.0,
             {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
             1.30, "2026-05", f"{_PRICES_2026} ($1.10-1.50); {_NV}", 400.0),
    Hardware("H100", "NVIDIA H100 SXM5 80 GB", 79.6,
             {"fp32": 67.0, "tf32": 495.0, "bf16": 989.0, "fp16": 989.0, "int8": 1979.0},
             3.00, "2026-05", f"{_PRICES_2026} ($2.50-3.50); {_NV}", 700.0),
    Hardware("H200", "NVIDIA H200 SXM 141 GB (H100 compute, more and faster memory)", 140.4,
             {"fp32": 67.0, "tf32": 495.0, "bf16": 989.0, "fp16": 989.0, "int8": 1979.0},
             4.00, "2026-05", f"{_PRICES_2026} ($3.50-4.50); {_NV}", 700.0),
)}


def get_hardware(name) -> Hardware:
    """The table entry called ``name`` (case-insensitive); a Hardware passes through."""
    if isinstance(name, Hardware):
        return name
    by_lower = {key.lower(): hw for key, hw in HARDWARE.items()}
    aliases = {"a100": "a100-80gb", "a100-40": "a100-40gb", "a100-80": "a100-80gb", "h100-80gb": "h100"}
    key = str(name).strip().lower()
    key = aliases.get(key, key)
    if key not in by_lower:
        raise LabkitError(f"Unknown hardware {name!r}: use one of {', '.join(HARDWARE)}.")
    return by_lower[key]
