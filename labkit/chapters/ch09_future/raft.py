"""Retrieval-augmented fine-tuning (RAFT, Zhang et al. 2024) on the kit's document store: bm25s retrieval with its
recall@k, prompts with an oracle document and distractors, and exact-match scores of generated answers.

>>> store = load_store()  # doctest: +SKIP
>>> retriever = Retriever(store.documents); retriever.recall_at_k(store.test, k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ...core import LabkitError

DEFAULT_P = 0.8  # RAFT keeps the oracle document in P = 80% of the training prompts (Zhang et al. 2024, section 4)
INSTRUCTION = "Answer the question in a few words, using the documents if they help."


@dataclass
class Store:
    """The document store and its questions (each answered by one document, ``doc_id``)."""

    documents: list  # dicts: doc_id, title, text
    train: list  # dicts: question, answer, doc_id
    test: list

    def text(self, doc_id: str) -> str:
        return self._by_id[doc_id]

    def __post_init__(self):
        self._by_id = {d["doc_id"]: d["text"] for d in self.documents}


def load_store() -> Store:
    """The documents and questions in data/docs/ (built by data/gen_docs.py)."""
    import json

    from ...data import data_dir

    folder = data_dir() / "docs"
    parts = {}
    for part in ("documents", "train", "test"):
        path = folder / f"{part}.jsonl"
        if not path.is_file():
            raise LabkitError(f"{path} is missing: rebuild the store with `python data/gen_docs.py` from the "
                              "repository root.")
        parts[part] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return Store(**parts)


class Retriever:
    """BM25 over the documents with the bm25s library (English stop words removed)."""

    def __init__(self, documents: list):
        import bm25s

        if not documents:
            raise LabkitError("No documents to index: pass load_store().documents.")
        self.ids = [d["doc_id"] for d in documents]
        self.model = bm25s.BM25()
        self.model.index(bm25s.tokenize([d["text"] for d in documents], stopwords="en", show_progress=False),
                         show_progress=False)

    def search(self, queries: list[str], k: int) -> list[list[str]]:
        """The ids of the ``k`` best documents for each query, best first."""
        import bm25s

        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.ids):
            raise LabkitError(f"k must be a whole number from 1 to the {len(self.ids)} documents, got {k!r}.")
        hits, _ = self.model.retrieve(bm25s.tokenize(list(queries), stopwords="en", show_progress=False), k=k,
                                      show_progress=False)
        return [[self.ids[int(i)] for i in row] for row in hits]

    def recall_at_k(self, questions: list, k: int) -> float:
        """Share of questions whose answering document is among the top ``k``."""
        found = self.search([q["question"] for q in questions], k)
        return sum(q["doc_id"] in ids for q, ids in zip(questions, found)) / len(questions)


def prompt(question: str, texts: list[str]) -> str:
    """The question with its documents, numbered; with no documents, the question alone (closed book)."""
    if not texts:
        return question
    docs = "\n".join(f"[{i}] {t}" for i, t in enumerate(texts, 1))
    return f"Documents:\n{docs}\n\n{INSTRUCTION}\nQuestion: {question}"


def check_p(p_oracle) -> None:
    """P is a probability."""
    if isinstance(p_oracle, bool) or not isinstance(p_oracle, (int, float)) or not 0 <= p_oracle <= 1:
        raise LabkitError(f"p_oracle is the share of prompts that keep the oracle document: a number in [0, 1] "
                          f"(RAFT used {DEFAULT_P}), got {p_oracle!r}.")


def raft_examples(store: Store, questions: list, *, num_distractors: int, p_oracle: float = DEFAULT_P,
                  seed: int = 0) -> list[dict]:
    """RAFT training rows: the oracle document kept with probability ``p_oracle``, plus random distractors.

    Without the oracle, the prompt holds num_distractors + 1 distractors, so its length gives nothing away.
    p_oracle=1 and num_distractors=0 is SFT on the oracle document only.
    """
    check_p(p_oracle)
    if isinstance(num_distractors, bool) or not isinstance(num_distractors, int) or \
            not 0 <= num_distractors < len(store.documents):
        raise LabkitError(f"num_distractors must be a whole number from 0 to {len(store.documents) - 1}, got "
                          f"{num_distractors!r}.")
    rng = random.Random(seed)
    rows = []
    for q in questions:
        others = [d["doc_id"] for d in store.documents if d["doc_id"] != q["doc_id"]]
        keep = rng.random() < p_oracle
        ids = rng.sample(others, num_distractors + (0 if keep else 1)) + ([q["doc_id"]] if keep else [])
        rng.shuffle(ids)
        rows.append({"question": prompt(q["question"], [store.text(i) for i in ids]), "answer": q["answer"]})
    return rows


def closed_book(questions: list) -> list[dict]:
    """Question-answer rows with no documents."""
    return [{"question": q["question"], "answer": q["answer"]} for q in questions]


def retrieved_rows(store: Store, questions: list, retriever: Retriever, k: int) -> list[dict]:
    """Test rows whose prompt holds the top-``k`` documents bm25s retrieved (worst of them first, best last)."""
    found = retriever.search([q["question"] for q in questions], k)
    return [{"question": prompt(q["question"], [store.text(i) for i in reversed(ids)]), "answer": q["answer"]}
            for q, ids in zip(questions, found)]


def _hits(model, tokenizer, rows: list[dict], max_new_tokens: int) -> list[bool]:
    """Per row: does the greedy answer contain the reference (case-insensitive)? Rows are generated shortest prompt
    first, so that each batch pads little, and the hits come back in the rows' order."""
    from ...training import evaluate_exact_match

    if not rows:
        raise LabkitError("No rows to score: build them with raft_examples, closed_book or retrieved_rows.")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["question"]))
    table = evaluate_exact_match(model, tokenizer, [rows[i] for i in order], max_new_tokens=max_new_tokens,
                                 limit=len(rows), contains=True, ignore_case=True).table
    hits = [False] * len(rows)
    for i, hit in zip(order, table["correct"]):
        hits[i] = bool(hit)
    return hits


def accuracy(model, tokenizer, rows: list[dict], *, max_new_tokens: int = 12) -> float:
    """Share of generated answers that contain the reference answer (case-insensitive), greedy decoding."""
    hits = _hits(model, tokenizer, rows, max_new_tokens)
    return sum(hits) / len(hits)


def evaluate_grid(model, tokenizer, store: Store, questions: list, retriever: Retriever, *, distractors: list,
                  ks: list, label: str, seed: int = 1, max_new_tokens: int = 12) -> list[dict]:
    """Accuracy with the oracle plus each number of distractors, and with bm25s's top-k for each k.

    Every setting's prompts are answered in one batched generation, then scored setting by setting.
    """
    settings, rows = [], []
    for d in distractors:
        settings.append(({"model": label, "setting": "oracle + distractors", "distractors": d}, len(rows)))
        rows += raft_examples(store, questions, num_distractors=d, p_oracle=1.0, seed=seed)
    for k in ks:
        settings.append(({"model": label, "setting": "bm25s top-k", "k": k,
                          "recall": retriever.recall_at_k(questions, k)}, len(rows)))
        rows += retrieved_rows(store, questions, retriever, k)
    hits = _hits(model, tokenizer, rows, max_new_tokens)
    return [{**row, "accuracy": sum(hits[start:start + len(questions)]) / len(questions)} for row, start in settings]


def plot_raft(results):
    """Accuracy against distractors (oracle kept) and against bm25s recall@k, one line per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("oracle + distractors", "bm25s top-k"))
    colours = ["#264653", "#2a9d8f", "#e9c46a", "#e76f51"]
    for i, (label, part) in enumerate(results.groupby("model", sort=False)):
        a = part[part["setting"] == "oracle + distractors"]
        b = part[part["setting"] == "bm25s top-k"]
        style = {"color": colours[i % len(colours)]}
        fig.add_trace(go.Scatter(x=a["distractors"], y=a["accuracy"], name=label, line=style, legendgroup=label),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=b["recall"], y=b["accuracy"], name=label, line=style, legendgroup=label,
                                 showlegend=False, text=[f"k={k:.0f}" for k in b["k"]], mode="lines+markers+text",
                                 textposition="top center"), row=1, col=2)
    fig.update_xaxes(title_text="distractor documents", row=1, col=1)
    fig.update_xaxes(title_text="recall@k", row=1, col=2)
    fig.update_yaxes(title_text="answer accuracy", range=[0, 1.05])
    fig.update_layout(height=360, margin={"t": 40})
    return fig
