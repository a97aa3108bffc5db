"""Lab 09's document store and RAFT rows: the store rebuilds byte-identically, bm25s recall grows with k, and bad
input says what to do."""

import importlib.util
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
    assert sizes == {"documents": 80, "train": 133, "test": 53}
    for part in ("documents", "train", "test"):
        assert (tmp_path / "docs" / f"{part}.jsonl").read_bytes() == (DATA / "docs" / f"{part}.jsonl").read_bytes()
    assert sum(p.stat().st_size for p in (DATA / "docs").iterdir()) < 100_000


def test_every_question_has_one_oracle_that_holds_its_answer():
    store = raft.load_store()
    for q in store.train + store.test:
        assert q["answer"] in store.text(q["doc_id"])
    assert not {q["question"] for q in store.train} & {q["question"] for q in store.test}


def test_bm25s_recall_grows_with_k():
    store = raft.load_store()
    retriever = raft.Retriever(store.documents)
    recalls = [retriever.recall_at_k(store.test, k) for k in (1, 3, 10)]
    assert recalls == sorted(recalls) and recalls[-1] > 0.9 and recalls[0] > 0.3
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
