"""The kit's own scores on the same items lm-eval scores, and the intent classifiers the lab compares: a linear
probe (scikit-learn logistic regression on SmolLM2's frozen features) and LoRA-tuned SmolLM2 choosing a label.

>>> kit = kit_scores(model, tokenizer, "lab07_intents", limit=16)  # doctest: +SKIP
>>> probe = probe_run(model, tokenizer, intents["train"], intents["test"])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core import LabkitError
from .harness import INTENT_PROMPT, TASKS


def intent_sft(rows):
    """Intent rows (text, label) as instruction/answer rows with the harness's prompt, for SFT with lk.train."""
    from ...data import INTENT_LABELS

    choices = ", ".join(INTENT_LABELS)
    return [{"instruction": INTENT_PROMPT.format(labels=choices, text=r["text"]), "answer": r["label"]} for r in rows]


def label_first_tokens(tokenizer, labels) -> list[int]:
    """The token each label's answer starts with, as SFT tokenizes answers (the kit's first-token scoring)."""
    from ...batches import tokenize
    from ...units import IGNORE_INDEX

    rows = [{"instruction": "?", "answer": label} for label in labels]
    firsts = [next(t for t in ex["labels"] if t != IGNORE_INDEX) for ex in tokenize(rows, tokenizer, "sft", seq_len=64)]
    if len(set(firsts)) != len(firsts):
        raise LabkitError("Two labels start with the same token, so first-token scoring cannot tell them apart: "
                          "rename the labels.")
    return firsts


def label_logits(model, tokenizer, texts, *, batch_size: int = 16):
    """Logits of each intent label's first token after the chat-formatted prompt: a numpy array [n, 8].

    One forward pass per message (lm-eval's multiple choice runs one per label and sums every token). Every prompt
    starts with the same ~60 tokens (system prompt, instruction, label list), so they run once and their keys and
    values are reused (a prefix cache): each message then costs only its own ~15 tokens, about 2.5x faster on a CPU,
    with the same logits up to fp32 rounding (tested against full forward passes)."""
    import copy

    import numpy as np
    import torch

    from ...batches import prompt_text
    from ...data import INTENT_LABELS

    texts = list(texts)
    if not texts:
        raise LabkitError("No messages to score: pass at least one text.")
    firsts = torch.tensor(label_first_tokens(tokenizer, INTENT_LABELS))
    choices = ", ".join(INTENT_LABELS)
    ids = [tokenizer(prompt_text(tokenizer, INTENT_PROMPT.format(labels=choices, text=t)),
                     add_special_tokens=False).input_ids for t in texts]
    shared = 0  # tokens every prompt starts with; each keeps at least its last token to run
    while shared < min(map(len, ids)) - 1 and all(x[shared] == ids[0][shared] for x in ids):
        shared += 1
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prefix = model(input_ids=torch.tensor([ids[0][:shared]], device=device), use_cache=True).past_key_values
            for i in range(0, len(ids), batch_size):
                rest = [x[shared:] for x in ids[i:i + batch_size]]
                width = max(map(len, rest))
                # left-padded, so every row's last token is the last column; positions continue after the prefix
                input_ids = torch.full((len(rest), width), pad_id, dtype=torch.long)
                mask = torch.ones((len(rest), shared + width), dtype=torch.long)
                positions = torch.arange(shared, shared + width).repeat(len(rest), 1)
                for row, x in enumerate(rest):
                    pad = width - len(x)
                    input_ids[row, pad:] = torch.tensor(x)
                    mask[row, shared:shared + pad] = 0
                    positions[row] -= pad
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(rest))
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                               position_ids=positions.clamp(min=shared).to(device), past_key_values=cache,
                               logits_to_keep=1).logits[:, -1]
                out.append(logits[:, firsts.to(device)].float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


@dataclass
class IntentRun:
    """One intent classifier's answers on a list of test items."""

    name: str  # shown in tables and the panel
    ids: list  # item ids (row numbers in the test split), in order
    y_true: object  # numpy int array of label ids
    proba: object  # numpy [n, 8] class probabilities

    @property
    def y_pred(self):
        return self.proba.argmax(1)

    @property
    def correct(self):
        return (self.y_pred == self.y_true).astype(float)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def _label_ids(rows):
    import numpy as np

    from ...data import label2id

    return np.array([label2id[r["label"]] for r in rows])


def lm_run(name: str, model, tokenizer, rows, *, temperature: float = 1.0) -> IntentRun:
    """A language model as an intent classifier: softmax over the labels' first-token logits."""
    from scipy.special import softmax

    rows = list(rows)
    logits = label_logits(model, tokenizer, [r["text"] for r in rows])
    return IntentRun(name, list(range(len(rows))), _label_ids(rows), softmax(logits / temperature, axis=1))


def probe_run(name: str, train_features, train_rows, test_features, test_rows, *, c: float = 1.0) -> IntentRun:
    """A linear probe: scikit-learn's logistic regression on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300))
    probe.fit(train_features, _label_ids(list(train_rows)))
    proba = probe.predict_proba(test_features)
    import numpy as np

    full = np.zeros((len(proba), 8))
    full[:, probe.classes_] = proba  # a class absent from a small training set gets probability 0
    test_rows = list(test_rows)
    return IntentRun(name, list(range(len(test_rows))), _label_ids(test_rows), full)


def kit_scores(model, tokenizer, task: str, *, limit: int | None = None, max_new_tokens: int = 32):
    """The kit's own evaluate-based score of ``model`` on the first ``limit`` items of an lm-eval task, item by item.

    intents: the label whose first token is most likely (the kit's accuracy metric); instructions and probe: greedy
    answers scored by the kit's exact_match metric (whitespace-normalised, aliases count). A DataFrame with the
    harness's columns: doc_id, target, prediction, correct.
    """
    import pandas as pd

    from ... import data
    from ...metrics import load_metric
    from ...training import evaluate_exact_match

    if task not in TASKS:
        raise LabkitError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    name, split = TASKS[task][:2]
    rows = getattr(data, f"load_{name}")()[split]
    n = len(rows) if limit is None else min(limit, len(rows))
    rows = rows.select(range(n))
    if name == "intents":
        run = lm_run("kit", model, tokenizer, rows)
        score = load_metric("accuracy").compute(predictions=run.y_pred.tolist(), references=run.y_true.tolist())
        labels = data.INTENT_LABELS
        table = pd.DataFrame({"doc_id": range(n), "target": [labels[i] for i in run.y_true],
                              "prediction": [labels[i] for i in run.y_pred], "correct": run.correct.astype(bool)})
        return table, float(score["accuracy"])
    em = evaluate_exact_match(model, tokenizer, rows, limit=n, max_new_tokens=max_new_tokens)
    table = em.table.rename(columns={"answer": "target"})
    table.insert(0, "doc_id", range(n))
    return table[["doc_id", "target", "prediction", "correct"]], em.score


def compare_items(kit_table, harness_table):
    """The kit's and lm-eval's verdicts side by side, item by item, with ``agree``."""
    from .stats import check_same_items

    check_same_items(kit_table["doc_id"], harness_table["doc_id"])
    merged = kit_table.merge(harness_table[["doc_id", "prediction", "correct"]], on="doc_id",
                             suffixes=("_kit", "_lm_eval"))
    merged["agree"] = merged["correct_kit"] == merged["correct_lm_eval"]
    return merged
