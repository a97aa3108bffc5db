"""Sanity checks before training (Karpathy, "A Recipe for Training Neural Networks", 2019) and the pre-flight
pipeline that runs them on a set-up in seconds: each check returns a ``CheckResult`` with a status and a fix.

>>> report = preflight(model, tokenizer, data, recipe)  # doctest: +SKIP
>>> report.passed, report.failed  # doctest: +SKIP
(False, ['eos_in_labels'])
"""

from __future__ import annotations

import contextlib
import html
import math
import numbers
from dataclasses import dataclass

from ..core import LabkitError
from ..units import IGNORE_INDEX
from .pipeline import (
    Recipe,
    backward_step,
    eval_loss,
    first_token_logprobs,
    micro_batches,
    prompt_for,
    trainable,
)

PASS, WARN, FAIL = "pass", "warn", "fail"
ICONS = {PASS: "✅", WARN: "⚠️", FAIL: "❌"}
# Karpathy's recipe: "verify loss @ init"; with a random head the model is uniform over V tokens, so loss = ln V.
# A pretrained model on text of its own kind starts far lower; above these shares of ln V something is off.
INIT_LOSS_WARN, INIT_LOSS_FAIL = 0.5, 0.7  # pretrained: warn above 0.5 ln V, fail above 0.7 ln V
RANDOM_INIT_BAND = 0.1  # random weights: within 10% of ln V
FP16_MIN_NORMAL = 2.0 ** -14  # smallest normal float16 (IEEE 754 binary16): below it, fewer bits of precision
FP16_LOST_FAIL = 0.01  # fail when more than 1% of the nonzero gradient entries fall below it
DEFAULT_TOLERANCE = 1e-3  # relative gap allowed between computations that must agree (accumulation, padding)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    check: str  # its name, e.g. "eos_in_labels"
    status: str  # "pass", "warn" or "fail"
    value: float  # the measured number the verdict rests on (see detail for its meaning)
    detail: str  # what was measured, in one sentence
    fix: str = ""  # what to do when it does not pass

    @property
    def line(self) -> str:
        """One line for a report: icon, name, what was measured and, unless it passed, the fix."""
        tail = f" -> fix: {self.fix}" if self.status != PASS and self.fix else ""
        return f"{ICONS[self.status]} {self.check}: {self.detail}{tail}"


def _result(check: str, ok: bool, value: float, detail: str, fix: str, *, warn: bool = False) -> CheckResult:
    return CheckResult(check, PASS if ok else (WARN if warn else FAIL), float(value), detail, "" if ok else fix)


def check_tolerance(tolerance) -> float:
    """``tolerance`` as a float, or a LabkitError saying what a tolerance must be."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not math.isfinite(tolerance) \
            or tolerance <= 0:
        raise LabkitError(f"tolerance must be a positive number (a relative gap, e.g. {DEFAULT_TOLERANCE}), "
                          f"got {tolerance!r}.")
    return float(tolerance)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _supervised(example) -> list[int]:
    return [i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX]


@contextlib.contextmanager
def _frozen_state(model):
    """Run a check without changing the weights: eval mode (no dropout), RNG forked, gradients cleared."""
    import torch

    was_training = model.training
    model.eval()
    for p in model.parameters():  # gradients left over from training would add to the ones measured here
        p.grad = None
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        for p in model.parameters():
            p.grad = None
        model.train(was_training)


# ---- data and tokenizer checks (no model run) -----------------------------------------------------------------------

def vocab_match(model, tokenizer) -> CheckResult:
    """The tokenizer's vocabulary fits the model's embedding: the same size, up to the padding models add."""
    rows = model.get_input_embeddings().weight.shape[0]
    size = len(tokenizer)
    ok = size <= rows and size >= 0.99 * rows  # models pad the embedding to a multiple of 64 or 128: well under 1%
    return _result("vocab_match", ok, size / rows,
                   f"the tokenizer has {size:,} tokens, the model's embedding {rows:,} rows",
                   "load the tokenizer saved with this model (AutoTokenizer.from_pretrained(same checkpoint)); after "
                   "adding tokens, call model.resize_token_embeddings(len(tokenizer)).")


def template_match(tokenizer, data) -> CheckResult:
    """Every example starts with the prompt the chat template builds at inference for its instruction."""
    same = 0
    for ex in data:
        prompt = tokenizer(prompt_for(tokenizer, ex["instruction"]), add_special_tokens=False)["input_ids"]
        same += list(ex["input_ids"][:len(prompt)]) == prompt
    share = same / len(data)
    return _result("template_match", share == 1, share,
                   f"{same} of {len(data)} examples start with the inference chat prompt",
                   "format training prompts with tokenizer.apply_chat_template(..., add_generation_prompt=True), the "
                   "same call generation uses.")


def label_alignment(data) -> CheckResult:
    """Labels sit on the same positions as their tokens (the model shifts them itself)."""
    same = shifted = total = 0
    for ex in data:
        ids = ex["input_ids"]
        for i in _supervised(ex):
            total += 1
            same += ex["labels"][i] == ids[i]
            shifted += i + 1 < len(ids) and ex["labels"][i] == ids[i + 1]
    share = same / total if total else 0.0
    return _result("label_alignment", share > 0.99, share,
                   f"{100 * share:.1f}% of labels equal the token at their own position "
                   f"({100 * shifted / max(total, 1):.1f}% equal the next one)",
                   "set labels = input_ids (masked where needed) without shifting: Hugging Face causal LMs shift "
                   "labels inside forward().")


def answer_only(data, recipe: Recipe) -> CheckResult:
    """With the sft objective, no prompt token is in the loss (the first token of every example is masked)."""
    if recipe.objective != "sft":
        return CheckResult("answer_only", PASS, 0.0, "objective causal_lm: every token is in the loss by design")
    on_prompt = sum(ex["labels"][0] != IGNORE_INDEX for ex in data)
    share = sum(len(_supervised(ex)) for ex in data) / sum(len(ex["labels"]) for ex in data)
    return _result("answer_only", on_prompt == 0, on_prompt / len(data),
                   f"{on_prompt} of {len(data)} examples put prompt tokens in the loss; {100 * share:.0f}% of all "
                   "tokens are labelled",
                   f"set the labels of prompt tokens to IGNORE_INDEX ({IGNORE_INDEX}), so only the answer is learned.")


def eos_in_labels(tokenizer, data) -> CheckResult:
    """Every answer ends with the end-of-turn token, in the labels, so the model learns to stop."""
    eos = tokenizer.eos_token_id
    ending = sum(bool(_supervised(ex)) and ex["labels"][_supervised(ex)[-1]] == eos for ex in data)
    share = ending / len(data)
    return _result("eos_in_labels", share == 1, share,
                   f"{ending} of {len(data)} examples end their labels with {tokenizer.eos_token!r}",
                   "append tokenizer.eos_token to every answer (and keep it in the labels) so generation stops.",
                   warn=share >= 0.9)


# ---- checks that run the model --------------------------------------------------------------------------------------

def _first_step(data, recipe: Recipe, tokenizer) -> list[dict]:
    return micro_batches(data, recipe, _pad_id(tokenizer), 0)


def one_batch(data, recipe: Recipe, tokenizer) -> dict:
    """The examples of the first optimizer step as one right-padded batch."""
    from ..batches import collate

    n = recipe.examples_per_step
    return collate([data[i % len(data)] for i in range(n)], _pad_id(tokenizer))


def init_loss(model, tokenizer, data, recipe: Recipe) -> CheckResult:
    """Karpathy's "verify loss @ init": ln V for random weights; far below it for a pretrained model on its data."""
    import torch

    batch = _first_step(data, recipe, tokenizer)[0]  # one micro-batch is enough for a mean loss
    vocab = model.get_input_embeddings().weight.shape[0]
    with _frozen_state(model), torch.no_grad():
        loss = float(model(**{k: v.to(model.device) for k, v in batch.items()}).loss)
    ln_v = math.log(vocab)
    share = loss / ln_v
    if recipe.pretrained:
        ok, warn = share <= INIT_LOSS_WARN, share <= INIT_LOSS_FAIL
        expect = f"a pretrained model should start well below ln V = {ln_v:.2f}"
        fix = ("check that the tokenizer is the model's own and the prompt format is the one it was trained with; "
               "a loss near ln V means the model sees noise.")
    else:
        ok = warn = abs(share - 1) <= RANDOM_INIT_BAND
        expect = f"random weights should start near ln V = {ln_v:.2f}"
        fix = "a random model far from ln V has a broken initialisation or loss: check the head and the labels."
    status = PASS if ok and math.isfinite(loss) else (WARN if warn and math.isfinite(loss) else FAIL)
    return CheckResult("init_loss", status, loss, f"loss at init {loss:.3f} ({share:.2f} ln V); {expect}",
                       "" if status == PASS else fix)


def step_gradients(model, tokenizer, data, recipe: Recipe, *, as_one_batch: bool = False) -> tuple[float, dict]:
    """(loss, {name: gradient}) of the first optimizer step as the recipe computes it, or as one big batch with
    token normalisation (the reference); dropout off, the model left unchanged."""
    batches = [one_batch(data, recipe, tokenizer)] if as_one_batch else _first_step(data, recipe, tokenizer)
    normalization = "tokens" if as_one_batch else recipe.loss_normalization
    with _frozen_state(model):
        loss = backward_step(model, batches, normalization)
        grads = {n: (p.grad.detach().clone() if p.grad is not None else None)
                 for n, p in model.named_parameters() if p.requires_grad}
    return loss, grads


def gradient_table(model, tokenizer, data, recipe: Recipe, *, grads: dict | None = None):
    """The gradient of the first step (one batch, dropout off) per trainable tensor: name, kind, gradient and weight
    norms. LoRA's A gets zero at step 0 because B starts at zero: dL/dA = B^T (dL/dh) x^T."""
    import pandas as pd

    if grads is None:
        _, grads = step_gradients(model, tokenizer, data, recipe, as_one_batch=True)
    params = dict(model.named_parameters())
    rows = []
    for name, grad in grads.items():
        kind = next((k for k in ("lora_A", "lora_B") if k in name), name.rsplit(".", 1)[-1])
        rows.append({"tensor": name, "kind": kind, "grad_norm": float(grad.norm()) if grad is not None else math.nan,
                     "weight_norm": float(params[name].detach().norm())})
    return pd.DataFrame(rows)


def gradient_flow(model, tokenizer, data, recipe: Recipe, *, grads: dict | None = None) -> CheckResult:
    """Every trainable tensor gets a gradient; LoRA's A gets zero at step 0 only because its B starts at zero."""
    if grads is None:
        _, grads = step_gradients(model, tokenizer, data, recipe, as_one_batch=True)
    params = dict(model.named_parameters())
    missing = [n for n, g in grads.items() if g is None]
    bad = [n for n, g in grads.items() if g is not None and not bool(g.isfinite().all())]
    zero = [n for n, g in grads.items() if g is not None and not bool(g.any())]
    explained = [n for n in zero if "lora_A" in n and not bool(params[n.replace("lora_A", "lora_B")].any())]
    dead = missing + bad + [n for n in zero if n not in explained]
    flowing = len(grads) - len(dead) - len(explained)
    detail = (f"{flowing} of {len(grads)} trainable tensors get a nonzero gradient; {len(explained)} LoRA A matrices "
              "get zero because their B starts at zero (expected at step 0)")
    if dead:
        detail += f"; no usable gradient: {dead[0]}" + (f" and {len(dead) - 1} more" if len(dead) > 1 else "")
    return _result("gradient_flow", not dead and flowing > 0, len(dead), detail,
                   "make sure every trainable parameter is used in forward() and the loss is finite; freeze what "
                   "forward() never uses.")


def optimizer_covers(model, recipe: Recipe) -> CheckResult:
    """The optimizer holds every trainable parameter (built after the method was applied)."""
    params = trainable(model)
    if recipe.optimizer is None:
        return CheckResult("optimizer_covers", PASS, 1.0,
                           f"the optimizer is built at training time over the {len(params)} trainable tensors")
    held = {id(p) for group in recipe.optimizer.param_groups for p in group["params"]}
    share = sum(id(p) in held for p in params) / len(params)
    return _result("optimizer_covers", share == 1, share,
                   f"the optimizer holds {100 * share:.0f}% of the {len(params)} trainable tensors",
                   "build the optimizer after lk.apply_method, from [p for p in model.parameters() if "
                   "p.requires_grad].")


def relative_gap(grads: dict, reference: dict) -> float:
    """||g - g_ref|| / ||g_ref|| over all tensors that have a gradient in both."""
    num = den = 0.0
    for name, ref in reference.items():
        g = grads.get(name)
        if ref is None or g is None:
            continue
        num += float((g - ref).double().pow(2).sum())
        den += float(ref.double().pow(2).sum())
    return math.sqrt(num / den) if den else math.nan


def accumulation_match(model, tokenizer, data, recipe: Recipe, *, tolerance: float = DEFAULT_TOLERANCE,
                       reference: dict | None = None) -> CheckResult:
    """batch_size x grad_accum micro-batches give the gradient of one batch of the same examples."""
    tolerance = check_tolerance(tolerance)
    if recipe.grad_accum == 1:
        return CheckResult("accumulation_match", PASS, 0.0, "grad_accum = 1: no accumulation to check")
    if reference is None:
        _, reference = step_gradients(model, tokenizer, data, recipe, as_one_batch=True)
    _, grads = step_gradients(model, tokenizer, data, recipe)
    gap = relative_gap(grads, reference)
    return _result("accumulation_match", gap <= tolerance, gap,
                   f"{recipe.batch_size} x {recipe.grad_accum} accumulated vs one batch of "
                   f"{recipe.examples_per_step}: gradients differ by {gap:.2e} (relative; tolerance {tolerance:g})",
                   "normalise by the label tokens of the whole step: sum the token losses and divide by the step's "
                   "token count (transformers' num_items_in_batch), not the mean of micro-batch means.")


def eval_deterministic(model, tokenizer, data, recipe: Recipe) -> CheckResult:
    """The project's evaluation runs with dropout off: no dropout layer is active, and two runs give the same loss.

    (At step 0 LoRA's B is zero, so dropout on the adapter's input cannot change the loss yet: the check watches the
    dropout layers themselves.)
    """
    import torch

    examples = [data[i % len(data)] for i in range(recipe.batch_size)]  # one micro-batch
    active = set()

    def spy(module, args):
        if module.training and module.p > 0:
            active.add(id(module))

    handles = [m.register_forward_pre_hook(spy) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    try:
        with torch.random.fork_rng(devices=[]):
            first, second = (eval_loss(model, examples, recipe, _pad_id(tokenizer)) for _ in range(2))
    finally:
        for handle in handles:
            handle.remove()
    gap = abs(first - second)
    ok = not active and gap <= 1e-6 * max(1.0, abs(first))
    return _result("eval_deterministic", ok, len(active),
                   f"{len(active)} dropout layers were active during evaluation; two evaluations of the same batch "
                   f"gave {first:.5f} and {second:.5f}",
                   "call model.eval() before evaluating (and model.train() after), so dropout is off.")


def _prompts(tokenizer, data, count: int = 2) -> list[str]:
    texts = sorted({prompt_for(tokenizer, ex["instruction"]) for ex in data[:16]}, key=len)
    return [texts[0], texts[-1]] if len(texts) >= count else texts


def generation_padding(model, tokenizer, data, *, tolerance: float = DEFAULT_TOLERANCE) -> CheckResult:
    """Batched generation (prompts of different lengths, padded) predicts what one-at-a-time generation does."""

    tolerance = check_tolerance(tolerance)
    prompts = _prompts(tokenizer, data)
    if len(prompts) < 2:
        return CheckResult("generation_padding", WARN, math.nan,
                           "all prompts have the same length, so padding could not be tested",
                           "give the check prompts of different lengths.")
    with _frozen_state(model), _quiet_right_padding_warning():
        batched = first_token_logprobs(model, tokenizer, prompts, batched=True)
        single = first_token_logprobs(model, tokenizer, prompts, batched=False)
    gap = float((batched - single).abs().max())
    agree = bool((batched.argmax(-1) == single.argmax(-1)).all())
    return _result("generation_padding", gap <= tolerance * max(1.0, float(single.abs().max())) and agree, gap,
                   f"padding side {tokenizer.padding_side!r}: first-token log-probs batched vs one at a time differ by "
                   f"up to {gap:.2e}; top token {'agrees' if agree else 'differs'}",
                   "set tokenizer.padding_side = 'left' before batched generation with a decoder-only model.")


@contextlib.contextmanager
def _quiet_right_padding_warning():
    """transformers warns about right padding at generation; the check reports it itself (one line, with a fix)."""
    import logging

    logger = logging.getLogger("transformers.generation.utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def fp16_gradients(model, tokenizer, data, recipe: Recipe, *, grads: dict | None = None) -> CheckResult:
    """In fp16, the scaled gradients stay in fp16's normal range: few fall below it (where they lose precision or
    become 0) and none overflow to inf without a scaler to skip the step."""
    import torch

    if recipe.precision != "fp16":
        return CheckResult("fp16_gradients", PASS, 0.0, f"precision {recipe.precision}: gradients keep 8 exponent bits")
    if grads is None:
        _, grads = step_gradients(model, tokenizer, data, recipe, as_one_batch=True)
    scale = recipe.loss_scale or 1.0
    nonzero = lost = vanished = overflow = 0
    for g in grads.values():
        if g is None:
            continue
        half = (g.float() * scale).to(torch.float16)
        kept = g != 0
        nonzero += int(kept.sum())
        lost += int((kept & (half.float().abs() < FP16_MIN_NORMAL)).sum())
        vanished += int((kept & (half == 0)).sum())
        overflow += int((~half.isfinite()).sum())
    share = lost / max(nonzero, 1)
    scaled = f"loss scale {scale:g}" if recipe.loss_scale else "no loss scaling"
    ok = share <= FP16_LOST_FAIL and (overflow == 0 or recipe.loss_scale is not None)
    return _result("fp16_gradients", ok, share,
                   f"{scaled}: {100 * share:.1f}% of nonzero gradient entries fall below fp16's smallest normal "
                   f"number ({FP16_MIN_NORMAL:.1e}), losing precision ({100 * vanished / max(nonzero, 1):.2f}% become "
                   f"exactly 0); {overflow} become inf",
                   "use a loss scaler (torch.amp.GradScaler, which starts at 2**16 and backs off on inf), or bf16.")


def overflow_watch(model, tokenizer, data, recipe: Recipe) -> CheckResult:
    """One forward pass under transformers' DebugUnderflowOverflow: no inf or nan in any weight or activation."""
    batch = _first_step(data, recipe, tokenizer)[0]
    with _frozen_state(model):
        found, report = watch_forward(model, batch, dtype="fp16" if recipe.precision == "fp16" else "fp32")
    first = next((line.strip() for line in report.splitlines() if "has infs" in line or "has nans" in line), "")
    return _result("overflow_watch", not found, float(found),
                   "DebugUnderflowOverflow saw " + (f"inf/nan ({first})" if found else "no inf or nan in a forward "
                                                    "pass"),
                   "find the first module in the report whose output is inf; lower the lr, keep that layer in fp32, "
                   "or train in bf16.")


def watch_forward(model, batch: dict, *, dtype: str = "fp32", max_frames: int = 3) -> tuple[bool, str]:
    """Run one forward pass under transformers' DebugUnderflowOverflow (fp16: under torch.autocast); return
    (inf/nan found, what it printed). Its hooks are removed afterwards."""
    import io

    import torch
    from transformers.debug_utils import DebugUnderflowOverflow

    buffer = io.StringIO()
    autocast = (lambda: torch.autocast(model.device.type, dtype=torch.float16)) if dtype == "fp16" \
        else contextlib.nullcontext
    with contextlib.redirect_stdout(buffer):
        debug = DebugUnderflowOverflow(model, max_frames_to_save=max_frames)
        try:
            with torch.no_grad(), autocast():
                model(**{k: v.to(model.device) for k, v in batch.items()})
            found = False
        except ValueError as err:
            if "DebugUnderflowOverflow" not in str(err):
                raise
            found = True
        finally:
            for module in model.modules():  # it registers hooks without handles: remove its own
                for key, hook in list(module._forward_hooks.items()):
                    if getattr(hook, "__self__", None) is debug:
                        del module._forward_hooks[key]
    return found, buffer.getvalue()


# ---- the pipeline ---------------------------------------------------------------------------------------------------

CHECKS = ("vocab_match", "template_match", "label_alignment", "answer_only", "eos_in_labels", "init_loss",
          "gradient_flow", "optimizer_covers", "accumulation_match", "eval_deterministic", "generation_padding",
          "fp16_gradients", "overflow_watch")


@dataclass
class PreflightReport:
    """What ``preflight`` found: one CheckResult per check, in order."""

    results: list  # CheckResult per check
    name: str = "set-up"  # what was checked

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return not self.failed

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [r.check for r in self.results if r.status == FAIL]

    @property
    def warned(self) -> list[str]:
        """Names of the checks that warned."""
        return [r.check for r in self.results if r.status == WARN]

    def __getitem__(self, check: str) -> CheckResult:
        for r in self.results:
            if r.check == check:
                return r
        raise LabkitError(f"No check {check!r} in this report: it has {', '.join(r.check for r in self.results)}.")

    @property
    def table(self):
        """The report as a DataFrame: check, status, value, detail, fix."""
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.results])

    @property
    def summary(self) -> str:
        """One line: how many checks passed, warned and failed."""
        counts = {s: sum(r.status == s for r in self.results) for s in (PASS, WARN, FAIL)}
        verdict = "ready to train" if self.passed else f"fix {', '.join(self.failed)} first"
        return (f"pre-flight of {self.name}: {counts[PASS]} passed, {counts[WARN]} warned, {counts[FAIL]} failed: "
                f"{verdict}")

    def __str__(self) -> str:
        return "\n".join([self.summary, *(r.line for r in self.results)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colours = {PASS: "#e9f5ec", WARN: "#fff4d6", FAIL: "#fde2e1"}
        rows = "".join(f'<tr style="background:{colours[r.status]}"><td>{ICONS[r.status]} {html.escape(r.check)}</td>'
                       f"<td>{html.escape(r.detail)}</td><td>{html.escape(r.fix)}</td></tr>" for r in self.results)
        return (f"<b>{html.escape(self.summary)}</b><table><tr><th>check</th><th>measured</th><th>fix</th></tr>"
                f"{rows}</table>")


def _as_recipe(config) -> Recipe:
    if isinstance(config, Recipe):
        return config
    from ..training import TrainConfig

    if isinstance(config, TrainConfig):  # lk.train weights each micro-batch by its share of the step's label tokens
        return Recipe(objective="sft" if config.objective in ("sft", "auto") else "causal_lm",
                      batch_size=config.batch_size, grad_accum=config.grad_accum, lr=config.lr or 1e-3,
                      loss_normalization="tokens", precision="fp16" if config.mixed_precision == "fp16" else "fp32",
                      loss_scale=2.0 ** 16 if config.mixed_precision == "fp16" else None)
    raise LabkitError(f"config must be a Recipe (labkit.validation.Recipe) or an "
                      f"lk.TrainConfig, got {type(config).__name__}.")


def preflight(model, tokenizer=None, data=None, config=None, *, tolerance: float = DEFAULT_TOLERANCE,
              name: str | None = None, show: bool = False) -> PreflightReport:
    """Run every check on a set-up in seconds, without changing the model; return the report (pass/warn/fail + fix).

    ``data``: examples with instruction, answer, input_ids and labels (``pipeline.make_examples``); ``config``: a
    ``Recipe`` or an ``lk.TrainConfig``. A ``Setup`` (from the zoo) can be passed alone.

    >>> report = lk.preflight(model, tokenizer, data, recipe)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    from .pipeline import Setup

    if isinstance(model, Setup):
        setup = model
        model, tokenizer, data, config = setup
        name = name or setup.name
    tolerance = check_tolerance(tolerance)
    if tokenizer is None:
        raise LabkitError("preflight needs the tokenizer too: preflight(model, tokenizer, data, config).")
    recipe = _as_recipe(config if config is not None else Recipe())
    if data is None or len(data) == 0:
        raise LabkitError("The data is empty: pass the tokenized training examples (pipeline.make_examples), at "
                          f"least {recipe.examples_per_step} of them (one optimizer step).")
    data = list(data)
    missing = [k for k in ("instruction", "input_ids", "labels") if k not in data[0]]
    if missing:
        raise LabkitError(f"Each example needs instruction, input_ids and labels (missing {missing}): build them "
                          "with pipeline.make_examples(tokenizer, rows).")
    if not trainable(model):
        raise LabkitError("The model has no trainable parameters, so there is nothing to check or train: apply a "
                          "method first, e.g. model = lk.apply_method(model, 'lora').")
    results = [vocab_match(model, tokenizer), template_match(tokenizer, data), label_alignment(data),
               answer_only(data, recipe), eos_in_labels(tokenizer, data), init_loss(model, tokenizer, data, recipe)]
    _, reference = step_gradients(model, tokenizer, data, recipe, as_one_batch=True)
    results += [gradient_flow(model, tokenizer, data, recipe, grads=reference), optimizer_covers(model, recipe),
                accumulation_match(model, tokenizer, data, recipe, tolerance=tolerance, reference=reference),
                eval_deterministic(model, tokenizer, data, recipe),
                generation_padding(model, tokenizer, data, tolerance=tolerance),
                fp16_gradients(model, tokenizer, data, recipe, grads=reference),
                overflow_watch(model, tokenizer, data, recipe)]
    report = PreflightReport(results, name=name or "set-up")
    if show:
        print(report)
    return report
