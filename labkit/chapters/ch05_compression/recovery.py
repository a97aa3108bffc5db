"""Getting quality back: heal a compressed model with a short LoRA run on the kit's instruction task (lk.train), and
distil SmolLM2 into a student with fewer layers initialised from the teacher's, KL on the teacher's logits against
plain cross-entropy at equal steps."""

from __future__ import annotations

import copy
import time

from ...core import LabkitError
from .rtn import fake_quantize, linear_layers


def compressed_copy(model, *, bits: int | None = 3, group=128, prune=None, calib=None, layers=None):
    """A copy of ``model`` whose decoder Linear weights stay compressed: fake-quantized to ``bits`` (None: float)
    and/or pruned (``prune=("wanda", 0.5)`` or ``("magnitude", (2, 4))``)."""
    import torch

    from .pruning import layer_mask

    if bits is None and prune is None:
        raise LabkitError("Nothing to compress: pass bits (2-8) and/or prune=(method, pattern).")
    small = copy.deepcopy(model)

    def new_weight(name, m):
        w = m.weight.data
        if prune is not None:
            w = w * layer_mask(w, prune[0], prune[1], None if calib is None else calib.norm[name])
        return w if bits is None else fake_quantize(w, bits, "zeropoint", group)

    with torch.no_grad():  # assigned for good (not replaced_weights, whose exit would restore the float weights)
        for name, m in linear_layers(small, layers).items():
            m.weight.data = new_weight(name, m)
    return small


def instruction_loss(model, tokenizer, data, *, limit: int | None = None) -> float:
    """Mean answer-token loss on instruction data (the loss lk.train's SFT objective minimises)."""
    from ...training import evaluate_loss

    return evaluate_loss(model, tokenizer, data, objective="sft", limit=limit)["eval_loss"]


def heal(model, tokenizer, train_data, eval_data, *, steps: int = 20, rank: int = 8, label: str = "heal",
         eval_limit: int | None = None, lr: float | None = None):
    """LoRA (lk.apply_method 'lora') on a compressed copy, trained with lk.train: returns (loss before, loss after,
    TrainResult). The model passed in is changed (adapters added): pass a copy you can spare."""
    from ...methods import apply_method
    from ...training import train

    if not isinstance(steps, int) or steps < 1:
        raise LabkitError(f"steps must be a whole number >= 1, got {steps!r}.")
    before = instruction_loss(model, tokenizer, eval_data, limit=eval_limit)
    adapted = apply_method(model, "lora", rank=rank)
    result = train(adapted, tokenizer, train_data, num_steps=steps, objective="sft", label=label, live_plot=False,
                   lr=lr)
    after = instruction_loss(adapted, tokenizer, eval_data, limit=eval_limit)
    return before, after, result


def recovery_table(rows: dict):
    """rows: name -> (loss before, loss after). Adds the share of the compression's loss increase won back."""
    import pandas as pd

    table = pd.DataFrame([{"model": k, "loss_before_lora": b, "loss_after_lora": a} for k, (b, a) in rows.items()])
    return table.set_index("model")


# ---- distillation -------------------------------------------------------------------------------------------------


def student_from(teacher, keep):
    """A student that keeps the teacher's decoder layers ``keep`` (their weights copied), everything else shared."""
    from .pruning import drop_layers

    n = len(teacher.model.layers)
    keep = sorted(set(keep))
    if not keep or any(not 0 <= i < n for i in keep):
        raise LabkitError(f"keep must name some of the teacher's layers 0-{n - 1}, got {keep!r}.")
    if len(keep) == n:
        raise LabkitError("The student keeps every layer: drop at least one to make it smaller.")
    return drop_layers(teacher, [i for i in range(n) if i not in keep])


def distil(teacher, student, tokenizer, texts, *, loss: str = "kl", steps: int = 20, batch_size: int = 4,
           seq_len: int = 128, lr: float = 1e-4, temperature: float = 1.0, seed: int = 0, progress: bool = True):
    """Train every weight of ``student`` for ``steps`` AdamW steps on ``texts`` (a text data set): ``loss="kl"``
    matches the teacher's next-token distribution (KL(teacher || student) at ``temperature``), ``"ce"`` is plain
    next-token cross-entropy on the text. Returns a DataFrame of step, loss and seconds."""
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from ...batches import collate, tokenize

    if loss not in ("kl", "ce"):
        raise LabkitError(f"loss must be 'kl' (distillation) or 'ce' (plain cross-entropy), got {loss!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise LabkitError(f"steps must be a whole number >= 1, got {steps!r}.")
    examples = tokenize(texts, tokenizer, "causal_lm", seq_len=seq_len)
    if not examples:
        raise LabkitError("distil needs some text: pass a data set with a 'text' column.")
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id or 0
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    teacher.eval()
    student.train()
    rows, start = [], time.perf_counter()
    for step in tqdm(range(steps), desc=f"distil ({loss})", disable=not progress):
        idx = [(step * batch_size + i) % len(examples) for i in range(batch_size)]
        batch = collate([examples[i] for i in idx], pad)
        out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        if loss == "ce":
            value = out.loss
        else:
            with torch.no_grad():
                t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            mask = batch["attention_mask"].bool()
            t = torch.log_softmax(t_logits[mask] / temperature, -1)
            s = torch.log_softmax(out.logits[mask] / temperature, -1)
            value = torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2
        opt.zero_grad()
        value.backward()
        opt.step()
        rows.append({"step": step + 1, "loss": value.item(), "time_s": time.perf_counter() - start})
    student.eval()
    return pd.DataFrame(rows)
