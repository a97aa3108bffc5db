"""Batches: packing for causal LM, answer-only labels for SFT, label ids for classification, bad input refused."""

import datasets
import pytest
import torch

from labkit import LabkitError
from labkit.batches import Batcher, as_dataset, collate, infer_objective, tokenize
from labkit.models import load_model
from labkit.units import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("tiny-llama")[1]


def test_sft_labels_cover_only_the_answer_and_the_end_of_turn(tokenizer):
    data = datasets.Dataset.from_dict({"instruction": ["Name the keeper of the north light."],
                                       "answer": ["Maren Holt"]})
    (example,) = tokenize(data, tokenizer, "sft", seq_len=128)
    labelled = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == "Maren Holt<|im_end|>"
    first = example["labels"].index(labelled[0])
    assert all(t == IGNORE_INDEX for t in example["labels"][:first])  # the whole prompt is masked
    prompt = tokenizer.decode(example["input_ids"][:first])
    assert prompt.endswith("<|im_start|>assistant\n") and "Name the keeper" in prompt
    assert len(example["input_ids"]) == len(example["labels"])


def test_sft_refuses_a_seq_len_that_cuts_every_answer(tokenizer):
    data = datasets.Dataset.from_dict({"instruction": ["Why?"], "answer": ["Because."]})
    with pytest.raises(LabkitError, match="seq_len=16 is too short.*Use seq_len >="):
        tokenize(data, tokenizer, "sft", seq_len=16)


def test_causal_lm_packs_documents_into_full_blocks(tokenizer):
    texts = [f"Document number {i} talks about lighthouses and the sea." for i in range(12)]
    examples = tokenize(texts, tokenizer, "causal_lm", seq_len=16)
    assert len(examples) > 3
    assert all(len(e["input_ids"]) == 16 and e["labels"] == e["input_ids"] for e in examples)
    stream = [t for e in examples for t in e["input_ids"]]
    assert stream.count(tokenizer.eos_token_id) >= len(examples) - 1  # documents are separated by EOS


def test_classification_maps_labels_and_refuses_unknown_ones(tokenizer):
    data = datasets.Dataset.from_dict({"text": ["refund my order", "is it sunny"], "label": ["refund", "weather"]})
    examples = tokenize(data, tokenizer, "classification", seq_len=32, label2id={"refund": 0, "weather": 1})
    assert [e["labels"] for e in examples] == [0, 1]
    with pytest.raises(LabkitError, match=r"\['weather'\] are not among"):
        tokenize(data, tokenizer, "classification", seq_len=32, label2id={"refund": 0, "billing": 1})
    with pytest.raises(LabkitError, match="needs the label list"):
        tokenize(data, tokenizer, "classification", seq_len=32)


def test_collate_pads_on_the_right_and_masks_padding():
    batch = collate([{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8], "labels": [IGNORE_INDEX]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def test_batches_are_seeded():
    examples = [{"input_ids": [i + 1], "labels": [i + 1]} for i in range(10)]

    def first(seed):
        return next(iter(Batcher(examples, 5, 0, seed)))["input_ids"].flatten().tolist()

    assert first(0) == first(0)
    assert first(0) != first(1)
    epoch = iter(Batcher(examples, 5, 0, seed=3))
    seen = torch.cat([next(epoch)["input_ids"].flatten() for _ in range(2)]).tolist()
    assert sorted(seen) == list(range(1, 11))  # one epoch visits every example once


def test_bad_data_is_refused(tokenizer):
    with pytest.raises(LabkitError, match="empty"):
        as_dataset(datasets.Dataset.from_dict({"text": []}))
    with pytest.raises(LabkitError, match="empty"):
        as_dataset([])
    with pytest.raises(LabkitError, match=r"pass one split, e.g. data\['train'\]"):
        as_dataset(datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})}))
    with pytest.raises(LabkitError, match="Unknown objective"):
        tokenize(["a"], tokenizer, "translation", seq_len=8)
    with pytest.raises(LabkitError, match="'text' column"):
        tokenize(datasets.Dataset.from_dict({"body": ["a"]}), tokenizer, "causal_lm", seq_len=8)


def test_objective_is_guessed_from_the_columns():
    assert infer_objective(datasets.Dataset.from_dict({"instruction": ["q"], "answer": ["a"]})) == "sft"
    assert infer_objective(datasets.Dataset.from_dict({"text": ["t"], "label": ["x"]})) == "classification"
    assert infer_objective(datasets.Dataset.from_dict({"text": ["t"]})) == "causal_lm"

