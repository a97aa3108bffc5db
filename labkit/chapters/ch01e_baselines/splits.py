"""Splits that lie: random vs template-grouped splits, near-duplicates across a boundary, stratified vs plain
k-fold on imbalanced labels, the spread across folds, and the domain-shift slice as an out-of-distribution test.

The intents carry no template id, so ``template_ids`` derives one: it reads the phrasing templates from the data
generator's source (``data/gen_intents.py``, parsed with ``ast``, never run) and matches each message against them.

>>> groups = template_ids(intents["train"])  # doctest: +SKIP
>>> inflation_table(intents["train"], groups, seeds=(0, 1, 2))  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import functools
import re

from ...core import LabkitError


@functools.lru_cache(maxsize=1)
def _generator_lists() -> dict:
    """TEMPLATES, HELD_OUT, PREFIXES and SUFFIXES from data/gen_intents.py, read as literals."""
    from ...data import data_dir

    path = data_dir() / "gen_intents.py"
    if not path.is_file():
        raise LabkitError(f"{path} is missing: template ids are read from the intents generator that ships in the "
                          "repository's data/ folder; clone the repository or set LABKIT_DATA to a complete copy.")
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("TEMPLATES", "HELD_OUT", "PREFIXES", "SUFFIXES"):
                found[name] = ast.literal_eval(node.value)
    return found


def _pattern(template: str) -> str:
    """A template as a regex: its literal text escaped, every {slot} any non-empty text."""
    return ".+?".join(re.escape(part) for part in re.split(r"\{\w+\}", template))


@functools.lru_cache(maxsize=1)
def _matchers() -> dict:
    lists = _generator_lists()
    prefix = "(?:" + "|".join(_pattern(p) for p in lists["PREFIXES"] if p) + ")?"
    suffix = "(?:" + "|".join(_pattern(s) for s in lists["SUFFIXES"] if s) + ")?"
    out = {}
    for label, templates in lists["TEMPLATES"].items():
        named = [(f"{label}/{i}", t) for i, t in enumerate(templates)]
        named += [(f"{label}/held{i}", t) for i, t in enumerate(lists["HELD_OUT"].get(label, []))]
        # most literal text first: where two templates match, the more specific one names the message
        named.sort(key=lambda item: -len(re.sub(r"\{\w+\}", "", item[1])))
        out[label] = [(tid, re.compile(f"^{prefix}{_pattern(t)}{suffix}$", re.DOTALL)) for tid, t in named]
    return out


def template_id(text: str, label: str) -> str:
    """The id ("label/index") of the template a help-desk message was made from, or "label/?" if none matches."""
    for tid, regex in _matchers().get(label, []):
        if regex.match(text):
            return tid
    return f"{label}/?"


def template_ids(data) -> list[str]:
    """Template id for every text/label row (derived: the data has no template column)."""
    return [template_id(row["text"], row["label"]) for row in data]


# ---- near-duplicates ------------------------------------------------------------------------------------------------

def _words(text: str) -> frozenset:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity of two texts (lower-cased words)."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


def near_duplicate_pairs(train_texts, test_texts, *, threshold: float = 0.5) -> int:
    """How many (train, test) pairs have word-set Jaccard similarity >= ``threshold``."""
    if not 0 < threshold <= 1:
        raise LabkitError(f"threshold is a Jaccard similarity in (0, 1], e.g. 0.5; got {threshold!r}.")
    train_sets = [_words(t) for t in train_texts]
    count = 0
    for t in test_texts:
        wt = _words(t)
        count += sum(1 for w in train_sets if len(wt & w) >= threshold * len(wt | w))
    return count


# ---- splits ---------------------------------------------------------------------------------------------------------

def check_folds(n_splits, n_rows: int) -> None:
    """A LabkitError unless 2 <= n_splits <= n_rows."""
    if not isinstance(n_splits, int) or isinstance(n_splits, bool) or n_splits < 2:
        raise LabkitError(f"A k-fold split needs at least 2 folds (e.g. n_splits=5), got {n_splits!r}.")
    if n_splits > n_rows:
        raise LabkitError(f"n_splits={n_splits} is larger than the data set ({n_rows} rows): use at most {n_rows} folds.")


def random_split(n_rows: int, *, test_size: float = 0.25, seed: int = 0):
    """(train indices, test indices) drawn at random (scikit-learn ShuffleSplit)."""
    from sklearn.model_selection import ShuffleSplit

    _check_size(test_size)
    if n_rows < 2:
        raise LabkitError(f"Splitting needs at least 2 rows, got {n_rows}.")
    train, test = next(ShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(range(n_rows)))
    return list(train), list(test)


def group_split(groups, *, test_size: float = 0.25, seed: int = 0):
    """(train indices, test indices) with every group on one side only (scikit-learn GroupShuffleSplit)."""
    from sklearn.model_selection import GroupShuffleSplit

    _check_size(test_size)
    groups = list(groups)
    if len(set(groups)) < 2:
        raise LabkitError(f"Grouping leaves an empty split: there {'is' if len(set(groups)) == 1 else 'are'} "
                          f"{len(set(groups))} group(s), and each group must go whole to one side. Use finer groups "
                          "or more data.")
    try:
        train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
                           .split(range(len(groups)), groups=groups))
    except ValueError:  # scikit-learn refuses a split whose train side would hold no group
        train, test = [], list(range(len(groups)))
    if len(train) == 0 or len(test) == 0:
        raise LabkitError(f"Grouping left an empty {'training' if len(train) == 0 else 'test'} split "
                          f"({len(set(groups))} groups, test_size={test_size}): move test_size towards 0.5 or use "
                          "more groups.")
    return list(train), list(test)


def _check_size(test_size) -> None:
    if not isinstance(test_size, float) or not 0 < test_size < 1:
        raise LabkitError(f"test_size is the share of rows (or groups) to test on, a float in (0, 1) such as 0.25; "
                          f"got {test_size!r}.")


def _texts_labels(data):
    rows = [dict(r) for r in data]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def fit_score(train_rows, test_rows) -> float:
    """Accuracy of the bag-of-words logistic regression fitted on ``train_rows``, on ``test_rows``."""
    from .baselines import accuracy, bow_logreg

    preds, _ = bow_logreg(train_rows, test_rows, task="intents")
    return accuracy(preds, [r["label"] for r in test_rows])


def inflation_table(data, groups, *, seeds=(0, 1, 2), test_size: float = 0.25, threshold: float = 0.5):
    """Random vs grouped split of the same rows, per seed: test accuracy and near-duplicate pairs across the split."""
    import pandas as pd

    rows = [dict(r) for r in data]
    if len(rows) != len(list(groups)):
        raise LabkitError(f"groups has {len(list(groups))} entries for {len(rows)} rows: give one group per row.")
    out = []
    for seed in seeds:
        for kind, (train, test) in (("random", random_split(len(rows), test_size=test_size, seed=seed)),
                                    ("grouped", group_split(groups, test_size=test_size, seed=seed))):
            tr, te = [rows[i] for i in train], [rows[i] for i in test]
            out.append({"split": kind, "seed": seed, "train": len(tr), "test": len(te),
                        "accuracy": fit_score(tr, te),
                        "near_dup_pairs": near_duplicate_pairs([r["text"] for r in tr], [r["text"] for r in te],
                                                               threshold=threshold),
                        "test_templates_seen": sum(groups[i] in {groups[j] for j in train} for i in test) / len(te)})
    return pd.DataFrame(out)


def imbalanced_subset(data, counts: dict, *, seed: int = 0) -> list[dict]:
    """Rows with ``counts[label]`` examples of each label (shuffled, seeded); a LabkitError if a label runs short."""
    import random

    rows = [dict(r) for r in data]
    out = []
    for label, n in counts.items():
        pool = [r for r in rows if r["label"] == label]
        if n > len(pool):
            raise LabkitError(f"Only {len(pool)} rows of {label!r} for the {n} asked: lower counts[{label!r}].")
        out += random.Random(seed).sample(pool, n)
    random.Random(seed).shuffle(out)
    return out


def kfold_scores(rows, *, n_splits: int = 5, stratified: bool = True, seed: int = 0):
    """Per fold of (Stratified)KFold: test accuracy of the bag-of-words model and the labels missing from the fold."""
    import pandas as pd
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = [dict(r) for r in rows]
    check_folds(n_splits, len(rows))
    texts, labels = _texts_labels(rows)
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_splits, shuffle=True, random_state=seed)
    out = []
    for fold, (train, test) in enumerate(splitter.split(texts, labels)):
        tr, te = [rows[i] for i in train], [rows[i] for i in test]
        out.append({"fold": fold, "test": len(te), "accuracy": fit_score(tr, te),
                    "labels_missing": len(set(labels) - {r["label"] for r in te}),
                    "rarest_share": min(sum(r["label"] == lab for r in te) for lab in set(labels)) / len(te)})
    return pd.DataFrame(out)


def fold_spread(table) -> dict:
    """Mean, standard deviation, min and max of a k-fold table's accuracy."""
    acc = table["accuracy"]
    return {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)), "min": float(acc.min()), "max": float(acc.max())}
