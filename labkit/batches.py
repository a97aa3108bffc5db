"""Turn the kit's data sets into tokenized batches: causal-LM text, chat SFT (answer-only labels), classification.

>>> examples = tokenize(data["train"], tokenizer, "sft", seq_len=128)  # doctest: +SKIP
>>> batch = next(iter(Batcher(examples, batch_size=4, pad_id=tokenizer.pad_token_id)))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from .core import LabkitError
from .units import IGNORE_INDEX

OBJECTIVES = ("causal_lm", "sft", "classification")


def as_dataset(data):
    """A datasets.Dataset from a Dataset, a list of dicts or a list of strings; refuse empty or ambiguous input."""
    import datasets

    if isinstance(data, datasets.DatasetDict):
        raise LabkitError(f"Got a DatasetDict with splits {list(data)}: pass one split, e.g. data['train'].")
    if isinstance(data, (list, tuple)):
        if data and isinstance(data[0], str):
            data = [{"text": t} for t in data]
        data = datasets.Dataset.from_list(list(data)) if data else datasets.Dataset.from_dict({})
    if not isinstance(data, datasets.Dataset):
        raise LabkitError(f"Expected a datasets.Dataset (or a list of examples), got {type(data).__name__}.")
    if len(data) == 0:
        raise LabkitError("The data set is empty: check the split name and any filter you applied.")
    return data


def infer_objective(data, model=None) -> str:
    """Guess the objective from the columns (instruction/answer: sft, label: classification, else causal_lm)."""
    from .methods.linear_probe import is_classifier

    cols = set(data.column_names)
    if model is not None and is_classifier(model) or "label" in cols and "input_ids" not in cols:
        return "classification"
    if {"instruction", "answer"} <= cols or {"question", "answer"} <= cols:
        return "sft"
    return "causal_lm"


def _text_column(data) -> str:
    if "text" in data.column_names:
        return "text"
    raise LabkitError(f"Causal-LM data needs a 'text' column; this data set has {data.column_names}.")


def _pack(token_lists: list[list[int]], seq_len: int, eos_id: int) -> list[dict]:
    """Concatenate documents (separated by EOS) and cut them into blocks of seq_len tokens."""
    stream = [t for ids in token_lists for t in (*ids, eos_id)]
    blocks = [stream[i:i + seq_len] for i in range(0, len(stream), seq_len)]
    if len(blocks) > 1 and len(blocks[-1]) < seq_len:
        blocks.pop()  # keep shapes fixed; the tail is shorter than one block
    return [{"input_ids": b, "labels": list(b)} for b in blocks]


def prompt_text(tokenizer, instruction: str) -> str:
    """The chat-formatted prompt for one instruction, ending where the assistant's answer starts."""
    messages = [{"role": "user", "content": instruction}]
    if tokenizer.chat_template is None:
        return f"{instruction}\n"
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _sft_examples(data, tokenizer, seq_len: int) -> list[dict]:
    question = "instruction" if "instruction" in data.column_names else "question"
    if question not in data.column_names or "answer" not in data.column_names:
        raise LabkitError(f"SFT data needs 'instruction' (or 'question') and 'answer' columns; got {data.column_names}.")
    eot = tokenizer.eos_token or ""
    prompts, answers = [], []
    for row in data:
        prompt = prompt_text(tokenizer, row[question])
        if tokenizer.chat_template is None:
            answer = f"{row['answer']}{eot}"
        else:
            full = tokenizer.apply_chat_template([{"role": "user", "content": row[question]},
                                                  {"role": "assistant", "content": row["answer"]}], tokenize=False)
            answer = full[len(prompt):]
            answer = answer[:answer.index(eot) + len(eot)] if eot and eot in answer else answer  # up to end-of-turn
        prompts.append(prompt)
        answers.append(answer)
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    examples = []
    for p, a in zip(prompt_ids, answer_ids):
        ids, labels = (p + a)[:seq_len], ([IGNORE_INDEX] * len(p) + a)[:seq_len]
        if any(label != IGNORE_INDEX for label in labels):
            examples.append({"input_ids": ids, "labels": labels})
    if not examples:
        raise LabkitError(f"seq_len={seq_len} is too short: every answer was cut off after its chat-formatted "
                          f"prompt (~{len(prompt_ids[0])} tokens). Use seq_len >= {len(prompt_ids[0]) + 16}.")
    return examples


def _classification_examples(data, tokenizer, seq_len: int, label2id: dict) -> list[dict]:
    if "text" not in data.column_names or "label" not in data.column_names:
        raise LabkitError(f"Classification data needs 'text' and 'label' columns; got {data.column_names}.")
    unknown = sorted({str(x) for x in data["label"]} - set(label2id))
    if unknown:
        raise LabkitError(f"Labels {unknown[:5]} are not among the model's labels {list(label2id)}: build the head "
                          "with labels=sorted(set(train['label'])).")
    ids = tokenizer(list(data["text"]), truncation=True, max_length=seq_len)["input_ids"]
    return [{"input_ids": x, "labels": label2id[str(y)]} for x, y in zip(ids, data["label"])]


def _pretokenized(data, objective: str, seq_len: int, label2id: dict | None) -> list[dict]:
    """Rows that already hold input_ids (and maybe labels/label): cut to seq_len, map class names to ids."""
    examples = []
    for row in data:
        ids = list(row["input_ids"])[:seq_len]
        if objective == "classification":
            label = row.get("labels", row.get("label"))
            if isinstance(label, str):
                if not label2id or label not in label2id:
                    raise LabkitError(f"Label {label!r} is not among the model's labels {list(label2id or [])}.")
                label = label2id[label]
            examples.append({"input_ids": ids, "labels": int(label)})
        else:
            labels = row.get("labels")
            examples.append({"input_ids": ids, "labels": list(labels)[:seq_len] if labels is not None else list(ids)})
    return examples


def tokenize(data, tokenizer, objective: str, *, seq_len: int, label2id: dict | None = None) -> list[dict]:
    """Tokenize raw examples for an objective; rows that already have input_ids pass through."""
    if objective not in OBJECTIVES:
        raise LabkitError(f"Unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}.")
    if seq_len <= 0:
        raise LabkitError(f"seq_len must be positive (try 128), got {seq_len}.")
    data = as_dataset(data)
    if "input_ids" in data.column_names:
        return _pretokenized(data, objective, seq_len, label2id)
    if objective == "sft":
        return _sft_examples(data, tokenizer, seq_len)
    if objective == "classification":
        if label2id is None:
            raise LabkitError("Classification needs the label list: train a model from add_classifier_head or "
                              "apply_method(model, 'linear_probe', labels=...).")
        return _classification_examples(data, tokenizer, seq_len, label2id)
    texts = [t for t in data[_text_column(data)] if t]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return _pack(ids, seq_len, tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0)


def collate(rows: list[dict], pad_id: int) -> dict:
    """Right-pad a list of examples into tensors: input_ids, attention_mask and labels."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    per_token = isinstance(rows[0]["labels"], list)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long) if per_token else \
        torch.tensor([r["labels"] for r in rows], dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        input_ids[i, :n] = torch.tensor(r["input_ids"])
        mask[i, :n] = 1
        if per_token:
            labels[i, :n] = torch.tensor(r["labels"])
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


@dataclass
class Batcher:
    """Endless shuffled batches (a new seeded permutation each epoch)."""

    examples: list[dict]  # output of tokenize()
    batch_size: int  # examples per batch
    pad_id: int  # token used for padding (masked out of attention and loss)
    seed: int = 0  # shuffling seed; the same seed gives the same batches

    def __post_init__(self):
        if not self.examples:
            raise LabkitError("No training examples after tokenizing: check the data set and seq_len.")
        if self.batch_size <= 0:
            raise LabkitError(f"batch_size must be positive (try 4), got {self.batch_size}.")

    def __iter__(self):
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        n = len(self.examples)
        while True:
            order = torch.randperm(n, generator=gen).tolist()
            if n < self.batch_size:
                order = (order * (self.batch_size // n + 1))[:self.batch_size]
            for i in range(0, len(order) - self.batch_size + 1, self.batch_size):
                yield collate([self.examples[j] for j in order[i:i + self.batch_size]], self.pad_id)


def in_order(examples: list[dict], batch_size: int, pad_id: int):
    """Batches in the given order, once (for evaluation)."""
    for i in range(0, len(examples), batch_size):
        yield collate(examples[i:i + batch_size], pad_id)

