"""Many tasks, one base: peft's multi-adapter model (set_adapter, mixed batches with adapter_names) against one
merged model per task: memory, switch time and mixed-batch latency, measured in the same run.

>>> multi = many_adapters(base, adapter_file, n_tasks=4)  # doctest: +SKIP
>>> compare_serving(multi, merged_folder, tokenizer)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import statistics
import time

from ...core import LabkitError
from .latency import weight_bytes


def many_adapters(base, adapter_file, *, n_tasks: int = 4, seed: int = 0):
    """The trained adapter as 'task0' plus ``n_tasks - 1`` stand-in LoRA adapters with random weights of the same
    shape (speed and memory do not depend on the values), all on one base; returns the peft model."""
    import torch

    from ...methods import load_trainable

    if not isinstance(n_tasks, int) or not 1 <= n_tasks <= 16:
        raise LabkitError(f"n_tasks must be a whole number from 1 to 16, got {n_tasks!r}.")
    model = load_trainable(base, adapter_file)  # applies the saved method (adapter 'default') and loads its tensors
    if not hasattr(model, "peft_config") or "default" not in model.peft_config:
        raise LabkitError(f"{adapter_file} is not a LoRA adapter saved by save_trainable: save the lab's LoRA model.")
    generator = torch.Generator().manual_seed(seed)
    cfg = model.peft_config["default"]
    for i in range(1, n_tasks):
        model.add_adapter(f"task{i}", copy.deepcopy(cfg))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if f".task{i}." in name and "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.01)
    _rename_default(model)
    model.set_adapter("task0")
    model.eval()
    return model


def _rename_default(model) -> None:
    """Call the trained adapter 'task0' (peft adds a copy under the new name, then drops 'default')."""
    import torch

    model.add_adapter("task0", copy.deepcopy(model.peft_config["default"]))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            if ".default." in name:
                params[name.replace(".default.", ".task0.")].copy_(p)
    model.set_adapter("task0")
    model.delete_adapter("default")


def adapter_bytes(model, name: str) -> int:
    """Bytes of one adapter's tensors."""
    if name not in getattr(model, "peft_config", {}):
        raise LabkitError(f"No adapter called {name!r}: this model has {sorted(getattr(model, 'peft_config', {}))}.")
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if f".{name}." in n)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return min(times)


def compare_serving(multi, merged_folder, tokenizer, *, prompts: list[str], max_new_tokens: int = 8,
                    repeats: int = 2):
    """Memory (counted from the tensors), switch time and mixed-batch generate latency: adapters vs merged models."""
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM

    from ...batches import prompt_text

    names = list(multi.peft_config)
    if len(prompts) < 1:
        raise LabkitError("prompts is empty: pass one prompt per request of the mixed batch.")
    tasks = [names[i % len(names)] for i in range(len(prompts))]  # each request names its own task's adapter
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer([prompt_text(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
                        add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    gen = {"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens, "do_sample": False,
           "pad_token_id": tokenizer.pad_token_id}
    merged_load_s = _best(lambda: AutoModelForCausalLM.from_pretrained(merged_folder), 1)
    merged = AutoModelForCausalLM.from_pretrained(merged_folder).eval()
    base_bytes = weight_bytes(merged)
    one_adapter = adapter_bytes(multi, names[0])
    with torch.no_grad():
        switch_s = statistics.median(_best(lambda n=n: multi.set_adapter(n), 3) for n in names)
        mixed_s = _best(lambda: multi.generate(**enc, adapter_names=tasks, **gen), repeats)

        def one_group_at_a_time(model, switch: bool):
            for name in names:
                rows = [i for i, t in enumerate(tasks) if t == name]
                if rows:
                    if switch:
                        model.set_adapter(name)
                    model.generate(**{k: v[rows] for k, v in enc.items()}, **gen)

        grouped_s = _best(lambda: one_group_at_a_time(multi, True), repeats)
        per_task_merged_s = _best(lambda: one_group_at_a_time(merged, False), repeats)
        merged_s = _best(lambda: merged.generate(**enc, **gen), repeats)
    n = len(names)
    rows = [
        {"setup": f"{n} merged models (one per task)", "weights_mib": n * base_bytes / 2**20,
         "switch_s": merged_load_s, "batch_s": per_task_merged_s,
         "note": "switch = load a merged model from disk; batch = one generate per task group, each on a merged "
                 "model (all merged copies cost the same)"},
        {"setup": "1 merged model (a single task)", "weights_mib": base_bytes / 2**20, "switch_s": float("nan"),
         "batch_s": merged_s, "note": "the floor: no adapter arithmetic, but it serves only one task"},
        {"setup": f"1 base + {n} adapters, set_adapter per group", "weights_mib": (base_bytes + n * one_adapter) / 2**20,
         "switch_s": switch_s, "batch_s": grouped_s, "note": "one generate per task group"},
        {"setup": f"1 base + {n} adapters, mixed batch (adapter_names)",
         "weights_mib": (base_bytes + n * one_adapter) / 2**20, "switch_s": 0.0, "batch_s": mixed_s,
         "note": "one generate; each row uses its own adapter"},
    ]
    return pd.DataFrame(rows).set_index("setup")
