"""The cleaning stages of lab 04, each a ``datasets`` map/filter over a raw set, each scored against the planted
ground truth: rule filters in the style of the Gopher rules, exact dedup by hash, near-dedup with MinHash + LSH
(``datasketch``), a contamination check of n-gram overlap against the test split, and personal-data masking.

>>> result = clean(load_raw_instructions(), test, truth, kind="instructions")  # doctest: +SKIP
>>> result.table  # one row per stage: removed, precision, recall  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field

from ...core import LabkitError

FIELDS = {"instructions": ("instruction", "answer"), "intents": ("text", "label")}  # (text column, target column)
STAGES = ("rules", "exact_dedup", "near_dedup", "contamination", "personal_data")
TARGETS = {"rules": {"empty", "truncated", "overlong", "boilerplate"}, "exact_dedup": {"exact_duplicate"},
           "near_dedup": {"near_duplicate"}, "contamination": {"contamination"}, "personal_data": {"personal_data"}}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?:\+\d{1,3} \d{3,4} \d{5,7}|\(\d{3}\) \d{3}-\d{4}|\b\d{3}-\d{3}-\d{4}\b)")
SYMBOLS = set("#@$>|~^")  # Gopher counts "#" and "..." per word; "*" is multiplication here
SCHEME = "affine32"  # datasketch 2.0's MinHash hashing scheme (stored hash values must name it to be read back)
TERMINAL = (".", "?", "!", ")", '"')


def fields_of(ds, kind: str) -> tuple[str, str]:
    """(text column, target column) of a raw set; refuse a data set without them or without ``id``."""
    if kind not in FIELDS:
        raise LabkitError(f"Unknown kind {kind!r}: use one of {', '.join(FIELDS)}.")
    need = ["id", *FIELDS[kind]]
    missing = [c for c in need if c not in ds.column_names]
    if missing:
        raise LabkitError(f"This data set lacks the columns {missing} that {kind} cleaning needs ({need}): load it "
                          f"with labkit.data.load_raw_{kind}().")
    return FIELDS[kind]


def check_threshold(value, name: str = "threshold") -> float:
    """A similarity or overlap threshold in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise LabkitError(f"{name} must be a number in (0, 1] (e.g. 0.7), got {value!r}.")
    return float(value)


@contextlib.contextmanager
def quiet():
    """No ``datasets`` progress bars inside a stage (each stage maps or filters a few thousand rows in < 1 s)."""
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            ds_logging.enable_progress_bar()


# ---- scoring against the ground truth -----------------------------------------------------------------------------

def truth_map(truth) -> dict[int, tuple[str, int | None]]:
    """{id: (defect, source)} from a ground-truth Dataset."""
    return {row["id"]: (row["defect"], row["source"]) for row in truth}


def root(truth: dict, row_id: int) -> int:
    """The clean row a planted duplicate copies (itself for any other row)."""
    defect, source = truth[row_id]
    return source if defect in ("exact_duplicate", "near_duplicate") else row_id


def score_flags(flagged, targets: set[str], truth: dict, pool=None, matches: dict | None = None) -> dict:
    """Precision and recall of ``flagged`` ids against the rows carrying a ``targets`` defect among ``pool``.

    For dedup, ``matches`` maps each removed id to the kept id it duplicates: removing either member of a planted
    pair is right (which one comes first in the file is chance).
    """
    pool = set(truth) if pool is None else set(pool)
    planted = {i for i in pool if truth[i][0] in targets}
    flagged = set(flagged)
    if matches is not None:
        hits = {i for i in flagged if root(truth, i) == root(truth, matches[i])}
    else:
        hits = flagged & planted
    return {"flagged": len(flagged), "planted": len(planted), "correct": len(hits),
            "precision": len(hits) / len(flagged) if flagged else 1.0,
            "recall": min(len(hits), len(planted)) / len(planted) if planted else 1.0}


# ---- rules in the style of Gopher (Rae et al. 2021, appendix A) -----------------------------------------------------

def rule_thresholds(strictness: float = 0.5) -> dict:
    """Thresholds at ``strictness`` in [0, 1]. Gopher's own (for web documents of 50-100,000 words): mean word
    length 3-10, symbol-to-word ratio < 0.1, duplicate n-gram character share < 0.10-0.20; scaled here to one-line
    examples. The terminal-punctuation rule is C4's (Raffel et al. 2020)."""
    if isinstance(strictness, bool) or not isinstance(strictness, (int, float)) or not 0 <= strictness <= 1:
        raise LabkitError(f"strictness must be a number in [0, 1] (0 lenient, 1 strict), got {strictness!r}.")
    s = float(strictness)
    return {"min_words": 1 + round(2 * s), "max_words": round(160 - 110 * s), "max_symbol_ratio": 0.3 - 0.2 * s,
            "max_dup_trigram_share": 0.5 - 0.35 * s, "terminal_punctuation": s >= 0.5}


def _words(text: str) -> list[str]:
    return text.split()


def dup_ngram_share(words: list[str], n: int = 3) -> float:
    """Share of characters inside word n-grams that occur more than once (Gopher's duplicate n-gram fraction)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts: dict[tuple, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i:i + n] = [True] * n
    total = sum(len(w) for w in words)
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def rule_reason(text: str, thresholds: dict) -> str:
    """Why a text fails the rules ("" if it passes): the first rule it breaks."""
    words = _words(text)
    if len(words) < thresholds["min_words"]:
        return "too short"
    if len(words) > thresholds["max_words"]:
        return "too long"
    if (sum(ch in SYMBOLS for ch in text) + text.count("...")) / len(words) > thresholds["max_symbol_ratio"]:
        return "symbols"
    if dup_ngram_share(words) > thresholds["max_dup_trigram_share"]:
        return "repetition"
    if thresholds["terminal_punctuation"] and not text.rstrip().endswith(TERMINAL):
        return "no end punctuation"
    return ""


# ---- exact and near duplicates ------------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lower case, single spaces: what both dedup stages compare."""
    return " ".join(str(text).lower().split())


def row_text(row: dict, text_key: str, target_key: str) -> str:
    return f"{normalise(row[text_key])} => {normalise(row[target_key])}"


def shingles(text: str, k: int = 2, unit: str = "word") -> set:
    """The k-shingles of the normalised text: runs of k words (punctuation marks count as words) or of k characters;
    the whole text as one shingle if it is shorter than k."""
    if unit not in ("word", "char"):
        raise LabkitError(f"unit must be 'word' or 'char', got {unit!r}.")
    text = normalise(text)
    items = re.findall(r"\w+|[^\w\s]", text) if unit == "word" else text
    join = " ".join if unit == "word" else "".join
    return {join(items[i:i + k]) for i in range(max(1, len(items) - k + 1))}


def add_minhash(ds, kind: str, *, num_perm: int = 128, k: int = 2, unit: str = "word", seed: int = 1):
    """``ds`` with a ``minhash`` column (datasketch MinHash values of the row's shingles), by ``datasets.map``."""
    from datasketch import MinHash

    text_key, target_key = fields_of(ds, kind)

    def signature(row):
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([s.encode("utf-8") for s in shingles(row_text(row, text_key, target_key), k, unit)])
        return {"minhash": m.hashvalues.tolist()}

    with quiet():
        return ds.map(signature, keep_in_memory=True, load_from_cache_file=False)


def near_duplicates(ds, threshold: float = 0.7, *, num_perm: int | None = None, seed: int = 1) -> dict[int, int]:
    """{removed id: kept id} for rows whose estimated Jaccard similarity to an earlier kept row is >= threshold.

    Candidates come from ``datasketch.MinHashLSH``; each is confirmed on the MinHash estimate. ``ds`` needs a
    ``minhash`` column (``add_minhash``).
    """
    from datasketch import LeanMinHash, MinHashLSH

    threshold = check_threshold(threshold)
    if "minhash" not in ds.column_names:
        raise LabkitError("near_duplicates needs a 'minhash' column: run add_minhash(ds, kind) first.")
    num_perm = num_perm or len(ds[0]["minhash"])
    lsh = MinHashLSH(threshold=min(threshold, 0.9), num_perm=num_perm)  # above 0.9 LSH has too few bands
    kept: dict[int, LeanMinHash] = {}
    removed: dict[int, int] = {}
    for row_id, values in zip(ds["id"], ds["minhash"]):
        m = LeanMinHash(seed=seed, hashvalues=values, scheme=SCHEME)
        best = max(((m.jaccard(kept[c]), c) for c in lsh.query(m)), default=(0.0, None))
        if best[1] is not None and best[0] >= threshold:
            removed[row_id] = best[1]
        else:
            kept[row_id] = m
            lsh.insert(row_id, m)
    return removed


def exact_duplicates(ds, kind: str) -> dict[int, int]:
    """{removed id: kept id} for rows whose normalised text and target hash to an earlier row's (SHA-1)."""
    text_key, target_key = fields_of(ds, kind)
    with quiet():
        hashed = ds.map(lambda row: {"hash": hashlib.sha1(row_text(row, text_key, target_key).encode()).hexdigest()},
                        keep_in_memory=True, load_from_cache_file=False)
    first: dict[str, int] = {}
    removed = {}
    for row_id, h in zip(hashed["id"], hashed["hash"]):
        if h in first:
            removed[row_id] = first[h]
        else:
            first[h] = row_id
    return removed


# ---- contamination and personal data ------------------------------------------------------------------------------

def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of lower-cased text without punctuation (the whole text as one gram if it is shorter)."""
    words = re.findall(r"[a-z0-9]+", str(text).lower())
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))} if words else set()


def contamination(texts: list[str], test_texts: list[str], *, n: int = 3) -> list[tuple[float, int]]:
    """For each text: (largest share of its n-grams found in one test text, that test text's index)."""
    if not isinstance(n, int) or n < 1:
        raise LabkitError(f"n must be a positive whole number of words (e.g. 3), got {n!r}.")
    index: dict[tuple, list[int]] = {}
    for j, t in enumerate(test_texts):
        for g in ngrams(t, n):
            index.setdefault(g, []).append(j)
    out = []
    for text in texts:
        grams = ngrams(text, n)
        counts: dict[int, int] = {}
        for g in grams:
            for j in index.get(g, ()):
                counts[j] = counts.get(j, 0) + 1
        j, c = max(counts.items(), key=lambda kv: (kv[1], -kv[0]), default=(-1, 0))
        out.append((c / len(grams) if grams else 0.0, j))
    return out


def mask_personal(text: str) -> str:
    """Replace e-mail addresses and phone numbers with [EMAIL] and [PHONE]."""
    return PHONE.sub("[PHONE]", EMAIL.sub("[EMAIL]", text))


# ---- the pipeline -------------------------------------------------------------------------------------------------

@dataclass
class CleanResult:
    """The cleaned set and what each stage did."""

    clean: object  # datasets.Dataset after every stage
    table: object  # pandas DataFrame, one row per stage: rows in, flagged, precision, recall
    flagged: dict = field(default_factory=dict)  # stage -> ids it removed (or masked)
    reasons: dict = field(default_factory=dict)  # id -> the rule a row broke
    matches: dict = field(default_factory=dict)  # removed id -> kept id, for both dedup stages
    contaminated_test: set = field(default_factory=set)  # test indices found in the training rows


def clean(raw, test, truth, *, kind: str, threshold: float = 0.7, strictness: float = 0.5, overlap: float = 0.7,
          n: int = 3, num_perm: int = 128, minhashed=None) -> CleanResult:
    """Run every stage in order (rules, exact dedup, near dedup, contamination, personal data) with ``datasets``
    filter/map, scoring each on the rows that reached it. ``minhashed`` reuses ``add_minhash(raw, kind)``."""
    with quiet():
        return _clean(raw, test, truth, kind=kind, threshold=threshold, strictness=strictness, overlap=overlap, n=n,
                      num_perm=num_perm, minhashed=minhashed)


def _clean(raw, test, truth, *, kind, threshold, strictness, overlap, n, num_perm, minhashed) -> CleanResult:
    import pandas as pd

    text_key, target_key = fields_of(raw, kind)
    threshold, overlap = check_threshold(threshold), check_threshold(overlap, "overlap")
    truth = truth if isinstance(truth, dict) else truth_map(truth)
    test_texts = [f"{r[text_key]} {r[target_key]}" if kind == "instructions" else r[text_key] for r in test]
    limits = rule_thresholds(strictness)
    rows, flagged, matches = [], {}, {}
    ds = raw
    reasons = {row_id: rule_reason(t, limits) for row_id, t in zip(ds["id"], ds[text_key])}

    def stage(name, ids, new_ds, stage_matches=None):
        nonlocal ds
        pool = ds["id"]
        rows.append({"stage": name, "rows in": len(pool), **score_flags(ids, TARGETS[name], truth, pool,
                                                                        stage_matches)})
        flagged[name] = set(ids)
        ds = new_ds

    drop = {i for i, reason in reasons.items() if reason}
    stage("rules", drop, ds.filter(lambda row: not reasons[row["id"]], keep_in_memory=True))
    exact = exact_duplicates(ds, kind)
    matches.update(exact)
    stage("exact_dedup", exact, ds.filter(lambda row: row["id"] not in exact, keep_in_memory=True), exact)
    if minhashed is None:
        hashed = add_minhash(ds, kind, num_perm=num_perm)
    else:
        keep_ids = set(ds["id"])
        hashed = minhashed.filter(lambda row: row["id"] in keep_ids, keep_in_memory=True)
    near = near_duplicates(hashed, threshold)
    matches.update(near)
    stage("near_dedup", near, ds.filter(lambda row: row["id"] not in near, keep_in_memory=True), near)
    texts = [f"{r[text_key]} {r[target_key]}" if kind == "instructions" else r[text_key] for r in ds]
    found = contamination(texts, test_texts, n=n)
    leaked = {row_id for row_id, (share, _) in zip(ds["id"], found) if share >= overlap}
    contaminated_test = {j for (share, j) in found if share >= overlap}
    stage("contamination", leaked, ds.filter(lambda row: row["id"] not in leaked, keep_in_memory=True))
    masked = ds.map(lambda row: {text_key: mask_personal(row[text_key])}, keep_in_memory=True,
                    load_from_cache_file=False)
    changed = {i for i, a, b in zip(ds["id"], ds[text_key], masked[text_key]) if a != b}
    stage("personal_data", changed, masked)
    table = pd.DataFrame(rows).set_index("stage")
    table["action"] = ["removed", "removed", "removed", "removed", "masked"]
    return CleanResult(clean=ds, table=table, flagged=flagged, reasons={i: r for i, r in reasons.items() if r},
                       matches=matches, contaminated_test=contaminated_test)
