"""A first look at a raw set: tokens per example, label balance, duplicate counts, and one example of each defect.

>>> lengths = token_lengths(tokenizer, raw, truth, kind="instructions")  # doctest: +SKIP
"""

from __future__ import annotations

from .cleaning import fields_of, normalise, truth_map


def token_lengths(tokenizer, raw, truth, *, kind: str):
    """One row per raw example: id, tokens (text and target), defect. A DataFrame."""
    import pandas as pd

    text_key, target_key = fields_of(raw, kind)
    texts = [f"{a} {b}" for a, b in zip(raw[text_key], raw[target_key])]
    tokens = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    defects = truth_map(truth)
    return pd.DataFrame({"id": raw["id"], "tokens": tokens, "defect": [defects[i][0] for i in raw["id"]]})


def balance(raw, *, kind: str):
    """Rows per label (intents) or per family (instructions), and the largest over the smallest count."""
    import pandas as pd

    column = "label" if kind == "intents" else "family"
    fields_of(raw, kind)
    counts = pd.Series(raw[column]).value_counts().rename_axis(column).rename("rows")
    counts.attrs["imbalance_ratio"] = float(counts.max() / counts.min())
    return counts


def duplicate_counts(raw, *, kind: str) -> dict:
    """How many rows repeat an earlier one: exactly, after lower-casing and spacing, and by text alone."""
    text_key, target_key = fields_of(raw, kind)
    rows = list(zip(raw[text_key], raw[target_key]))

    def repeats(keys):
        return len(keys) - len(set(keys))

    return {"exact": repeats(rows), "normalised": repeats([(normalise(a), normalise(b)) for a, b in rows]),
            "same text, any target": repeats([normalise(a) for a, _ in rows])}


def defect_samples(raw, truth, *, kind: str, width: int = 90):
    """One example of each planted defect (the first in the file), cut to ``width`` characters. A DataFrame."""
    import pandas as pd

    text_key, target_key = fields_of(raw, kind)
    defects = truth_map(truth)
    seen, rows = set(), []
    for row in raw:
        defect, source = defects[row["id"]]
        if defect == "none" or defect in seen:
            continue
        seen.add(defect)
        text = repr(row[text_key])
        rows.append({"defect": defect, "id": row["id"], text_key: text if len(text) <= width else text[:width] + "…",
                     target_key: row[target_key], "source": source})
    return pd.DataFrame(rows).set_index("defect")
