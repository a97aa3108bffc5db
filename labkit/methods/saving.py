"""Save and load only the trainable part of a model (safetensors, atomic), and merge LoRA into the base."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..core import LabkitError
from . import applied_method, apply_method, get_method, list_methods

FILE_NAME = "adapter.safetensors"  # used when save_trainable is given a folder
MERGEABLE_PEFT_TYPES = {"LORA", "IA3", "LN_TUNING", "ADALORA", "VERA", "LOHA", "LOKR", "OFT"}  # peft updates merge_and_unload folds into the weights


def _target(path) -> Path:
    path = Path(path)
    return path / FILE_NAME if path.is_dir() or not path.suffix else path


def save_trainable(model, path) -> Path:
    """Write only the trainable tensors of ``model`` to a safetensors file, atomically; return the file.

    >>> file = save_trainable(model, "runs/lora-intents")  # doctest: +SKIP
    >>> file.stat().st_size  # storage per task, in bytes  # doctest: +SKIP
    """
    from safetensors.torch import save_file

    tensors = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    if not tensors:
        raise LabkitError("This model has no trainable parameters to save: apply a method first, e.g. "
                          "lk.apply_method(model, 'lora').")
    metadata = {"format": "pt"}
    applied = applied_method(model)
    if applied is not None:
        metadata.update(labkit_method=applied[0], labkit_cfg=json.dumps(applied[1]))
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, target)  # readers see the old file or the new one, never half of one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def load_trainable(model, path):
    """Load tensors written by save_trainable into ``model``; a fresh base model gets the saved method first.

    >>> model = load_trainable(base_model, "runs/lora-intents")  # doctest: +SKIP
    """
    import torch
    from safetensors import SafetensorError, safe_open

    target = _target(path)
    if not target.exists():
        raise LabkitError(f"{target} does not exist: save it first with save_trainable(model, path).")
    try:
        with safe_open(str(target), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except SafetensorError as err:
        raise LabkitError(f"{target} is not a readable safetensors file ({err}); it may be truncated or not one "
                          "save_trainable wrote: save the model again with save_trainable(model, path).") from None
    params = dict(model.named_parameters())
    if any(name not in params for name in tensors) and applied_method(model) is None and "labkit_method" in metadata:
        model = apply_method(model, metadata["labkit_method"], **json.loads(metadata["labkit_cfg"]))
        params = dict(model.named_parameters())
    missing = [name for name in tensors if name not in params]
    if missing:
        raise LabkitError(f"{len(missing)} saved tensors (e.g. {missing[0]!r}) have no place in this model: load "
                          "them into the same base model with the same method and settings they were saved from.")
    with torch.no_grad():
        for name, tensor in tensors.items():
            if params[name].shape != tensor.shape:
                raise LabkitError(f"{name!r} was saved with shape {tuple(tensor.shape)} but the model has "
                                  f"{tuple(params[name].shape)}: use the same settings (e.g. rank) as when saving.")
            params[name].copy_(tensor.to(device=params[name].device, dtype=params[name].dtype))
    return model


def merge_lora(model):
    """Fold a LoRA/DoRA/(IA)^3/norm-tuning update into the base weights; return the plain model (peft merge_and_unload).

    >>> merged = merge_lora(model)  # doctest: +SKIP
    """
    configs = getattr(model, "peft_config", None)
    if not configs or not hasattr(model, "get_base_model"):
        mergeable = [name for name in list_methods() if get_method(name).mergeable]
        raise LabkitError(f"merge_lora needs a model wrapped by lk.apply_method(model, name) with a mergeable method: "
                          f"{', '.join(mergeable)}.")
    kinds = {str(getattr(c.peft_type, "value", c.peft_type)) for c in configs.values()}
    if not kinds <= MERGEABLE_PEFT_TYPES:
        raise LabkitError(f"Only LoRA-style, (IA)^3 and norm-tuning updates can be merged into the weights; this model "
                          f"has {sorted(kinds)}, which cannot be: keep it as an adapter instead.")
    return model.merge_and_unload()
