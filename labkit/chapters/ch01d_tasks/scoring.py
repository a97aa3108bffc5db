"""Metrics and where they lie: one ``score`` entry point over the kit's local evaluate modules that refuses the
wrong kind of predictions, and planted pairs of systems that one metric ranks wrong and another ranks right.

>>> score("macro_f1", ["feed", "feed"], ["feed", "billing"], labels=["feed", "billing"])  # doctest: +SKIP
>>> pair_table(planted_pairs())  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from ...core import LabkitError

LABEL_METRICS = ("accuracy", "macro_f1")  # compare class labels (a fixed set of names)
TEXT_METRICS = ("exact_match", "contains", "token_f1", "rouge_l", "bleu")  # compare free text with the reference
LOSS_METRICS = ("perplexity",)  # read per-token losses (lower is better)
METRICS = LABEL_METRICS + TEXT_METRICS + LOSS_METRICS
ABOUT = {
    "accuracy": "share of labels that are right",
    "macro_f1": "F1 per class, averaged with equal weight per class",
    "exact_match": "the whole answer equals the reference (case ignored, spaces normalised)",
    "contains": "the reference appears as whole words inside the answer (case and punctuation ignored)",
    "token_f1": "overlap of answer words with reference words (SQuAD style)",
    "rouge_l": "longest common subsequence of words, F-measure (rouge-score)",
    "bleu": "clipped 1-4-gram precision with a brevity penalty, over the corpus (sacrebleu)",
    "perplexity": "exp of the mean per-token loss (lower is better)",
}


def higher_is_better(metric: str) -> bool:
    """False only for perplexity."""
    return metric not in LOSS_METRICS


@functools.cache
def _module(name: str):
    from ...metrics import load_metric

    return load_metric(name)


def score(metric: str, predictions, references=None, *, labels=None) -> float:
    """One number for ``predictions`` under ``metric`` (see METRICS), from the kit's local evaluate modules.

    Label metrics need ``labels`` (the class names) and predictions among them; text metrics need strings; perplexity
    takes per-token losses (a list of numbers per example) and no references. Anything else is refused with a
    sentence that names the metrics that fit.

    >>> score("contains", ["The answer is 42."], ["42"])  # doctest: +SKIP
    1.0
    """
    if metric not in METRICS:
        raise LabkitError(f"Unknown metric {metric!r}: use one of {', '.join(METRICS)}.")
    predictions = list(predictions)
    if not predictions:
        raise LabkitError("No predictions to score: pass one prediction per example.")
    if metric in LOSS_METRICS:
        rows = [row if isinstance(row, (list, tuple)) else [row] for row in predictions]
        flat = [x for row in rows for x in row]
        if any(isinstance(x, (str, bool)) or not isinstance(x, (int, float)) for x in flat):
            raise LabkitError("perplexity reads per-token losses (numbers), not answers or labels: score text with "
                              f"{', '.join(TEXT_METRICS)} and labels with {', '.join(LABEL_METRICS)}.")
        return float(_module("perplexity").compute(losses=flat, num_tokens=[1] * len(flat))["perplexity"])
    references = list(references if references is not None else [])
    if len(references) != len(predictions):
        raise LabkitError(f"{len(predictions)} predictions but {len(references)} references: give one reference "
                          "per prediction.")
    if metric in LABEL_METRICS:
        if labels is None:
            raise LabkitError(f"{metric} compares class labels: pass labels=[...] (the class names). For free-text "
                              f"answers use {', '.join(TEXT_METRICS)}.")
        labels = [str(x) for x in labels]
        stray = [p for p in predictions if str(p) not in labels]
        if stray:
            raise LabkitError(f"{metric} compares class labels, but {len(stray)} predictions are not among the labels "
                              f"(e.g. {str(stray[0])[:40]!r}): score free text with "
                              f"{', '.join(TEXT_METRICS)}, or map each answer to a label first.")
        preds, refs = [str(p) for p in predictions], [str(r) for r in references]
        if metric == "accuracy":
            return float(_module("accuracy").compute(predictions=preds, references=refs)["accuracy"])
        return float(_module("macro_f1").compute(predictions=preds, references=refs,
                                                 labels=sorted(set(refs) | set(preds)))["macro_f1"])
    if not all(isinstance(p, str) for p in predictions):
        bad = next(p for p in predictions if not isinstance(p, str))
        raise LabkitError(f"{metric} compares text, but a prediction is a {type(bad).__name__} ({bad!r}): turn class "
                          f"ids into label names, or score labels with {', '.join(LABEL_METRICS)}.")
    refs = [r if isinstance(r, str) else [str(x) for x in r] for r in references]
    if metric in ("exact_match", "contains"):
        options = {"ignore_case": True, "ignore_punctuation": metric == "contains", "contains": metric == "contains"}
        return float(_module("exact_match").compute(predictions=predictions, references=refs, **options)["exact_match"])
    if metric == "token_f1":
        return float(_module("token_f1").compute(predictions=predictions, references=refs)["token_f1"])
    if metric == "rouge_l":
        return float(_module("rouge_l").compute(predictions=predictions, references=refs)["rougeL"])
    return float(_module("bleu").compute(predictions=predictions, references=refs)["bleu"])


def prefers(metric: str, score_a: float, score_b: float) -> str:
    """"A", "B" or "tie": which system ``metric`` ranks first, given their scores."""
    if math.isclose(score_a, score_b, rel_tol=1e-9, abs_tol=1e-12):
        return "tie"
    a_first = score_a > score_b if higher_is_better(metric) else score_a < score_b
    return "A" if a_first else "B"


@dataclass
class PlantedPair:
    """Two systems on the same references: B is the better one; ``fooled`` ranks A first, ``right`` ranks B first."""

    name: str  # a few words
    story: str  # what A and B do
    fooled: str  # the metric that prefers A
    right: str  # a metric that prefers B
    references: list  # the reference of each example (None for perplexity)
    a: list  # system A's predictions for ``fooled``
    b: list  # system B's predictions for ``fooled``
    labels: list | None = None  # class names, for label metrics
    a_right: list | None = None  # system A's predictions for ``right`` when they differ in kind (perplexity)
    b_right: list | None = None
    right_references: list | None = None

    def scores(self) -> dict:
        """{"fooled": (A, B), "right": (A, B)}: the scores the two metrics give the two systems."""
        refs_right = self.right_references if self.right_references is not None else self.references
        a_right = self.a_right if self.a_right is not None else self.a
        b_right = self.b_right if self.b_right is not None else self.b
        return {"fooled": (score(self.fooled, self.a, self.references, labels=self.labels),
                           score(self.fooled, self.b, self.references, labels=self.labels)),
                "right": (score(self.right, a_right, refs_right, labels=self.labels),
                          score(self.right, b_right, refs_right, labels=self.labels))}


def _rows(family: str, n: int) -> list[dict]:
    from ...data import load_instructions

    test = load_instructions()["test"]
    rows = [row for row in test if row["family"] == family][:n]
    if len(rows) < n:
        raise LabkitError(f"The instructions test split has fewer than {n} {family!r} rows.")
    return rows


def planted_pairs(n: int = 10) -> list[PlantedPair]:
    """One planted pair per metric, on references from the kit's data sets (n examples each)."""
    arithmetic = _rows("arithmetic", n)
    answers = [row["answer"] for row in arithmetic]
    off_by_one = [str(int(a) + 1) for a in answers]
    terse_some = [a if i < 3 else w for i, (a, w) in enumerate(zip(answers, off_by_one))]  # 3 in 10 right
    terse_most = [a if i < n - 2 else w for i, (a, w) in enumerate(zip(answers, off_by_one))]  # all but 2 right
    dates = [row["answer"] for row in _rows("reformat_date", n)]  # "06/01/2037" or "28 September 2023"
    wrong_year = [d[:-4] + str(int(d[-4:]) - 1) for d in dates]
    lists = [row["answer"] for row in _rows("sort_list", n)]  # "ash, ridge, roost, smoke"
    shuffled = [", ".join(x.split(", ")[1:] + x.split(", ")[:1]) for x in lists]  # same words, wrong order
    jsons = [row["answer"] for row in _rows("extract_json", n)]
    wrong_age = [j.replace('"age":', '"age":1', 1) for j in jsons]  # 67 -> 167
    majority, minority = "feed", "billing"
    labels_ref = [majority] * (2 * n - 2) + [minority] * 2
    catch_all = [majority] * (2 * n)
    careful = [minority if i < 3 else y for i, y in enumerate(labels_ref)]  # both rare ones right, 3 false alarms
    answer_len = 30  # chat-formatted prompt + answer: ~30 tokens the model predicts for free, one answer token
    fluent = [[0.1] * answer_len + [3.0] for _ in range(n)]  # confident on the format, wrong on the answer
    hesitant = [[0.8] * answer_len + [0.3] for _ in range(n)]  # less sure of the format, right on the answer
    return [
        PlantedPair("rare class ignored", f"A always answers {majority!r}; B catches both {minority!r} messages but "
                    "raises 3 false alarms", "accuracy", "macro_f1", labels_ref, catch_all, careful,
                    labels=[majority, minority]),
        PlantedPair("chatty but right", "A answers tersely, 3 in 10 right; B answers every question right, inside a "
                    "sentence", "exact_match", "contains", answers, terse_some,
                    [f"The answer is {a}." for a in answers]),
        PlantedPair("hedging", f"A lists three numbers, the right one among them; B answers one number, {n - 2} in "
                    f"{n} right", "contains", "token_f1", answers,
                    [f"{int(a) - 1}, {a} or {int(a) + 1}" for a in answers], terse_most),
        PlantedPair("close but wrong date", "A gets the year wrong every time; B is right, inside a long sentence",
                    "token_f1", "contains", dates, wrong_year,
                    [f"Sure! In that format the date is {d}." for d in dates]),
        PlantedPair("wrong order", "A sorts nothing (the same words in the wrong order); B is sorted, after a "
                    "preamble", "rouge_l", "contains", lists, shuffled,
                    [f"Sorted alphabetically, the list is: {x}" for x in lists]),
        PlantedPair("one wrong field", "A gets every age wrong in otherwise perfect JSON; B is right, after a "
                    "preamble", "bleu", "contains", jsons, wrong_age,
                    [f"Here is the JSON you asked for, with the name, species and age: {j}" for j in jsons]),
        PlantedPair("fluent but wrong", f"per-token losses on {answer_len} format tokens and 1 answer token: A is "
                    "sure of the format and wrong on the answer; B the other way round", "perplexity",
                    "exact_match", None, fluent, hesitant, a_right=off_by_one, b_right=answers,
                    right_references=answers),
    ]


def pair_table(pairs: list[PlantedPair]):
    """One row per planted pair: the fooled metric's scores and verdict, the right metric's scores and verdict."""
    import pandas as pd

    rows = []
    for pair in pairs:
        s = pair.scores()
        rows.append({"pair": pair.name, "fooled": pair.fooled, "fooled_a": s["fooled"][0], "fooled_b": s["fooled"][1],
                     "fooled_prefers": prefers(pair.fooled, *s["fooled"]), "right": pair.right,
                     "right_a": s["right"][0], "right_b": s["right"][1],
                     "right_prefers": prefers(pair.right, *s["right"]), "story": pair.story})
    return pd.DataFrame(rows)


def metric_grid(pairs: list[PlantedPair]):
    """Every metric that applies on every pair: which system it prefers ("A", "B", "tie"); "-" where it does not
    apply to those predictions."""
    import pandas as pd

    grid = {}
    for pair in pairs:
        row = {}
        for metric in METRICS:
            try:
                row[metric] = prefers(metric, score(metric, pair.a, pair.references, labels=pair.labels),
                                      score(metric, pair.b, pair.references, labels=pair.labels))
            except LabkitError:
                row[metric] = "-"
        grid[pair.name] = row
    return pd.DataFrame(grid).T


def token_losses(model, tokenizer, posed, *, seq_len: int = 160, batch_size: int = 8) -> dict:
    """Per-token losses of SFT examples (instruction/answer rows) in one forward pass each, split into the prompt's
    tokens and the answer's: ``{"prompt": [...], "answer": [...]}`` (nats, one number per predicted token)."""
    import torch

    from ...batches import in_order, tokenize
    from ...units import IGNORE_INDEX

    examples = tokenize(posed, tokenizer, "sft", seq_len=seq_len)
    device = next(model.parameters()).device
    found = {"prompt": [], "answer": []}
    was_training = model.training
    model.eval()
    try:
        for batch in in_order(examples, batch_size, tokenizer.pad_token_id or 0):
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            targets, real = batch["input_ids"][:, 1:], batch["attention_mask"][:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
            answer = batch["labels"][:, 1:] != IGNORE_INDEX
            found["answer"] += nll[answer].tolist()
            found["prompt"] += nll[real & ~answer].tolist()
    finally:
        model.train(was_training)
    return found


def perplexities(model, tokenizer, posed, *, seq_len: int = 160) -> dict:
    """Perplexity over the whole sequence (prompt and answer) and over the answer tokens only, from one pass."""
    found = token_losses(model, tokenizer, posed, seq_len=seq_len)
    return {"whole_sequence": score("perplexity", found["prompt"] + found["answer"]),
            "answer": score("perplexity", found["answer"])}
