"""Train several fine-tuning methods under one budget on one task and measure them side by side.

Every number in the table is measured in the run: trainable share, bytes written per task, peak training memory,
time per step, task quality, and forward latency before and after merging (plus the meters' prediction next to the
measured memory, for comparison).

>>> import labkit as lk
>>> task = lk.compare.intent_task(num_train=256, num_eval=32)  # doctest: +SKIP
>>> result = lk.compare.compare_methods(task, CompareConfig(num_steps=10))  # doctest: +SKIP
>>> result.table[["trainable_pct", "stored_bytes", "quality"]]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import functools
import gc
import math
import tempfile
import time
from dataclasses import dataclass, field

from ...core import LabkitError, resolve_device, resolve_dtype
from ...units import GIB, IGNORE_INDEX, MIB

INTENT_TEMPLATE = "Classify this help-desk message as one of: {labels}.\nMessage: {text}"


@dataclass
class Task:
    """One task every method trains on and is scored on."""

    name: str  # shown in tables and plots
    train: object  # datasets.Dataset of instruction/answer rows for the language-model methods (SFT)
    eval: object  # held-out instruction/answer rows; quality = exact match of the generated answer
    labels: list[str] | None = None  # class names when every answer is a label (lets linear_probe join)
    probe_train: object = None  # text/label rows for a classification head (linear_probe), same examples
    probe_eval: object = None  # text/label rows to score the head, same examples as ``eval``
    max_new_tokens: int = 8  # answer length generated when scoring

    def __post_init__(self):
        for split in ("train", "eval"):
            data = getattr(self, split)
            if data is None or len(data) == 0:
                raise LabkitError(f"Task {self.name!r}: the {split} set is empty; give it some rows.")
            missing = {"instruction", "answer"} - set(data.column_names)
            if missing:
                raise LabkitError(f"Task {self.name!r}: the {split} set needs instruction and answer columns "
                                  f"(missing {sorted(missing)}); build it with classification_task(...) or map "
                                  "your rows to {'instruction': ..., 'answer': ...}.")
        if (self.probe_train is None) != (self.probe_eval is None):
            raise LabkitError("Give both probe_train and probe_eval (text/label rows), or neither.")
        if self.probe_train is not None and not self.labels:
            raise LabkitError("A task with probe data needs labels=[...]: the class names the head predicts.")


def classification_task(name: str, train, eval, labels, *, template: str = INTENT_TEMPLATE,
                        max_new_tokens: int = 8) -> Task:
    """A text/label data set framed for every method: SFT to the label word, and a head for linear_probe.

    ``template`` turns a row into the instruction; it may use ``{text}`` and ``{labels}`` (the comma-separated
    class names), so the model sees the choices in its prompt.
    """
    labels = [str(label) for label in labels]
    if "{text}" not in template:
        raise LabkitError("template must contain {text} (where the message goes), e.g. 'Classify: {text}'.")
    choices = ", ".join(labels)

    def frame(row):
        return {"instruction": template.format(text=row["text"], labels=choices), "answer": str(row["label"])}

    def as_sft(data):
        return data.map(frame, remove_columns=data.column_names)

    from ...data import _quiet

    with _quiet():
        return Task(name, as_sft(train), as_sft(eval), labels=labels, probe_train=train, probe_eval=eval,
                    max_new_tokens=max_new_tokens)


def intent_task(num_train: int | None = None, num_eval: int | None = None, *, seed: int = 0) -> Task:
    """The kit's help-desk intents (8 classes) as a classification task; ``num_*`` take a shuffled subset."""
    from ...data import INTENT_LABELS, load_intents

    intents = load_intents()
    train, eval_set = intents["train"].shuffle(seed=seed), intents["validation"].shuffle(seed=seed)
    if num_train is not None:
        train = train.select(range(min(num_train, len(train))))
    if num_eval is not None:
        eval_set = eval_set.select(range(min(num_eval, len(eval_set))))
    return classification_task("intents", train, eval_set, list(INTENT_LABELS))


@dataclass
class CompareConfig:
    """One budget shared by every method in a comparison."""

    methods: list[str] | None = None  # methods to compare; None: every registered method, in registry order
    num_steps: int = 20  # optimizer steps per method: the shared budget
    batch_size: int = 8  # examples per step
    seq_len: int = 128  # longest example in tokens (longer ones are cut)
    lr: dict = field(default_factory=dict)  # per-method learning rates; missing ones: get_method(name).default_lr
    method_kwargs: dict = field(default_factory=dict)  # per-method settings for apply_method, e.g. {"lora": {...}}
    latency_batch_size: int = 4  # rows in the batch whose forward pass is timed
    latency_seq_len: int = 64  # tokens per row of that batch
    latency_repeats: int = 5  # timed forward passes (after one warm-up); the fastest is reported
    seed: int = 0  # seeds the new weights and the batch order of every method alike

    def __post_init__(self):
        from ...methods import list_methods

        known = list_methods()
        self.methods = list(known if self.methods is None else self.methods)
        unknown = [m for m in self.methods if m not in known]
        if unknown or not self.methods:
            raise LabkitError(f"Unknown or no methods {unknown}: choose from {', '.join(known)}.")
        for name in ("num_steps", "batch_size", "seq_len", "latency_batch_size", "latency_seq_len", "latency_repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
        stray = sorted((set(self.lr) | set(self.method_kwargs)) - set(known))
        if stray:
            raise LabkitError(f"lr / method_kwargs name unknown methods {stray}: use names from {', '.join(known)}.")

    def lr_for(self, method: str) -> float:
        """The learning rate ``method`` trains with: the one given in ``lr``, else the registry's default_lr."""
        from ...methods import get_method

        return float(self.lr.get(method, get_method(method).default_lr))


@dataclass
class Comparison:
    """What compare_methods measured: a tidy table (one row per method), loss curves and the untrained baseline."""

    table: object  # pandas DataFrame indexed by method; see COLUMNS for what each column holds
    histories: dict  # method -> training history DataFrame (for plots.loss_curves)
    baseline: dict  # the untrained model: quality and eval_loss (zero-shot), forward latency_ms
    settings: dict  # the budget and model the comparison used

    def plot(self):
        """Loss curves of every trained method in one plotly figure."""
        from ... import plots

        return plots.loss_curves(self.histories)

    def view(self):
        """The table with readable column names and units, for display."""
        return self.table[list(VIEW)].rename(columns=VIEW)


COLUMNS = {
    "status": "'trained', or why the method was left out",
    "trainable": "parameters that received gradients",
    "trainable_pct": "100 * trainable / all parameters of the model",
    "stored_bytes": "size of the safetensors file save_trainable wrote (one task's checkpoint)",
    "weights_gib": "bytes of the model's tensors in memory (a 4-bit base is counted packed)",
    "train_mem_gib": "measured peak of training above the loaded model (gradients, optimizer, activations): the "
                     "resident size on the CPU, which also holds memory the C allocator keeps for reuse",
    "peak_mem_gib": "weights_gib + train_mem_gib: the peak while training",
    "live_mem_gib": "weights_gib + the peak of live tensors in one profiled training step (lk.train's live_memory; "
                    "on CUDA the same as peak_mem_gib): what predicted_mem_gib forecasts",
    "predicted_mem_gib": "meters.predict_memory for the same setting (total, weights included)",
    "time_per_step_s": "training wall time per optimizer step",
    "final_loss": "training loss at the last step",
    "quality": "accuracy on the eval rows: the label chosen by first-token score (or the head), else exact match",
    "eval_loss": "loss on the eval rows: cross-entropy over the labels (ln 8 = 2.08 is a guess), else the SFT loss",
    "base_latency_ms": "fastest forward time of the model before the method was applied",
    "latency_ms": "fastest forward time with the method applied",
    "latency_overhead_pct": "100 * (latency_ms / base_latency_ms - 1)",
    "merged_latency_ms": "fastest forward time after merging the update into the weights (mergeable methods)",
    "merge_max_diff": "largest logit change caused by merging (0 for an exact merge)",
    "note": "what to know about this row",
}
VIEW = {"trainable_pct": "% params updated", "stored_bytes": "storage per task (bytes)",
        "peak_mem_gib": "peak train mem, resident (GiB)", "live_mem_gib": "live tensors (GiB)",
        "predicted_mem_gib": "predicted (GiB)", "time_per_step_s": "s / step",
        "quality": "quality (acc)", "eval_loss": "eval loss", "latency_overhead_pct": "latency +% (unmerged)",
        "merged_latency_ms": "merged latency (ms)", "note": "note"}


def tensor_bytes(model) -> int:
    """Bytes of every parameter and buffer of ``model`` as stored (tied tensors once, 4-bit weights packed)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def measure_latency_ms(model, input_ids, attention_mask=None, *, repeats: int = 5) -> float:
    """Fastest wall time in milliseconds of ``repeats`` forward passes (no gradients) after one warm-up pass.

    The fastest run, not the mean: on a busy machine other processes only ever add time (as ``timeit`` advises).
    """
    return _timed_forward(model, input_ids, attention_mask, repeats)[0]


def _timed_forward(model, input_ids, attention_mask, repeats: int):
    """(fastest of ``repeats`` forward passes in ms after a warm-up, the logits of the last pass as fp32 on the CPU)."""
    import torch

    device = next(model.parameters()).device
    batch = {"input_ids": input_ids.to(device)}
    if attention_mask is not None:
        batch["attention_mask"] = attention_mask.to(device)
    was_training = model.training
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model(**batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(1000 * (time.perf_counter() - start))
    model.train(was_training)
    return min(times), out.logits.float().cpu()


def answer_first_tokens(tokenizer, labels) -> list[int]:
    """Token id each label's answer starts with, tokenized exactly as SFT training tokenizes answers."""
    from ...batches import tokenize

    rows = [{"instruction": "?", "answer": label} for label in labels]
    firsts = [next(t for t in ex["labels"] if t != IGNORE_INDEX) for ex in tokenize(rows, tokenizer, "sft", seq_len=512)]
    clashes = sorted({label for label, tok in zip(labels, firsts) if firsts.count(tok) > 1})
    if clashes:
        raise LabkitError(f"Labels {clashes} start with the same token, so the first token cannot tell them apart: "
                          "rename them (e.g. 'a_billing') or score with lk.training.evaluate_exact_match instead.")
    return firsts


@functools.lru_cache(maxsize=1)
def _accuracy_metric():
    from ...metrics import load_metric

    return load_metric("accuracy")  # evaluate.load takes a moment: once per process is enough


def choice_scores(model, tokenizer, data, labels, *, batch_size: int = 16) -> dict:
    """Accuracy and loss when the model chooses among ``labels`` by their first answer token (one forward pass).

    ``accuracy``: the most likely label is the right one. ``loss``: cross-entropy of a softmax over the labels'
    first tokens only (ln of the number of labels for a uniform guess), comparable with a classifier head's loss.

    >>> choice_scores(model, tokenizer, task.eval, task.labels)  # doctest: +SKIP
    {'accuracy': 0.4375, 'loss': 1.61}
    """
    import torch

    from ...batches import prompt_text

    firsts = torch.tensor(answer_first_tokens(tokenizer, labels))
    index = {label: i for i, label in enumerate(labels)}
    device = next(model.parameters()).device
    references = torch.tensor([index[str(a)] for a in data["answer"]])
    scores = []
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(data), batch_size):
            prompts = [prompt_text(tokenizer, q) for q in data["instruction"][i:i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                logits = model(**enc).logits
            offset = logits.shape[1] - enc["input_ids"].shape[1]  # prompt tuning puts virtual tokens in front
            last = enc["attention_mask"].sum(1) - 1 + offset
            scores.append(logits[torch.arange(len(prompts), device=device), last][:, firsts.to(device)].float().cpu())
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    scores = torch.cat(scores)
    accuracy = _accuracy_metric().compute(predictions=scores.argmax(-1).tolist(), references=references.tolist())
    loss = torch.nn.functional.cross_entropy(scores, references).item()
    return {"accuracy": float(accuracy["accuracy"]), "loss": loss}


def _quality(model, tokenizer, task: Task, is_probe: bool) -> tuple[float, float]:
    """(quality, eval loss) of ``model`` on the task's held-out rows."""
    from ...training import evaluate_exact_match, evaluate_loss

    if is_probe:
        found = evaluate_loss(model, tokenizer, task.probe_eval, objective="classification", limit=len(task.probe_eval))
        return found["eval_accuracy"], found["eval_loss"]
    if task.labels:
        found = choice_scores(model, tokenizer, task.eval, task.labels)
        return found["accuracy"], found["loss"]
    loss = evaluate_loss(model, tokenizer, task.eval, objective="sft", limit=len(task.eval))["eval_loss"]
    return evaluate_exact_match(model, tokenizer, task.eval, max_new_tokens=task.max_new_tokens,
                                limit=len(task.eval)).score, loss


def _predicted_gib(config, method, kwargs, cfg: CompareConfig, dtype, device) -> float:
    from ...meters import predict_memory
    from ...methods import get_method

    quant = get_method(method).base_quantization
    names = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    try:
        est = predict_memory(config, method, batch_size=cfg.batch_size, seq_len=cfg.seq_len, quantization=quant,
                             dtype=names.get(str(dtype).replace("torch.", ""), "fp32"),
                             device="cuda" if device.startswith("cuda") else "cpu", **kwargs)
    except LabkitError:
        return math.nan
    return est.total_gib


def _empty_row(status: str, note: str) -> dict:
    row = {name: math.nan for name in COLUMNS}
    row.update(status=status, note=note, trainable=0)
    return row


def _free(*objects) -> None:
    import torch

    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def compare_methods(task: Task, cfg: CompareConfig | None = None, *, model_name: str = "smollm2-135m", model=None,
                    tokenizer=None, device: str = "auto", progress: bool = True) -> Comparison:
    """Train each method of ``cfg`` from the same base for the same budget on ``task``; measure everything.

    ``model``/``tokenizer`` (optional) is the base, copied for every method and never changed; otherwise
    ``model_name`` is loaded. QLoRA loads its own 4-bit base. A method that cannot apply to this model (BitFit on a
    bias-free Llama) or cannot run here gets a row that says why, and the table points to its analogue.

    >>> result = compare_methods(intent_task(64, 16), CompareConfig(num_steps=4))  # doctest: +SKIP
    >>> result.view()  # doctest: +SKIP
    """
    from ...methods import get_method
    from ...models import load_model

    cfg = cfg or CompareConfig()
    device = resolve_device(device)
    dtype = resolve_dtype("auto", device)
    if model is None:
        model, tokenizer = load_model(model_name, device="cpu", dtype=dtype)  # the reference copy stays on the CPU
    elif tokenizer is None:
        raise LabkitError("Pass the tokenizer together with the model: compare_methods(task, model=m, tokenizer=t).")
    heads = [name for name in cfg.methods if get_method(name).family == "head"]
    if heads and task.probe_train is None:
        raise LabkitError(f"{heads[0]} needs a classification task (probe_train/probe_eval): build the task with "
                          f"classification_task(...) or leave {heads[0]!r} out of cfg.methods.")
    ids = tokenizer([r["instruction"] for r in task.eval.select(range(min(len(task.eval), cfg.latency_batch_size)))],
                    return_tensors="pt", padding="max_length", truncation=True, max_length=cfg.latency_seq_len)
    input_ids, attention_mask = ids["input_ids"], ids["attention_mask"]
    while input_ids.shape[0] < cfg.latency_batch_size:  # fewer eval rows than the latency batch: repeat them
        input_ids, attention_mask = (input_ids.repeat(2, 1)[:cfg.latency_batch_size],
                                     attention_mask.repeat(2, 1)[:cfg.latency_batch_size])

    gc.collect()
    gc.freeze()  # what exists now (the base, the libraries) outlives the run: _free's collections skip it
    try:
        return _compare(task, cfg, model, tokenizer, model_name, device, dtype, (input_ids, attention_mask), progress)
    finally:
        gc.unfreeze()


def _compare(task, cfg, model, tokenizer, model_name, device, dtype, latency_batch, progress) -> Comparison:
    import pandas as pd
    from tqdm.auto import tqdm

    input_ids, attention_mask = latency_batch
    config = model.config
    rows, histories = {}, {}
    base = copy.deepcopy(model).to(device)
    quality, loss = _quality(base, tokenizer, task, is_probe=False)
    baseline = {"quality": quality, "eval_loss": loss,
                "latency_ms": measure_latency_ms(base, input_ids, attention_mask, repeats=cfg.latency_repeats)}
    _free(base)
    bar = tqdm(cfg.methods, desc="methods", unit="method", disable=not progress)
    for name in bar:
        bar.set_postfix(method=name, refresh=True)
        rows[name] = _run_one(name, task, cfg, model, tokenizer, model_name, device, dtype, config, latency_batch,
                              histories, progress)
    bar.close()
    point_to_analogues(rows)
    table = pd.DataFrame.from_dict(rows, orient="index")[list(COLUMNS)]
    table.index.name = "method"
    settings = {"model": getattr(config, "_name_or_path", model_name) or model_name, "num_steps": cfg.num_steps,
                "batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "device": device, "dtype": str(dtype),
                "task": task.name, "num_eval": len(task.eval)}
    return Comparison(table, histories, baseline, settings)


def point_to_analogues(rows: dict) -> None:
    """Add to the note of each method left out a pointer to its analogue's row (the registry's ``analogue``)."""
    from ...methods import get_method

    for name, row in rows.items():
        stand_in = get_method(name).analogue
        if stand_in in rows and row["status"] != "trained" and f"'{stand_in}'" not in row["note"]:
            row["note"] += f" Its nearest analogue, {stand_in!r}, has a row of its own."


def _run_one(name, task, cfg, model, tokenizer, model_name, device, dtype, config, latency_batch, histories,
             progress) -> dict:
    """Measure one method; a refusal becomes a row that says why."""
    import torch

    from ...meters import param_summary
    from ...methods import apply_method, get_method, merge_lora, save_trainable
    from ...models import load_model
    from ...training import train

    input_ids, attention_mask = latency_batch
    method = get_method(name)
    kwargs = dict(cfg.method_kwargs.get(name, {}))
    is_probe = method.family == "head"  # a classification head: it trains and is scored on the probe rows
    if is_probe:
        kwargs.setdefault("labels", list(task.labels))
    try:
        if method.base_quantization is not None:
            fresh, _ = load_model(model_name, quantization=method.base_quantization, device=device, dtype=dtype)
        else:
            fresh = copy.deepcopy(model).to(device)
        base_latency = measure_latency_ms(fresh, input_ids, attention_mask, repeats=cfg.latency_repeats)
        adapted = apply_method(fresh, name, seed=cfg.seed, **kwargs)
    except LabkitError as err:
        return _empty_row("not applicable", str(err))
    except torch.cuda.OutOfMemoryError:
        _free()
        return _empty_row("out of memory", f"{name} did not fit in this GPU's memory at this budget.")
    summary = param_summary(adapted)
    weights = tensor_bytes(adapted)
    try:
        result = train(adapted, tokenizer, task.probe_train if is_probe else task.train, num_steps=cfg.num_steps,
                       batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr_for(name), seed=cfg.seed,
                       live_plot=False, progress=progress, label=name, live_memory=True)
    except torch.cuda.OutOfMemoryError:
        _free(adapted)
        return _empty_row("out of memory", f"training {name} did not fit in this GPU's memory at this budget.")
    histories[name] = result.history
    with tempfile.TemporaryDirectory() as folder:
        stored = save_trainable(adapted, folder).stat().st_size
    quality, eval_loss = _quality(adapted, tokenizer, task, is_probe)
    latency, logits = _timed_forward(adapted, input_ids, attention_mask, cfg.latency_repeats)
    row = {"status": "trained", "trainable": summary.trainable, "trainable_pct": summary.trainable_pct,
           "stored_bytes": stored, "weights_gib": weights / GIB, "train_mem_gib": result.peak_mem_gib,
           "peak_mem_gib": weights / GIB + result.peak_mem_gib,
           "live_mem_gib": weights / GIB + result.live_peak_mem_gib,
           "predicted_mem_gib": _predicted_gib(config, name, kwargs, cfg, dtype, device),
           "time_per_step_s": result.time_per_step_s, "final_loss": result.final_loss, "quality": quality,
           "eval_loss": eval_loss,
           "base_latency_ms": base_latency, "latency_ms": latency,
           "latency_overhead_pct": 100 * (latency / base_latency - 1), "merged_latency_ms": math.nan,
           "merge_max_diff": math.nan, "note": ""}
    if method.mergeable:
        merged = merge_lora(adapted)
        row["merged_latency_ms"], merged_logits = _timed_forward(merged, input_ids, attention_mask,
                                                                 cfg.latency_repeats)
        row["merge_max_diff"] = float((merged_logits - logits).abs().max())
        adapted = merged
    row["note"] = method.note
    _free(adapted, fresh)
    return row


def rule_checks(table, *, noise_pct: float = 5.0):
    """The chapter's rules of thumb next to this run's measurements: claim, measured value, agrees or not.

    Latency differences smaller than ``noise_pct`` percent count as "no difference" (timing noise).
    """
    import pandas as pd

    def get(method, column):
        return float(table.loc[method, column]) if method in table.index else math.nan

    lora_pct = get("lora", "trainable_pct")
    adapter_over, merged = get("adapter", "latency_overhead_pct"), get("lora", "merged_latency_ms")
    lora_base = get("lora", "base_latency_ms")
    merged_over = 100 * (merged / lora_base - 1) if lora_base else math.nan
    rows = [
        ("LoRA trains ~0.1-1% of the parameters", f"{lora_pct:.3g}%", 0.1 <= lora_pct <= 1.0),
        ("adapters add inference latency", f"{adapter_over:+.1f}% forward time", adapter_over > noise_pct),
        ("merged LoRA adds no latency", f"{merged_over:+.1f}% forward time", merged_over < noise_pct),  # faster is noise
        ("QLoRA cuts the memory of the weights", (f"{get('qlora', 'weights_gib'):.3f} vs "
         f"{get('lora', 'weights_gib'):.3f} GiB (LoRA)"), get("qlora", "weights_gib") < get("lora", "weights_gib")),
        ("QLoRA cuts peak training memory", (f"{get('qlora', 'peak_mem_gib'):.3f} vs "
         f"{get('lora', 'peak_mem_gib'):.3f} GiB (LoRA)"), get("qlora", "peak_mem_gib") < get("lora", "peak_mem_gib")),
        ("PEFT stores far less per task than full fine-tuning", (f"{get('lora', 'stored_bytes') / MIB:.1f} vs "
         f"{get('full', 'stored_bytes') / MIB:.0f} MiB (LoRA vs full)"),
         get("lora", "stored_bytes") < 0.1 * get("full", "stored_bytes")),
    ]
    frame = pd.DataFrame(rows, columns=["chapter says", "measured here", "agrees"])
    frame["agrees"] = [None if "nan" in measured else bool(ok)  # a method missing from the run: no verdict
                       for measured, ok in zip(frame["measured here"], frame["agrees"])]
    return frame
