"""One ledger row per training run: its settings, the meters' prediction and what was measured (labkit.ledger)."""

from __future__ import annotations

import dataclasses

from .. import ledger
from ..core import LabkitError
from ..meters import display_name, predict_memory, training_flops
from ..meters.params import real_numel
from ..methods import applied_method, get_method
from ..units import GIB

_DTYPES = {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}


def record_run(model, result, *, tokens: int, device, data=None) -> int | None:
    """Append ``result`` (a TrainResult of ``model`` trained on ``data``) to the ledger; the row id, or None where
    nothing was written."""
    if ledger.ledger_path() is None:
        return None
    method, settings = applied_method(model) or ("none", {})
    params = list(model.parameters())
    n_params = sum(real_numel(p) for p in params)
    trainable = sum(real_numel(p) for p in params if p.requires_grad)
    cfg = result.config
    row = {
        "label": cfg.label, "model": display_name(model), "method": method,
        "config": {"train": dataclasses.asdict(cfg), "method": settings}, "device": str(device.type),
        "hardware": ledger.hardware(), "num_steps": result.num_steps, "tokens": tokens,
        "flops": training_flops(n_params, tokens, trainable_params=trainable) if tokens else None,
        "predicted_peak_gib": predicted_peak_gib(model, method, settings, cfg, device),
        "measured_peak_gib": result.peak_mem_gib, "time_s": result.time_s, "step_time_s": result.time_per_step_s,
        "final_loss": result.final_loss, "versions": ledger.versions(), "git_commit": ledger.git_commit(),
        "data_hash": _data_hash(data), "seed": cfg.seed,
    }
    return ledger.record(row)


def tracker_writer(model, cfg):
    """A labkit.tracker.RunWriter for this run, named after its label, with its settings as hparams."""
    import re

    from ..tracker import RunWriter

    method, settings = applied_method(model) or ("none", {})
    skip = {"live_plot", "progress", "report_to", "label"}
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    extra = {k: v for k, v in settings.items() if k not in config}
    name = re.sub(r"[^\w.+-]+", "-", cfg.label).strip("-") or "run"
    return RunWriter(name, {"label": cfg.label, "model": display_name(model), "method": method, **config, **extra})


def predicted_peak_gib(model, method: str, settings: dict, cfg, device) -> float | None:
    """meters.predict_memory for the run as it ran, or None where the meters have no formula for it."""
    if method == "none":
        return None
    dtype = _DTYPES.get(str(getattr(model, "dtype", "")), "fp32")
    knobs = {"rank", "target_modules", "num_virtual_tokens", get_method(method).size_knob}
    known = {k: v for k, v in settings.items() if k in knobs}
    try:
        estimate = predict_memory(model.config, method, dtype=dtype, quantization=get_method(method).base_quantization,
                                  optimizer=cfg.optimizer, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                                  grad_checkpointing=cfg.grad_checkpointing, device=device.type, **known)
    except (LabkitError, KeyError, TypeError, ValueError):  # a method or model the formulas do not cover
        return None
    return estimate.total / GIB


def _data_hash(data) -> str | None:
    try:
        return ledger.data_hash(data)
    except LabkitError:  # rows that are not dicts: the run is recorded without a data hash
        return None
