"""The kit's data as local lm-evaluation-harness tasks, run with ``lm_eval.simple_evaluate`` offline.

Three tasks, each a YAML file plus a JSON-lines file written from the kit's own data (no hub, no loading script):

- ``lab07_intents``: the help-desk intents as multiple choice, scored by log-likelihood of each label;
- ``lab07_instructions``: the instruction set as ``generate_until``, scored by exact match;
- ``lab07_probe``: the general-knowledge probe as short question answering, exact match against the answer or an alias.

>>> folder = write_tasks()  # doctest: +SKIP
>>> run = run_harness(model, tokenizer, ["lab07_intents"], limit=8)  # doctest: +SKIP
>>> run.scores, run.samples["lab07_intents"].head()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ...core import LabkitError, cache_dir

INTENT_PROMPT = "Classify this help-desk message as one of: {labels}.\nMessage: {text}"
# The end of a SmolLM2 chat turn, where greedy generation stops (the tokenizer's eos for this chat model).
STOP = ["<|im_end|>", "\n"]

# task -> (data loader name, split, lm-eval output type, metrics it reports)
TASKS = {
    "lab07_intents": ("intents", "test", "multiple_choice", ("acc", "acc_norm")),
    "lab07_instructions": ("instructions", "test", "generate_until", ("exact_match",)),
    "lab07_probe": ("probe", "test", "generate_until", ("exact_match",)),
}


def task_rows(task: str) -> list[dict]:
    """The rows one task's JSON file holds, from the kit's own data: ``prompt``, ``target`` (and ``choices``)."""
    from ... import data

    if task not in TASKS:
        raise LabkitError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    name, split = TASKS[task][:2]
    rows = getattr(data, f"load_{name}")()[split]
    if name == "intents":
        labels = list(data.INTENT_LABELS)
        choices = ", ".join(labels)
        return [{"prompt": INTENT_PROMPT.format(labels=choices, text=r["text"]), "choices": labels,
                 "target": labels.index(r["label"])} for r in rows]
    if name == "instructions":
        return [{"prompt": r["instruction"], "target": [str(r["answer"])]} for r in rows]
    return [{"prompt": r["question"], "target": [str(r["answer"]), *map(str, r.get("aliases") or [])]} for r in rows]


def task_config(task: str, data_file: Path, *, max_gen_toks: int = 32) -> dict:
    """The lm-eval YAML config of one task, reading ``data_file`` with the ``json`` builder."""
    output_type = TASKS[task][2]
    config = {"task": task, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
              "test_split": "test", "output_type": output_type, "doc_to_text": "{{prompt}}",
              "doc_to_target": "{{target}}", "metadata": {"version": 1.0}}
    if output_type == "multiple_choice":
        config.update(doc_to_choice="{{choices}}", target_delimiter="",
                      metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                                   {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}])
    else:
        config.update(target_delimiter="", generation_kwargs={"until": STOP, "max_gen_toks": max_gen_toks, "do_sample": False},
                      metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                    "ignore_case": False, "ignore_punctuation": False}])
    return config


def write_tasks(folder: str | Path | None = None, *, max_gen_toks: int = 32) -> Path:
    """Write every task's YAML and JSON-lines data into ``folder`` (default: the kit's cache); return the folder."""
    import yaml

    folder = Path(folder) if folder is not None else cache_dir() / "lm_eval_tasks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for task in TASKS:
            data_file = folder / f"{task}.jsonl"
            data_file.write_text("".join(json.dumps(row) + "\n" for row in task_rows(task)))
            (folder / f"{task}.yaml").write_text(yaml.safe_dump(task_config(task, data_file, max_gen_toks=max_gen_toks),
                                                                    sort_keys=False))
    except OSError as err:
        raise LabkitError(f"Cannot write the lm-eval task files to {folder} ({err.strerror}): pass a folder you can "
                          "write to, e.g. write_tasks(tempfile.mkdtemp()).") from err
    return folder


@dataclass
class HarnessRun:
    """What one ``simple_evaluate`` call measured."""

    scores: object  # pandas DataFrame: task, metric, value, stderr (lm-eval's own bootstrap/analytic stderr), n
    samples: dict  # task -> DataFrame, one row per item: doc_id, prompt, target, prediction, correct
    time_s: float  # wall time of the evaluation


def _quiet_lm_eval():
    for name in ("lm_eval", "lm-eval", "lm_eval.evaluator", "lm_eval.api.task", "lm_eval.models.huggingface"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_harness(model=None, tokenizer=None, tasks=("lab07_intents",), *, limit: int | None = None,
                pretrained: str | None = None, peft: str | None = None, batch_size: int = 8,
                folder: str | Path | None = None, max_gen_toks: int = 32) -> HarnessRun:
    """Run lm-eval's ``simple_evaluate`` with its HF back-end on the kit's local tasks.

    Either an in-memory ``model``/``tokenizer`` (``HFLM(pretrained=model, tokenizer=tokenizer)``) or a model folder
    ``pretrained`` with an optional LoRA adapter folder ``peft`` (lm-eval loads it with peft itself).
    Prompts go through the tokenizer's chat template, as the kit's own scoring does; generation stops at the end of
    the chat turn, a newline or ``max_gen_toks`` tokens.
    """
    import time

    import pandas as pd

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise LabkitError(f"Unknown task(s) {unknown}: use one or more of {', '.join(TASKS)}.")
    if (model is None) == (pretrained is None):
        raise LabkitError("Give either model= and tokenizer= (an in-memory model) or pretrained= (a model folder, "
                          "with peft= for a LoRA adapter), not both.")
    if model is not None and tokenizer is None:
        raise LabkitError("An in-memory model needs its tokenizer: run_harness(model, tokenizer, ...).")
    if peft is not None and not (Path(peft) / "adapter_config.json").is_file():
        raise LabkitError(f"{peft} holds no LoRA adapter (adapter_config.json): save one with "
                          "model.save_pretrained(folder) after training.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LabkitError(f"limit must be a positive whole number of items per task, or None for all, got {limit!r}.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_lm_eval()
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    _quiet_lm_eval()
    from transformers.utils import logging as hf_logging

    from ...data import _quiet

    folder = write_tasks(folder, max_gen_toks=max_gen_toks)
    if model is not None:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    else:
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar
        try:
            lm = HFLM(pretrained=str(pretrained), peft=str(peft) if peft else None, batch_size=batch_size,
                      device="cuda" if _cuda() else "cpu")
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    start = time.perf_counter()
    with _quiet():  # the datasets "Generating test split" bars; lm-eval's own progress bars stay
        out = lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, apply_chat_template=True, log_samples=True,
                                      task_manager=TaskManager(include_path=str(folder), include_defaults=False),
                                      bootstrap_iters=1000, verbosity="ERROR")
    time_s = time.perf_counter() - start
    rows, samples = [], {}
    for task in tasks:
        result = out["results"][task]
        n = len(out["samples"][task])
        for metric in TASKS[task][3]:
            rows.append({"task": task, "metric": metric, "value": float(result[f"{metric},none"]),
                         "stderr": _float(result.get(f"{metric}_stderr,none")), "n": n})
        samples[task] = _sample_table(task, out["samples"][task])
    return HarnessRun(scores=pd.DataFrame(rows), samples=samples, time_s=time_s)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _sample_table(task: str, samples: list[dict]):
    """One row per item from lm-eval's logged samples."""
    import numpy as np
    import pandas as pd

    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = s["doc"]
        row = {"doc_id": s["doc_id"], "prompt": doc["prompt"]}
        if TASKS[task][2] == "multiple_choice":
            loglik = np.array([r[0] for r in s["filtered_resps"]], dtype=float)
            lengths = np.array([len(c.encode()) for c in doc["choices"]], dtype=float)
            row.update(target=doc["choices"][doc["target"]], prediction=doc["choices"][int(loglik.argmax())],
                       prediction_norm=doc["choices"][int((loglik / lengths).argmax())],
                       correct=bool(s["acc"]), correct_norm=bool(s["acc_norm"]))
        else:
            pred = s["filtered_resps"][0]
            row.update(target=doc["target"][0], prediction=pred if isinstance(pred, str) else pred[0],
                       correct=bool(s["exact_match"]))
        rows.append(row)
    return pd.DataFrame(rows)


def with_intervals(run: HarnessRun, *, confidence: float = 0.95):
    """lm-eval's scores with a bootstrap interval from the logged items (the kit's) next to lm-eval's own stderr."""
    import pandas as pd

    from .stats import bootstrap_ci

    rows = []
    for r in run.scores.itertuples():
        column = "correct_norm" if r.metric == "acc_norm" else "correct"
        correct = run.samples[r.task][column].astype(float).to_numpy()
        ci = bootstrap_ci(correct, "exact_match" if r.metric == "exact_match" else "accuracy", confidence=confidence)
        rows.append({"task": r.task, "metric": r.metric, "n": r.n, "value": r.value, "low": ci.low, "high": ci.high,
                     "lm_eval_stderr": r.stderr})
    return pd.DataFrame(rows)
