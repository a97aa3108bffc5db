"""Baselines before fine-tuning, scored as the fine-tuned runs are: majority, random, bag-of-words logistic
regression (scikit-learn), kNN on the model's embeddings, zero-shot and few-shot prompting (prompts built here).

Intents are scored by accuracy of a label (a language model's label is the one whose first answer token it finds
most likely); instructions by exact match of an answer (a language model's answer is its greedy generation).

>>> prompt = few_shot_prompt(train, "My dragon is ill", k=2, task="intents")  # doctest: +SKIP
>>> table = few_shot_table(model, tokenizer, train, test, ks=(0, 1, 2, 4, 8), task="intents")  # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
import warnings

from ...core import LabkitError

TASKS = ("intents", "instructions")
# Intents: the labels are listed in the prompt (lab 01d's instruction wording), then k solved messages.
INTENT_HEAD = "Classify this help-desk message as one of: {labels}.\n\n"
INTENT_SHOT = "Message: {text}\nLabel: {label}\n\n"
INTENT_QUERY = "Message: {text}\nLabel:"
# Instructions: k solved tasks of the same family, then the task; k = 0 is the bare instruction (as lk.train's SFT).
INSTR_HEAD = "Answer the last task in the same style as the solved examples.\n\n"
INSTR_SHOT = "Task: {instruction}\nAnswer: {answer}\n\n"
INSTR_QUERY = "Task: {instruction}\nAnswer:"


def check_task(task: str) -> None:
    """A LabkitError unless ``task`` is one this lab knows."""
    if task not in TASKS:
        raise LabkitError(f"Unknown task {task!r}: use 'intents' (text/label rows) or 'instructions' "
                          "(instruction/answer/family rows).")


def _rows(data) -> list[dict]:
    return [dict(row) for row in data]


def pick_shots(pool, k: int, *, seed: int = 0, family: str | None = None) -> list[dict]:
    """``k`` rows drawn (seeded) from ``pool``, only of ``family`` when given; a LabkitError if there are too few."""
    rows = [r for r in _rows(pool) if family is None or r.get("family") == family]
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise LabkitError(f"k must be a whole number of examples, 0 or more (e.g. k=4), got {k!r}.")
    if k > len(rows):
        where = f" of family {family!r}" if family else ""
        raise LabkitError(f"k={k} is larger than the training set{where} ({len(rows)} rows): pick k <= {len(rows)} "
                          "or pass a larger pool.")
    return random.Random(seed).sample(rows, k)


def few_shot_prompt(pool, query: dict | str, k: int, *, task: str, labels=None, seed: int = 0) -> str:
    """The user message for ``query`` with ``k`` solved examples from ``pool`` (the chat template wraps it later).

    >>> few_shot_prompt([{"text": "fire!", "label": "report_fire"}], "smoke", 1, task="intents", labels=["feed",
    ...                 "report_fire"])
    'Classify this help-desk message as one of: feed, report_fire.\\n\\nMessage: fire!\\nLabel: report_fire\\n\\nMessage: smoke\\nLabel:'
    """
    check_task(task)
    if task == "intents":
        from ...data import INTENT_LABELS

        text = query if isinstance(query, str) else query["text"]
        shots = pick_shots(pool, k, seed=seed)
        head = INTENT_HEAD.format(labels=", ".join(labels or INTENT_LABELS))
        return head + "".join(INTENT_SHOT.format(**s) for s in shots) + INTENT_QUERY.format(text=text)
    if isinstance(query, str):
        query = {"instruction": query, "family": None}
    if k == 0:
        return query["instruction"]
    shots = pick_shots(pool, k, seed=seed, family=query.get("family"))
    return INSTR_HEAD + "".join(INSTR_SHOT.format(**s) for s in shots) + INSTR_QUERY.format(**query)


def as_instructions(data, *, labels=None) -> list[dict]:
    """Intents posed as SFT rows: the zero-shot prompt (k = 0) as the instruction, the label as the answer; a LoRA
    trained on them is scored by ``prompt_answers`` exactly as the prompting baselines are."""
    return [{"instruction": few_shot_prompt([], row["text"], 0, task="intents", labels=labels), "answer": row["label"]}
            for row in _rows(data)]


# ---- scoring, the same for every baseline and every fine-tuned run ---------------------------------------------------

def accuracy(predictions, references) -> float:
    """Share of labels right, by the kit's accuracy module (labels compared as names)."""
    from ...metrics import load_metric

    names = sorted({*map(str, predictions), *map(str, references)})
    ids = {name: i for i, name in enumerate(names)}
    result = load_metric("accuracy").compute(predictions=[ids[str(p)] for p in predictions],
                                             references=[ids[str(r)] for r in references])
    return float(result["accuracy"])


def exact_match(predictions, references) -> float:
    """Share of answers equal to the reference after stripping, by the kit's exact_match module."""
    from ...metrics import load_metric

    return float(load_metric("exact_match").compute(predictions=[str(p).strip() for p in predictions],
                                                    references=[[str(r)] for r in references])["exact_match"])


def score(task: str, predictions, references) -> float:
    """Accuracy for intents, exact match for instructions."""
    check_task(task)
    return accuracy(predictions, references) if task == "intents" else exact_match(predictions, references)


def _xy(data, task: str):
    rows = _rows(data)
    if task == "intents":
        return [r["text"] for r in rows], [r["label"] for r in rows]
    return [r["instruction"] for r in rows], [r["answer"] for r in rows]


# ---- baselines without the model ------------------------------------------------------------------------------------

def majority_predict(train, n: int, *, task: str) -> list[str]:
    """The most common training label (or answer), ``n`` times."""
    from collections import Counter

    _, ys = _xy(train, task)
    if not ys:
        raise LabkitError("The training set is empty: pass at least one row.")
    return [Counter(ys).most_common(1)[0][0]] * n


def random_predict(train, n: int, *, task: str, seed: int = 0) -> list[str]:
    """A label (intents: uniform over the labels seen) or an answer (instructions: a random training answer)."""
    _, ys = _xy(train, task)
    if not ys:
        raise LabkitError("The training set is empty: pass at least one row.")
    rng = random.Random(seed)
    choices = sorted(set(ys)) if task == "intents" else ys
    return [rng.choice(choices) for _ in range(n)]


def bow_logreg(train, test, *, task: str):
    """Fit TfidfVectorizer + LogisticRegression on ``train``; predict ``test``. Returns (predictions, pipeline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    xs, ys = _xy(train, task)
    if len(set(ys)) < 2:
        raise LabkitError("Logistic regression needs at least two different labels in the training set.")
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000))
    with warnings.catch_warnings():
        # instructions: nearly every answer is its own class, which is the point (a classifier can only repeat
        # answers it has seen); scikit-learn's note that y "could represent a regression problem" says the same
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        pipe.fit(xs, ys)
    return list(pipe.predict(_xy(test, task)[0])), pipe


# ---- kNN on the model's embeddings ----------------------------------------------------------------------------------

def embed(model, tokenizer, texts, *, batch_size: int = 32, seq_len: int = 64):
    """Mean-pooled last hidden state of each text (numpy array, one row per text), L2-normalised for cosine kNN."""
    from ...training import embed_texts

    return embed_texts(model, tokenizer, texts, batch_size=batch_size, seq_len=seq_len, normalize=True)


def knn_predict(train_vectors, train_targets, test_vectors, *, k: int = 5) -> list:
    """Majority target of the ``k`` nearest training rows by cosine (scikit-learn KNeighborsClassifier)."""
    from sklearn.neighbors import KNeighborsClassifier

    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise LabkitError(f"k must be a positive whole number of neighbours (e.g. k=5), got {k!r}.")
    if k > len(train_targets):
        raise LabkitError(f"k={k} is larger than the training set ({len(train_targets)} rows): pick k <= "
                          f"{len(train_targets)}.")
    with warnings.catch_warnings():  # 1-NN over answers: every answer its own class, as intended (see bow_logreg)
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        clf = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train_vectors, list(train_targets))
    return list(clf.predict(test_vectors))


# ---- prompting the model --------------------------------------------------------------------------------------------

def first_tokens(tokenizer, labels) -> list[int]:
    """The first token of each label as the assistant's answer starts (as SFT tokenizes it): distinct, or an error."""
    firsts = [tokenizer(str(label), add_special_tokens=False)["input_ids"][0] for label in labels]
    if len(set(firsts)) < len(firsts):
        raise LabkitError("Two labels start with the same token, so one forward pass cannot tell them apart: rename "
                          "them so that each starts differently.")
    return firsts


def choose_labels(model, tokenizer, prompts: list[str], labels, *, batch_size: int = 8) -> list[str]:
    """For each user message, the label whose first token the model finds most likely after the chat prompt."""
    import torch

    from ...batches import prompt_text

    ids = torch.tensor(first_tokens(tokenizer, labels))
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    chosen = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [prompt_text(tokenizer, p) for p in prompts[i:i + batch_size]]  # the answer starts next
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            positions = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1]
            chosen += [labels[j] for j in logits[:, ids.to(device)].argmax(-1).tolist()]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return chosen


def prompt_answers(model, tokenizer, prompts: list[str], *, task: str, labels=None, max_new_tokens: int = 16):
    """Predictions for user messages: a label (intents, one forward pass) or the first line of a greedy answer."""
    from ...training import generate_answers

    check_task(task)
    if task == "intents":
        from ...data import INTENT_LABELS

        return choose_labels(model, tokenizer, prompts, list(labels or INTENT_LABELS))
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return [a.splitlines()[0].strip() if a.strip() else "" for a in answers]


def few_shot_table(model, tokenizer, pool, test, *, ks=(0, 1, 2, 4, 8), task: str, max_new_tokens: int = 16,
                   seed: int = 0, hardware: str = "A100-80GB"):
    """Accuracy (or exact match) against prompt length and cost for each k. A DataFrame, one row per k.

    Cost: forward FLOPs per query by 2·N·tokens (Kaplan et al. 2020), the measured seconds per query here, and
    dollars per million queries on ``hardware`` at the meters' table price and assumed MFU.
    """
    import pandas as pd

    from ...batches import prompt_text
    from ...meters import estimate_cost, matmul_params

    check_task(task)
    queries = _rows(test)
    if not queries:
        raise LabkitError("The test set is empty: pass at least one row to score.")
    refs = _xy(queries, task)[1]
    n_params = matmul_params(model.config)
    rows = []
    for k in ks:
        prompts = [few_shot_prompt(pool, q, k, task=task, seed=seed + i) for i, q in enumerate(queries)]
        tokens = [len(tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"]) for p in prompts]
        start = time.perf_counter()
        preds = prompt_answers(model, tokenizer, prompts, task=task, max_new_tokens=max_new_tokens)
        per_query_s = (time.perf_counter() - start) / len(prompts)
        mean_tokens = sum(tokens) / len(tokens)
        flops = 2.0 * n_params * (mean_tokens + (0 if task == "intents" else max_new_tokens))
        rows.append({"k": k, "score": score(task, preds, refs), "prompt_tokens": mean_tokens,
                     "gflops_per_query": flops / 1e9, "time_per_query_s": per_query_s,
                     f"usd_per_1m_queries_{hardware}": estimate_cost(flops * 1e6, hardware)})
    return pd.DataFrame(rows)
