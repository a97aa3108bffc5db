"""Know the data: token lengths against seq_len (what truncation throws away), label balance, vocabulary coverage
and duplicates, plus the imbalanced subsample the loss and metric steps train on.

>>> length_table(tokenizer, {"train": train, "test": test}, "instruction", seq_len=64, labels=INTENT_LABELS)  # doctest: +SKIP
"""

from __future__ import annotations

import re

from ...core import LabkitError


def token_lengths(tokenizer, data, formulation: str, labels) -> list[int]:
    """Tokens of every example as the formulation feeds it to the model: the message (classification), or the
    chat-formatted prompt plus the answer (generation, instruction)."""
    from ...batches import tokenize
    from .formulations import frame

    posed = frame(data, formulation, labels)
    if formulation == "classification":
        return [len(ids) for ids in tokenizer(list(posed["text"]))["input_ids"]]
    return [len(ex["input_ids"]) for ex in tokenize(posed, tokenizer, "sft", seq_len=10**6)]


def length_table(tokenizer, splits: dict, formulation: str, *, seq_len: int, labels):
    """Per split: examples, token-length statistics, and what ``seq_len`` cuts: the share of examples truncated and
    of all tokens thrown away. Returns (table, {split: lengths})."""
    import numpy as np
    import pandas as pd

    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0:
        raise LabkitError(f"seq_len must be a positive whole number of tokens (e.g. 64), got {seq_len!r}.")
    rows, lengths = [], {}
    for name, data in splits.items():
        n = np.asarray(token_lengths(tokenizer, data, formulation, labels))
        lengths[name] = n.tolist()
        cut = np.clip(n - seq_len, 0, None)
        rows.append({"split": name, "examples": len(n), "mean_tokens": float(n.mean()),
                     "p95_tokens": float(np.percentile(n, 95)), "max_tokens": int(n.max()),
                     "truncated_pct": 100 * float((cut > 0).mean()), "tokens_lost_pct": 100 * float(cut.sum() / n.sum())})
    return pd.DataFrame(rows), lengths


def label_balance(label_column, labels=None):
    """Count and share of each label (in ``labels`` order when given, zeros included) and the imbalance ratio
    (largest count / smallest count) in ``table.attrs``."""
    import pandas as pd

    values = [str(y) for y in label_column]
    if not values:
        raise LabkitError("No labels to count: pass a non-empty label column, e.g. data['label'].")
    order = [str(x) for x in labels] if labels is not None else sorted(set(values))
    counts = [values.count(label) for label in order]
    table = pd.DataFrame({"label": order, "count": counts, "share": [c / len(values) for c in counts]})
    table.attrs["imbalance_ratio"] = max(counts) / min(counts) if min(counts) else float("inf")
    return table


def imbalanced_subsample(data, *, minority: list[str], size: int, minority_share: float, seed: int = 0):
    """``size`` rows where the ``minority`` labels together make up ``minority_share`` and the other labels share the
    rest equally (rows drawn with a fixed seed)."""
    from ...batches import as_dataset

    data = as_dataset(data)
    if not 0 < minority_share < 1:
        raise LabkitError(f"minority_share must be between 0 and 1 (e.g. 0.05), got {minority_share!r}.")
    labels = sorted(set(data["label"]))
    missing = sorted(set(minority) - set(labels))
    if missing or len(minority) >= len(labels):
        raise LabkitError(f"minority must name some (not all) of the labels {labels}; got {minority}.")
    majority = [label for label in labels if label not in minority]
    per_minor = max(1, round(size * minority_share / len(minority)))
    per_major = max(1, (size - per_minor * len(minority)) // len(majority))
    shuffled = data.shuffle(seed=seed)
    picked, taken = [], {label: 0 for label in labels}
    quota = {label: per_minor if label in minority else per_major for label in labels}
    for i, label in enumerate(shuffled["label"]):
        if taken[label] < quota[label]:
            taken[label] += 1
            picked.append(i)
    return shuffled.select(sorted(picked))


_WORD = re.compile(r"[A-Za-z]+")


def vocab_coverage(tokenizer, texts, *, top: int = 10):
    """How the tokenizer covers the words of ``texts``: tokens per word overall, the share of distinct words cut into
    3 or more pieces, and the most-cut words (a DataFrame) as (summary dict, table)."""
    import pandas as pd

    words = [w for text in texts for w in _WORD.findall(str(text))]
    if not words:
        raise LabkitError("No words found: pass a list of texts, e.g. data['text'].")
    distinct = sorted(set(words))
    pieces = {w: len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) for w in distinct}
    frequency = {w: 0 for w in distinct}
    for w in words:
        frequency[w] += 1
    table = pd.DataFrame({"word": distinct, "tokens": [pieces[w] for w in distinct],
                          "occurrences": [frequency[w] for w in distinct]})
    table = table.sort_values(["tokens", "occurrences"], ascending=False).head(top).reset_index(drop=True)
    table["pieces"] = [" | ".join(tokenizer.convert_ids_to_tokens(tokenizer(" " + w, add_special_tokens=False)
                                                                 ["input_ids"])) for w in table["word"]]
    summary = {"words": len(words), "distinct_words": len(distinct),
               "tokens_per_word": sum(pieces[w] for w in words) / len(words),
               "split_3plus_pct": 100 * sum(pieces[w] >= 3 for w in distinct) / len(distinct)}
    return summary, table


def normalise(text: str) -> str:
    """Lower-case, letters and digits only, single spaces: the form duplicates are compared in."""
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def duplicate_rates(train_texts, other: dict | None = None) -> dict:
    """Share of training texts that repeat an earlier one (after normalise), and for each other split the share of
    its texts that also occur in training (leakage)."""
    train = [normalise(t) for t in train_texts]
    if not train:
        raise LabkitError("No training texts: pass data['train']['text'].")
    rates = {"train_duplicates_pct": 100 * (len(train) - len(set(train))) / len(train)}
    seen = set(train)
    for name, texts in (other or {}).items():
        texts = [normalise(t) for t in texts]
        rates[f"{name}_in_train_pct"] = 100 * sum(t in seen for t in texts) / max(len(texts), 1)
    return rates
