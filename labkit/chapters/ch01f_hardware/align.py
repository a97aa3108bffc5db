"""Alignment is an objective: a few steps of DPO (Rafailov et al. 2023) with TRL's DPOTrainer and a LoRA adapter,
on the kit's preference pairs, with the reward margin and win rate on held-out pairs."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

from ...core import LabkitError, fast_mode


def check_preferences(rows: list[dict]) -> list[dict]:
    """The rows if every one has a non-empty prompt, chosen and rejected answer and the two answers differ."""
    if not rows:
        raise LabkitError("No preference pairs: pass rows with prompt, chosen and rejected (load_safety("
                          "'preferences_train')).")
    for i, row in enumerate(rows):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise LabkitError(f"Pair {i} has no {key!r} text: every pair needs prompt, chosen and rejected.")
        if row["chosen"].strip() == row["rejected"].strip():
            raise LabkitError(f"Pair {i} has the same chosen and rejected answer ({row['chosen'][:40]!r}): DPO learns "
                              "nothing from it (its loss is log 2 whatever the model does). Drop it or fix the pair.")
    return rows


def to_trl(rows: list[dict]):
    """The pairs as TRL's conversational preference format (a datasets.Dataset of prompt/chosen/rejected messages)."""
    from datasets import Dataset

    check_preferences(rows)
    return Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])


def dpo_pair_loss(logp_chosen: float, logp_rejected: float, ref_chosen: float, ref_rejected: float,
                  beta: float = 0.1) -> float:
    """DPO's loss for one pair: -log σ(β·[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))])."""
    if beta <= 0:
        raise LabkitError(f"beta must be positive (TRL's default is 0.1), got {beta!r}.")
    margin = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))
    return math.log1p(math.exp(-margin)) if margin > -30 else -margin  # -log σ(m), stable for large |m|


@dataclass
class DPOResult:
    """What a DPO run measured."""

    history: object  # pandas DataFrame per training step: loss, rewards/margins, rewards/accuracies, ...
    eval_before: dict  # TRL's evaluate() on the held-out pairs before training (rewards are 0: policy = reference)
    eval_after: dict  # the same after training: eval_rewards/margins, eval_rewards/accuracies (the win rate)
    time_s: float  # training wall time

    @property
    def margin(self) -> float:
        """Mean reward margin on the held-out pairs after training, β·log-ratio units."""
        return float(self.eval_after["eval_rewards/margins"])

    @property
    def win_rate(self) -> float:
        """Share of held-out pairs whose chosen answer gets the higher implicit reward after training."""
        return float(self.eval_after["eval_rewards/accuracies"])


def run_dpo(model, tokenizer, train_rows: list[dict], test_rows: list[dict], *, num_steps: int = 10,
            batch_size: int = 4, lr: float = 5e-4, beta: float = 0.1, max_length: int = 96, rank: int = 8,
            seed: int = 0, eval_before: bool = False) -> DPOResult:
    """Train a LoRA adapter on ``model`` with trl.DPOTrainer (the frozen base is the reference); evaluate on
    ``test_rows`` before and after. ``model`` is changed in place (peft wraps it): load a fresh one for it.
    """
    import time
    import warnings

    import pandas as pd
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    for name, value in (("num_steps", num_steps), ("batch_size", batch_size), ("max_length", max_length),
                        ("rank", rank)):
        if not isinstance(value, int) or value < 1:
            raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
    train_set, test_set = to_trl(train_rows), to_trl(test_rows)
    with tempfile.TemporaryDirectory(prefix="labkit-dpo-") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames gradient_checkpointing, TRL still uses it
        args = DPOConfig(output_dir=out, max_steps=num_steps, per_device_train_batch_size=batch_size,
                         per_device_eval_batch_size=max(batch_size, 8), learning_rate=lr, beta=beta,
                         max_length=max_length, report_to="none", logging_steps=1, save_strategy="no",
                         use_cpu=not _cuda(), disable_tqdm=fast_mode(), seed=seed, lr_scheduler_type="constant",
                         **_precision())
        peft_config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = DPOTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=test_set,
                             processing_class=tokenizer, peft_config=peft_config)
        before = trainer.evaluate() if eval_before else {}
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
        after = trainer.evaluate()
    steps = [row for row in trainer.state.log_history if "loss" in row and "eval_loss" not in row]
    return DPOResult(pd.DataFrame(steps), before, after, elapsed)


def _precision() -> dict:
    """DPOConfig defaults to bf16 and gradient checkpointing. A CPU runs fp32 as lk.train does (bf16 autocast without
    AVX512-BF16/AMX is emulated, several times slower) and the 135M model needs no checkpointing; a GPU without bf16
    (a T4) gets fp16."""
    import torch

    if not _cuda():
        return {"bf16": False, "fp16": False, "gradient_checkpointing": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
