"""Lab 09's document store and RAFT rows: the store rebuilds byte-identically, bm25s recall grows with k, and bad
input says what to do."""

import importlib.util
import re
from pathlib import Path

import pytest

from labkit.chapters.ch09_future import raft
from labkit.core import LabkitError

DATA = Path(__file__).resolve().parents[1] / "data"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", DATA / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_store_rebuilds_byte_identically_and_stays_small(tmp_path):
    module = _gen_docs()
    sizes = module.write(tmp_path, module._write_jsonl)
    assert sizes == {"documents": 96, "train": 92, "test": 52}
    for part in ("documents", "train", "test"):
        assert (tmp_path / "docs" / f"{part}.jsonl").read_bytes() == (DATA / "docs" / f"{part}.jsonl").read_bytes()
    assert sum(p.stat().st_size for p in (DATA / "docs").iterdir()) < 100_000


def _holders(store, question):
    """Documents that name the question's subject (as a word) and hold its answer."""
    subject = re.compile(rf"\b{re.escape(question['subject'])}\b")
    return [d["doc_id"] for d in store.documents if question["answer"] in d["text"] and subject.search(d["text"])]


def test_every_question_has_one_oracle_that_holds_its_answer():
    store = raft.load_store()
    for q in store.train + store.test:
        assert q["answer"] in store.text(q["doc_id"])
        assert _holders(store, q) == [q["doc_id"]], q
    assert not {q["question"] for q in store.train} & {q["question"] for q in store.test}
    # the check sees a second document that states the same fact about the same subject
    q = store.test[0]
    twin = {"doc_id": "twin", "title": "", "text": f"{q['subject']}: {q['answer']}."}
    assert _holders(raft.Store(store.documents + [twin], [], []), q) == [q["doc_id"], "twin"]


def test_every_subject_is_named_in_several_documents():
    store = raft.load_store()
    for q in store.train + store.test:
        named = [d for d in store.documents if re.search(rf"\b{re.escape(q['subject'])}\b", d["text"])]
        assert len(named) >= 2, q  # a hard distractor about the same subject exists for every question


def test_bm25s_recall_grows_with_k():
    store = raft.load_store()
    retriever = raft.Retriever(store.documents)
    recalls = [retriever.recall_at_k(store.test, k) for k in (1, 2, 3, 5)]
    assert [round(r, 2) for r in recalls] == [0.6, 0.79, 0.92, 1.0]  # measured with bm25s 0.3.16 (datasheet)
    with pytest.raises(LabkitError, match="k must be"):
        retriever.search(["Who is the keeper of Pip?"], 0)
    with pytest.raises(LabkitError, match="No documents"):
        raft.Retriever([])


def test_raft_rows_keep_the_oracle_in_p_of_prompts():
    store = raft.load_store()
    qs = store.train[:60]
    always = raft.raft_examples(store, qs, num_distractors=2, p_oracle=1.0)
    never = raft.raft_examples(store, qs, num_distractors=2, p_oracle=0.0)
    assert all(store.text(q["doc_id"]) in r["question"] for q, r in zip(qs, always))
    assert not any(store.text(q["doc_id"]) in r["question"] for q, r in zip(qs, never))
    assert all(r["question"].count("\n[") == 3 for r in always + never)  # 3 documents either way
    some = raft.raft_examples(store, qs, num_distractors=1, p_oracle=0.5, seed=3)
    share = sum(store.text(q["doc_id"]) in r["question"] for q, r in zip(qs, some)) / len(qs)
    assert 0.3 < share < 0.7
    assert raft.closed_book(qs[:1]) == [{"question": qs[0]["question"], "answer": qs[0]["answer"]}]


@pytest.mark.parametrize("p_oracle", [-0.1, 1.5, "0.8", True])
def test_p_outside_0_1_is_refused(p_oracle):
    store = raft.load_store()
    with pytest.raises(LabkitError, match=r"\[0, 1\]"):
        raft.raft_examples(store, store.train[:2], num_distractors=1, p_oracle=p_oracle)


def test_bad_distractors_and_missing_store(monkeypatch, tmp_path):
    store = raft.load_store()
    with pytest.raises(LabkitError, match="num_distractors"):
        raft.raft_examples(store, store.train[:2], num_distractors=len(store.documents))
    with pytest.raises(LabkitError, match="No rows"):
        raft.accuracy(None, None, [])
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    with pytest.raises(LabkitError, match="gen_docs.py"):
        raft.load_store()


def test_evaluate_grid_scores_each_setting_from_one_batched_generation(monkeypatch):
    """With a stand-in model that answers right exactly when the oracle is in the prompt, the oracle settings score 1
    and each top-k setting scores its recall@k: each prompt's hit lands in its own setting, whatever the batching."""
    import pandas as pd

    import labkit.training

    store = raft.load_store()
    questions = store.test[:12]
    oracle = {q["question"]: store.text(q["doc_id"]) for q in questions}

    def stand_in(model, tokenizer, rows, **kwargs):
        hits = [oracle[r["question"].split("Question: ")[-1]] in r["question"] for r in rows]
        return type("Result", (), {"table": pd.DataFrame({"correct": hits})})()

    monkeypatch.setattr(labkit.training, "evaluate_exact_match", stand_in)
    retriever = raft.Retriever(store.documents)
    rows = raft.evaluate_grid(None, None, store, questions, retriever, distractors=[0, 3], ks=[1, 2, 5], label="x")
    assert [r["accuracy"] for r in rows[:2]] == [1.0, 1.0]
    assert [r["accuracy"] for r in rows[2:]] == [retriever.recall_at_k(questions, k) for k in (1, 2, 5)]
    assert [r["accuracy"] for r in rows[2:]] == [r["recall"] for r in rows[2:]] and rows[2]["recall"] < 1
