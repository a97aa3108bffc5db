"""A small fine-tuning project: how it tokenizes, batches, trains and evaluates, with every choice that lab 10's bug
zoo gets wrong in one typed ``Recipe``.

The kit's ``lk.train`` is the healthy loop of the other labs; this one exists so that each choice (loss
normalisation, the optimizer, fp16 gradients, evaluation mode) can be broken on purpose, one at a time.

>>> setup = zoo.build("healthy", "tiny-llama")  # doctest: +SKIP
>>> history = run_recipe(setup, num_steps=10)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from ..core import LabkitError
from ..units import IGNORE_INDEX

OBJECTIVES = ("sft", "causal_lm")  # loss on the answer only / on every token
NORMALIZATIONS = ("tokens", "batches")  # how gradient accumulation averages the loss (see Recipe)
PRECISIONS = ("fp32", "fp16")  # what the gradients are stored in (fp16 simulated on a CPU: see fp16_round)
TEMPLATES = ("chat", "plain")  # the tokenizer's chat template, or an Alpaca-style "### Instruction" prompt
FP16_TINY = 2.0 ** -24  # smallest positive float16 (a subnormal, IEEE 754 binary16): smaller magnitudes round to 0
FP16_MAX = 65504.0  # largest finite float16: larger magnitudes become inf
GRAD_SCALER_INIT = 2.0 ** 16  # torch.amp.GradScaler's default init_scale
# Alpaca's prompt (Taori et al. 2023, github.com/tatsu-lab/stanford_alpaca, "prompt_no_input"), shortened: a template
# many fine-tuning scripts use, and not the one SmolLM2's chat template builds at inference.
PLAIN_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass
class Recipe:
    """How the project trains and evaluates: everything ``preflight`` checks besides the model, tokenizer and data.

    >>> Recipe(loss_normalization="sum")
    Traceback (most recent call last):
    ...
    labkit.core.LabkitError: Unknown loss_normalization 'sum': use 'tokens' (token losses / step tokens) or 'batches'.
    """

    objective: str = "sft"  # "sft": loss on the answer tokens only; "causal_lm": loss on every token
    batch_size: int = 2  # examples per forward pass (one micro-batch)
    grad_accum: int = 2  # micro-batches per optimizer step
    lr: float = 1e-3  # AdamW learning rate (LoRA's registered default, lk.get_method("lora").default_lr)
    # "tokens": the step's loss is the sum of its token losses over the number of label tokens in the whole step (the
    # fix transformers shipped as num_items_in_batch); "batches": the mean of each micro-batch's mean loss, which
    # weights a token in a short micro-batch more than one in a long micro-batch (trl#2175)
    loss_normalization: str = "tokens"
    precision: str = "fp32"  # "fp32", or "fp16": gradients stored in float16 (rounded so on a CPU, see fp16_round)
    loss_scale: float | None = None  # fp16: multiply the loss by this before backward (GradScaler: 2**16); None: none
    eval_mode: bool = True  # evaluation calls model.eval() (dropout off) before it measures
    pretrained: bool = True  # pretrained weights: loss at init well below ln V; False: random, loss at init ~ ln V
    optimizer: object | None = field(default=None, repr=False)  # an optimizer the project built; None: AdamW over
    # the trainable parameters, built when training starts

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise LabkitError(f"Unknown objective {self.objective!r}: use 'sft' (loss on answers) or 'causal_lm'.")
        for name in ("batch_size", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise LabkitError(f"{name} must be a positive whole number (e.g. {name}=2), got {value!r}.")
        if not _positive(self.lr):
            raise LabkitError(f"lr must be a positive number (LoRA's default is 1e-3), got {self.lr!r}.")
        if self.loss_normalization not in NORMALIZATIONS:
            raise LabkitError(f"Unknown loss_normalization {self.loss_normalization!r}: use 'tokens' (token losses / "
                              "step tokens) or 'batches'.")
        if self.precision not in PRECISIONS:
            raise LabkitError(f"Unknown precision {self.precision!r}: use 'fp32' or 'fp16'.")
        if self.loss_scale is not None and not _positive(self.loss_scale):
            raise LabkitError(f"loss_scale must be a positive number (GradScaler starts at 2**16) or None, "
                              f"got {self.loss_scale!r}.")
        for name in ("eval_mode", "pretrained"):
            if not isinstance(getattr(self, name), bool):
                raise LabkitError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @property
    def examples_per_step(self) -> int:
        """Examples in one optimizer step: batch_size x grad_accum."""
        return self.batch_size * self.grad_accum


def _positive(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and value > 0


@dataclass
class Setup:
    """One fine-tuning set-up: what ``preflight`` takes, plus its name in the zoo."""

    model: object  # a causal LM, usually with a LoRA adapter (lk.apply_method)
    tokenizer: object  # the tokenizer the data was made with and generation will use
    data: list  # examples: dicts with instruction, answer, input_ids, labels (make_examples)
    recipe: Recipe  # how the project trains and evaluates
    name: str = "healthy"  # the zoo member, or "healthy"

    def __iter__(self):  # model, tokenizer, data, recipe = setup
        return iter((self.model, self.tokenizer, self.data, self.recipe))


def prompt_for(tokenizer, instruction: str, template: str = "chat") -> str:
    """The prompt for one instruction: the tokenizer's chat template (as at inference) or the plain Alpaca one."""
    from ..batches import prompt_text

    if template not in TEMPLATES:
        raise LabkitError(f"Unknown template {template!r}: use 'chat' (the tokenizer's) or 'plain'.")
    return prompt_text(tokenizer, instruction) if template == "chat" else PLAIN_TEMPLATE.format(instruction=instruction)


def make_examples(tokenizer, rows, *, template: str = "chat", answer_only: bool = True, add_eos: bool = True,
                  shift_labels: bool = False, seq_len: int = 256) -> list[dict]:
    """Tokenize instruction/answer rows the way the project does; each keyword is one choice the zoo can get wrong.

    ``answer_only``: prompt tokens get IGNORE_INDEX labels; ``add_eos``: the answer ends with the end-of-turn token;
    ``shift_labels``: labels are shifted left by one here (the model shifts them again: off by one).

    >>> examples = make_examples(tokenizer, lk.load_instructions()["train"].select(range(8)))  # doctest: +SKIP
    """
    rows = list(rows)
    if not rows:
        raise LabkitError("No rows to tokenize: pass a non-empty list of {'instruction', 'answer'} rows.")
    if isinstance(seq_len, bool) or not isinstance(seq_len, numbers.Integral) or seq_len < 8:
        raise LabkitError(f"seq_len must be a whole number of at least 8 tokens (try 256), got {seq_len!r}.")
    examples = []
    for row in rows:
        if "instruction" not in row or "answer" not in row:
            raise LabkitError(f"Each row needs 'instruction' and 'answer'; got keys {sorted(row)}.")
        prompt = tokenizer(prompt_for(tokenizer, row["instruction"], template), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["answer"] + (tokenizer.eos_token if add_eos else ""),
                           add_special_tokens=False)["input_ids"]
        ids = (prompt + answer)[:seq_len]
        labels = ([IGNORE_INDEX] * len(prompt) + answer if answer_only else prompt + answer)[:seq_len]
        if shift_labels:  # the project "helpfully" shifts for next-token prediction; the model shifts again
            labels = labels[1:] + [IGNORE_INDEX]
        examples.append({"instruction": row["instruction"], "answer": row["answer"], "input_ids": ids,
                         "labels": labels})
    return examples


def label_tokens(batch) -> int:
    """Tokens whose next token the loss predicts: labels other than IGNORE_INDEX after the model's shift."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def micro_batches(examples: list[dict], recipe: Recipe, pad_id: int, step: int = 0) -> list[dict]:
    """The micro-batches of optimizer step ``step`` (examples taken in order, wrapping around), right-padded."""
    from ..batches import collate

    if not examples:
        raise LabkitError("No examples: the data is empty; check the split and any filter you applied.")
    n = recipe.examples_per_step
    order = [(step * n + i) % len(examples) for i in range(n)]
    return [collate([examples[j] for j in order[i:i + recipe.batch_size]], pad_id)
            for i in range(0, n, recipe.batch_size)]


def backward_step(model, batches: list[dict], normalization: str, *, scale: float = 1.0) -> float:
    """Backward over the micro-batches of one optimizer step (gradients add up in ``.grad``); the step's loss.

    ``normalization`` "tokens" weights each micro-batch's mean loss by its share of the step's label tokens, so
    the gradient equals that of one big batch; "batches" takes the plain mean of the micro-batch means.
    """
    counts = [label_tokens(b) for b in batches]
    total = sum(counts)
    if total == 0:
        raise LabkitError("Every label in this step is IGNORE_INDEX, so there is nothing to learn: check the label "
                          "mask and seq_len (answers may be cut off).")
    device = next(model.parameters()).device
    step_loss = 0.0
    for batch, count in zip(batches, counts):
        if normalization == "tokens" and count == 0:
            continue  # no label tokens: contributes nothing (its mean loss would be 0/0)
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        weight = count / total if normalization == "tokens" else 1 / len(batches)
        (loss * weight * scale).backward()
        step_loss += float(loss.detach()) * weight
    return step_loss


def fp16_round(params, scale: float) -> dict:
    """Store each gradient as fp16 would after the loss was scaled by ``scale``, then unscale it (what a CPU can
    simulate of fp16 training); return the counts: nonzero entries, entries lost to underflow, entries gone inf."""
    import torch

    nonzero = underflow = overflow = 0
    for p in params:
        if p.grad is None:
            continue
        g = p.grad.float()
        half = g.to(torch.float16)
        nonzero += int((g != 0).sum())
        underflow += int(((half == 0) & (g != 0)).sum())
        overflow += int((~torch.isfinite(half)).sum())
        p.grad.copy_(half.float() / scale)
    return {"nonzero": nonzero, "underflow": underflow, "overflow": overflow}


def trainable(model) -> list:
    """The parameters that will receive gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def run_recipe(setup: Setup, num_steps: int, *, label: str | None = None, seed: int = 0, progress: bool = False):
    """Train ``setup.model`` for ``num_steps`` optimizer steps the way its recipe says; a DataFrame of step, loss.

    Clips the gradient norm to 1 like lk.train; ``progress`` shows a bar. fp16 keeps the forward in fp32 and stores
    the gradients in fp16 (a CPU cannot run fp16 training at speed): with a loss_scale, a step with an inf gradient is
    skipped and the scale halves, as GradScaler does; without one, nothing checks.

    >>> history = run_recipe(zoo.build("healthy"), num_steps=10)  # doctest: +SKIP
    """
    import pandas as pd
    import torch

    from ..core import seed_everything
    from ..training.loop import make_progress

    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
        raise LabkitError(f"num_steps must be a positive whole number (e.g. num_steps=10), got {num_steps!r}.")
    model, tokenizer, data, recipe = setup
    params = trainable(model)
    if not params:
        raise LabkitError("Nothing to train: every parameter is frozen. Apply a method first, e.g. "
                          "model = lk.apply_method(model, 'lora').")
    seed_everything(seed)
    opt = recipe.optimizer or torch.optim.AdamW(params, lr=recipe.lr)
    pad_id = tokenizer.pad_token_id or 0
    scale = recipe.loss_scale or 1.0
    rows = []
    bar = make_progress(num_steps, progress, label or setup.name)
    model.train()
    for step in range(num_steps):
        opt.zero_grad(set_to_none=True)
        for p in params:  # the optimizer may not hold these (zoo: optimizer_before_method); clear them anyway
            p.grad = None
        loss = backward_step(model, micro_batches(data, recipe, pad_id, step), recipe.loss_normalization,
                             scale=scale if recipe.precision == "fp16" else 1.0)
        skipped = False
        if recipe.precision == "fp16":
            counts = fp16_round(params, scale)
            if recipe.loss_scale is not None and counts["overflow"]:
                skipped, scale = True, scale / 2  # GradScaler: skip the step, halve the scale
        if not skipped:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        rows.append({"step": step + 1, "loss": loss, "run": label or setup.name})
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    for p in params:
        p.grad = None
    model.eval()
    return pd.DataFrame(rows)


def eval_loss(model, examples: list[dict], recipe: Recipe, pad_id: int) -> float:
    """The project's evaluation: token-weighted mean loss over ``examples``, in eval mode if the recipe says so."""
    import torch

    from ..batches import in_order

    was_training = model.training
    model.train(not recipe.eval_mode)
    device = next(model.parameters()).device
    total = weight = 0.0
    try:
        with torch.no_grad():
            for batch in in_order(examples, recipe.batch_size, pad_id):
                n = label_tokens(batch)
                if n:
                    total += float(model(**{k: v.to(device) for k, v in batch.items()}).loss) * n
                    weight += n
    finally:
        model.train(was_training)
    return total / weight if weight else math.nan


def first_token_logprobs(model, tokenizer, prompts: list[str], *, batched: bool):
    """Log-probabilities of the first generated token for each prompt, through ``model.generate`` (greedy), batched
    with the tokenizer's padding side or one prompt at a time."""
    import torch

    def run(texts):
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=1, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
        return torch.log_softmax(out.logits[0].float(), dim=-1)

    return run(prompts) if batched else torch.cat([run([p]) for p in prompts])


def answer_accuracy(model, tokenizer, examples: list[dict], batch_size: int = 4) -> float:
    """Share of label tokens the model predicts exactly (greedy next token), over ``examples``: a cheap score."""
    import torch

    from ..batches import in_order

    hits = total = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in in_order(examples, batch_size, tokenizer.pad_token_id or 0):
                batch = {k: v.to(model.device) for k, v in batch.items()}
                pred = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
                labels = batch["labels"][:, 1:]
                mask = labels != IGNORE_INDEX
                hits += int((pred.argmax(-1) == labels)[mask].sum())
                total += int(mask.sum())
    finally:
        model.train(was_training)
    return hits / total if total else math.nan


def label_view(tokenizer, example: dict, *, around: int | None = None, count: int = 10):
    """One example as a table, one row per position: the token, its label (decoded) and whether it is in the loss.

    ``around``: the first position shown (default: a few tokens before the answer starts).
    """
    import pandas as pd

    labels = example["labels"]
    first = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), 0)
    start = max(0, first - 3) if around is None else around
    rows = []
    for i in range(start, min(start + count, len(example["input_ids"]))):
        label = labels[i]
        rows.append({"position": i, "token": tokenizer.decode([example["input_ids"][i]]),
                     "label": "(ignored)" if label == IGNORE_INDEX else tokenizer.decode([label]),
                     "in_loss": label != IGNORE_INDEX})
    return pd.DataFrame(rows)
