"""Meters: parameters, memory (predicted and measured), FLOPs, time and dollars.

>>> import labkit as lk
>>> print(lk.meters.will_it_fit("mistralai/Mistral-7B-v0.3", "qlora", "T4", rank=16))  # doctest: +SKIP
Mistral-7B-v0.3 QLoRA r=16 on a T4: fits, ~5.8 GiB of 15
"""

from .arch import ALIASES, dims, display_name, known_configs, resolve_config
from .compute import (
    DEFAULT_MFU,
    FitReport,
    Throughput,
    compare_costs,
    estimate_cost,
    estimate_time_s,
    matmul_params,
    measure_copy_bandwidth_gbs,
    measure_matmul_tflops,
    measure_throughput,
    time_to_train_s,
    training_flops,
    will_it_fit,
)
from .hardware import HARDWARE, Hardware, get_hardware
from .measure import (
    PeakMemory,
    measure_live_peak,
    measure_peak_memory,
    pin_glibc_allocator,
    tensor_bytes,
    unpin_glibc_allocator,
)
from .memory import MemoryEstimate, predict_memory, sweep_memory
from .params import (
    METHODS,
    ParamSummary,
    analytic_storage_bytes,
    analytic_total_params,
    analytic_trainable_params,
    param_summary,
    param_table,
    storage_bytes,
)

__all__ = [
    "ALIASES",
    "DEFAULT_MFU",
    "HARDWARE",
    "KNOWN_CONFIGS",
    "METHODS",
    "FitReport",
    "Hardware",
    "MemoryEstimate",
    "ParamSummary",
    "PeakMemory",
    "Throughput",
    "analytic_storage_bytes",
    "analytic_total_params",
    "analytic_trainable_params",
    "compare_costs",
    "dims",
    "display_name",
    "estimate_cost",
    "estimate_time_s",
    "get_hardware",
    "known_configs",
    "matmul_params",
    "measure_copy_bandwidth_gbs",
    "measure_live_peak",
    "measure_matmul_tflops",
    "measure_peak_memory",
    "measure_throughput",
    "param_summary",
    "param_table",
    "pin_glibc_allocator",
    "predict_memory",
    "resolve_config",
    "storage_bytes",
    "sweep_memory",
    "tensor_bytes",
    "time_to_train_s",
    "training_flops",
    "unpin_glibc_allocator",
    "will_it_fit",
]


def __getattr__(name: str):
    if name == "KNOWN_CONFIGS":  # built on access (fresh copies): importing the meters stays free of transformers
        return known_configs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
