"""The family portrait: every registered method trained under one budget, next to peft's published results."""

from __future__ import annotations

from ...core import LabkitError
from .sweeps import Budget, train_run

# Settings of each method in the portrait on SmolLM2 (the registry's defaults where they fit a short CPU run).
PORTRAIT_SETTINGS = {
    "lora": {"rank": 8}, "dora": {"rank": 8}, "qlora": {"rank": 8}, "adapter": {"bottleneck": 16},
    "prefix": {"num_virtual_tokens": 10}, "prompt": {"num_virtual_tokens": 10}, "vera": {"rank": 256},
    "loha": {"rank": 8}, "lokr": {"rank": 8}, "oft": {"block_size": 32}, "adalora": {"rank": 12, "target_rank": 8},
    "ptuning": {"num_virtual_tokens": 10, "encoder_hidden_size": 128},
}

# peft's method_comparison suite: Llama-3.2-3B trained 5,000 steps on MetaMathQA, scored on GSM8K (test accuracy),
# one L40S GPU, bf16. Read from huggingface/peft, method_comparison/MetaMathQA/results/<file>.json (train_info and
# the last metrics row); "created_at" is the date of the run. Memory is accelerator_memory_max (cuda_memory_max in the
# older files), time is train_time.
PEFT_REFERENCE = {  # kit method -> (result file, created_at, test accuracy, trainable params, memory bytes, time s)
    "full": ("full-finetuning--llama-3.2-3B-lr_0.00001.json", "2025-06-20", 0.5004, 3_212_749_824, 37_241_225_216,
             3111.4),
    "lora": ("lora--llama-3.2-3B-rank32.json", "2025-06-19", 0.4822, 9_175_040, 22_273_851_392, 1796.2),
    "dora": ("lora--llama-3.2-3B-rank32-dora.json", "2026-01-07", 0.4943, 9_289_728, 24_540_872_704, 1208.6),
    "ia3": ("ia3--llama-3.2-3B-default.json", "2025-06-19", 0.3450, 286_720, 23_137_878_016, 1782.9),
    "prompt": ("prompt_tuning--llama-3.2-3B-default.json", "2025-06-20", 0.0500, 614_400, 24_379_392_000, 2379.6),
    "vera": ("vera--llama-3.2-3B-default.json", "2025-06-19", 0.3685, 129_024, 21_596_471_296, 1820.0),
    "loha": ("loha--llama-3.2-3B-rank32.json", "2025-06-19", 0.4185, 18_350_080, 23_886_561_280, 2340.7),
    "lokr": ("lokr--llama-3.2-3B-rank32.json", "2026-07-15", 0.3601, 279_552, 23_571_988_480, 1287.9),
    "oft": ("oft--llama-3.2-3B-rank32.json", "2025-10-23", 0.4936, 8_171_520, 22_328_377_344, 2166.6),
    "adalora": ("adalora--llama-3.2-3B-rank32.json", "2025-06-19", 0.3904, 18_353_664, 22_793_945_088, 1986.4),
    "ptuning": ("ptuning--llama-3.2-3B-default.json", "2025-06-19", 0.3707, 28_382_208, 20_937_965_568, 1707.3),
}
PEFT_SOURCE = "github.com/huggingface/peft, method_comparison/MetaMathQA/results/ (dates per file: created_at)"


def reference_table():
    """peft's published results as a table, with each axis relative to peft's full fine-tuning run."""
    import pandas as pd

    rows = [{"method": m, "file": f, "date": d, "quality": q, "trainable": n, "mem_bytes": b, "time_s": t}
            for m, (f, d, q, n, b, t) in PEFT_REFERENCE.items()]
    return _relative(pd.DataFrame(rows), "full", "quality", "mem_bytes", "time_s")


def _relative(table, baseline: str, quality: str, memory: str, time: str):
    base = table.set_index("method").loc[baseline]
    return table.assign(rel_params=table["trainable"] / base["trainable"], rel_memory=table[memory] / base[memory],
                        rel_time=table[time] / base[time], rel_quality=table[quality] / base[quality])


def portrait(base, tokenizer, train_data, eval_data, budget: Budget, methods=None, *, nf4_base=None, progress=None):
    """Train every method (or ``methods``) under ``budget``: one row each, with why a method did not run here.

    Quality is exp(-eval_loss), the mean probability per answer token on held-out examples (higher is better).
    ``nf4_base`` is a 4-bit copy of the model for QLoRA (None: QLoRA is listed with the reason).
    """
    import math

    import pandas as pd

    from ... import meters
    from ...methods import get_method, list_methods

    names = list_methods(core_only=False) if methods is None else list(methods)
    rows, histories = [], {}
    for name in names:
        method = get_method(name)
        settings = dict(PORTRAIT_SETTINGS.get(name, {}))
        if name == "adalora" and budget.num_steps < 2:  # its final allocation needs a scored step before it
            settings["total_step"] = 2
        row = {"method": name, "title": method.title, "family": method.family, "core": method.core}
        reason = _cannot_run(name, base, nf4_base)
        if reason:
            rows.append({**row, "status": reason})
        else:
            model_base = nf4_base if method.base_quantization else base
            try:
                run = train_run(model_base, tokenizer, name, settings, train_data, eval_data, budget,
                                lr=method.default_lr)
            except LabkitError as err:  # a method the model cannot take: say why in its row
                rows.append({**row, "status": f"refused: {err}"})
            else:
                predicted = meters.predict_memory(model_base.config, name, batch_size=budget.batch_size,
                                                  seq_len=budget.seq_len, **settings)
                rows.append({**row, **run.row, "status": "trained", "quality": math.exp(-run.row["eval_loss"]),
                             "predicted_train_mem_gib": (predicted.total - predicted.weights) / 2**30})
                histories[name] = run.history
        if progress is not None:
            progress.update(1)
    return pd.DataFrame(rows), histories


def _cannot_run(name: str, base, nf4_base) -> str | None:
    from ...methods import get_method

    method = get_method(name)
    if method.family == "head":
        return "not on this task: a classification head needs labels, and this task generates answers"
    if method.base_quantization and nf4_base is None:
        return "skipped: needs a 4-bit copy of the model (bitsandbytes NF4), not loaded in this run"
    if method.family == "biases" and not any(n.endswith(".bias") for n, _ in base.named_parameters()):
        return f"not on this model: it has no bias terms (use {method.analogue} instead)"
    return None


def relative_portrait(table):
    """The trained rows with every axis relative to this run's full fine-tuning (as the reference is)."""
    trained = table[table["status"] == "trained"].copy()
    if "full" not in set(trained["method"]):
        raise LabkitError("The portrait needs its full fine-tuning row to put the methods on relative axes: "
                          "include 'full' in methods.")
    return _relative(trained, "full", "quality", "peak_mem_gib", "time_per_step_s")
