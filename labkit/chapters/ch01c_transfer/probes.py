"""Transfer diagnostics: features from every layer, linear probes, linear CKA, partial freezing, tokens per word.

>>> feats = layer_features(model, tokenizer, intents["train"]["text"][:200])  # doctest: +SKIP
>>> probe_layers(feats, train_labels, {"test": (test_feats, test_labels)})  # doctest: +SKIP
>>> linear_cka(feats[5], feats[6])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...core import LabkitError


def decoder_of(model):
    """The decoder stack (embeddings, ``layers``, final norm) inside a causal LM, a peft model or a classifier."""
    inner = getattr(model, "backbone", model)  # the kit's classifier keeps the LM as .backbone
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    if hasattr(inner, "layers"):
        return inner
    if hasattr(inner, "get_decoder"):
        return inner.get_decoder()
    raise LabkitError(f"Cannot find the decoder layers of a {type(model).__name__}: pass a causal LM from "
                      "lk.load_model(...) or a classifier built on one.")


def num_layers(model) -> int:
    """Number of transformer blocks of ``model``."""
    return len(decoder_of(model).layers)


@dataclass
class LayerFeatures:
    """Mean-pooled hidden states of every layer for a list of texts, and what extracting them cost."""

    features: object  # numpy float32 (num_layers + 1, num_texts, hidden): index 0 = embeddings, -1 = final (normed)
    time_s: float  # wall time of the forward passes
    num_tokens: int  # real (non-pad) tokens processed

    def __getitem__(self, layer: int):
        return self.features[layer]

    def __len__(self) -> int:
        return self.features.shape[0]


def layer_features(model, tokenizer, texts: list[str], *, batch_size: int = 32, seq_len: int = 64,
                   progress: bool = True) -> LayerFeatures:
    """One frozen forward pass per batch with ``output_hidden_states``: every layer, mean-pooled over real tokens.

    >>> feats = layer_features(model, tokenizer, ["Pip is hungry", "Book a flight"])  # doctest: +SKIP
    >>> feats.features.shape  # doctest: +SKIP
    (31, 2, 576)
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    texts = [str(t) for t in texts]
    if not texts:
        raise LabkitError("No texts to extract features from: pass a non-empty list, e.g. data['train']['text'].")
    if batch_size <= 0 or seq_len <= 0:
        raise LabkitError(f"batch_size and seq_len must be positive, got {batch_size} and {seq_len}.")
    decoder = decoder_of(model)
    device = next(decoder.parameters()).device
    pooled = []
    was_training = decoder.training
    decoder.eval()
    num_tokens, start = 0, time.perf_counter()
    batches = range(0, len(texts), batch_size)
    with torch.no_grad():
        for i in tqdm(batches, desc="features", unit="batch", disable=not progress):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                            max_length=seq_len).to(device)
            out = decoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            states = torch.stack(out.hidden_states).float()  # (layers + 1, batch, tokens, hidden)
            pooled.append(((states * mask).sum(2) / mask.sum(1).clamp(min=1)).cpu().numpy())
            num_tokens += int(enc["attention_mask"].sum())
    decoder.train(was_training)
    return LayerFeatures(np.concatenate(pooled, axis=1).astype(np.float32), time.perf_counter() - start, num_tokens)


def _stack(x):
    import numpy as np

    arr = np.asarray(x.features if isinstance(x, LayerFeatures) else x)
    if arr.ndim != 3:
        raise LabkitError(f"Expected features of shape (layers, examples, hidden), got shape {arr.shape}: pass the "
                          "result of layer_features(...).")
    return arr


def fit_probe(x, y, *, C: float = 1.0, max_iter: int = 2000):
    """A scikit-learn linear probe (standardise, then logistic regression) fitted on ``x`` (examples, hidden)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(x) != len(y):
        raise LabkitError(f"{len(x)} feature rows but {len(y)} labels: pass one label per example.")
    if len(set(y)) < 2:
        raise LabkitError("A probe needs at least two classes in its training labels: use a larger or stratified "
                          "sample.")
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(x, y)


def probe_layers(train, train_labels, eval_sets: dict, *, layers=None, C: float = 1.0, max_iter: int = 2000,
                 progress: bool = True):
    """Fit one linear probe per layer; return a DataFrame with accuracy on every eval set and each probe's cost.

    ``eval_sets`` maps a name to ``(features, labels)``; columns: layer, probe_params, fit_time_s,
    train_accuracy and ``<name>_accuracy`` per eval set.

    >>> probe_layers(train_feats, y_train, {"test": (test_feats, y_test)})  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    train = _stack(train)
    evals = {name: (_stack(x), list(y)) for name, (x, y) in eval_sets.items()}
    for name, (x, y) in evals.items():
        if x.shape[0] != train.shape[0] or x.shape[1] != len(y):
            raise LabkitError(f"Eval set {name!r} has shape {x.shape} with {len(y)} labels: extract it with the same "
                              "model as the training features, one label per example.")
    layers = range(train.shape[0]) if layers is None else list(layers)
    rows = []
    for layer in tqdm(layers, desc="probes", unit="layer", disable=not progress):
        start = time.perf_counter()
        probe = fit_probe(train[layer], list(train_labels), C=C, max_iter=max_iter)
        fit_time_s = time.perf_counter() - start
        clf = probe[-1]
        row = {"layer": layer, "probe_params": int(clf.coef_.size + clf.intercept_.size), "fit_time_s": fit_time_s,
               "train_accuracy": float(probe.score(train[layer], list(train_labels)))}
        for name, (x, y) in evals.items():
            row[f"{name}_accuracy"] = float(np.mean(probe.predict(x[layer]) == np.asarray(y)))
        rows.append(row)
    return pd.DataFrame(rows)


def _centered(x):
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise LabkitError(f"CKA compares two (examples, features) matrices with at least 2 rows; got shape {x.shape}.")
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x, y) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same examples: 1 = same up to rotation/scale.

    CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> round(linear_cka(x, 3 * x), 6)
    1.0
    """
    import numpy as np

    x, y = _centered(x), _centered(y)
    if x.shape[0] != y.shape[0]:
        raise LabkitError(f"CKA needs the same examples in both: {x.shape[0]} rows vs {y.shape[0]} rows.")
    hsic = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    if norm == 0:
        raise LabkitError("One representation is constant across examples, so CKA is undefined: use varied inputs.")
    return float(hsic / norm)


def cka_matrix(a, b):
    """Linear CKA of every layer of ``a`` against every layer of ``b`` (same examples): array (layers_a, layers_b)."""
    import numpy as np

    a, b = _stack(a), _stack(b)
    if a.shape[1] != b.shape[1]:
        raise LabkitError(f"CKA needs the same examples in both: {a.shape[1]} vs {b.shape[1]} examples.")

    def grams(stack):  # ||Y^T X||_F^2 = <X X^T, Y Y^T>: compare (examples x examples) Gram matrices
        out = []
        for layer in stack:
            xc = _centered(layer)
            gram = (xc @ xc.T).ravel()
            out.append(gram / np.linalg.norm(gram))
        return np.stack(out)

    return grams(a) @ grams(b).T


def freeze_lowest(model, k: int):
    """Freeze the embeddings and the lowest ``k`` blocks; everything above trains (k=0: all of it). Returns model.

    >>> model = freeze_lowest(model, 24)  # only the top 6 of 30 blocks, the final norm (and a head) train  # doctest: +SKIP
    """
    decoder = decoder_of(model)
    total = len(decoder.layers)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= total:
        raise LabkitError(f"k must be a whole number from 0 (train everything) to {total} (freeze every block), "
                          f"got {k!r}.")
    for p in model.parameters():
        p.requires_grad_(True)
    if k > 0:
        decoder.get_input_embeddings().requires_grad_(False)  # a tied output head is the same tensor
        for block in decoder.layers[:k]:
            block.requires_grad_(False)
    return model


def lora_on_layers(model, layers, *, rank: int = 8, alpha: float = 16.0,
                   target_modules=("q_proj", "v_proj")):
    """LoRA (through peft) on the given block indices only, e.g. ``range(24, 30)`` for the top six of 30.

    >>> model = lora_on_layers(model, range(24, 30), rank=8)  # doctest: +SKIP
    """
    from peft import get_peft_model

    from ...methods import check_targets
    from ...methods.lora import LoraSpec, lora_config

    total = num_layers(model)
    layers = sorted({int(i) for i in layers})
    if not layers or layers[0] < 0 or layers[-1] >= total:
        raise LabkitError(f"layers must be a non-empty set of block indices between 0 and {total - 1}, got {layers}.")
    spec = LoraSpec(rank=rank, alpha=alpha, target_modules=list(target_modules))
    check_targets(model, spec.target_modules, allow_all_linear=False)
    cfg = lora_config(spec)
    cfg.layers_to_transform = layers
    cfg.layers_pattern = "layers"
    return get_peft_model(model, cfg)


def tokens_per_word(tokenizer, text) -> float:
    """Tokens per whitespace-separated word of ``text`` (a list of words is joined with spaces); no special tokens.

    >>> tokens_per_word(tokenizer, "Feed the dragon")  # doctest: +SKIP
    1.0
    """
    if not isinstance(text, str):
        text = " ".join(str(w) for w in text)
    words = text.split()
    if not words:
        raise LabkitError("The text has no words: pass a sentence or a list of words.")
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) / len(words)


def token_table(tokenizer, words: list[str]):
    """How ``tokenizer`` splits each word as it appears mid-sentence (with a leading space): a DataFrame."""
    import pandas as pd

    rows = []
    for word in words:
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        rows.append({"word": word, "tokens": len(ids), "pieces": " | ".join(tokenizer.convert_ids_to_tokens(ids))})
    return pd.DataFrame(rows)


def add_domain_tokens(model, tokenizer, words: list[str], *, with_space: bool = True) -> int:
    """Add ``words`` to the vocabulary (``tokenizer.add_tokens``), grow the embeddings to match; return how many.

    A byte-level BPE writes a word mid-sentence as " word": added alone, "word" still costs a lone-space token
    before it, so ``with_space=True`` also adds the " word" form. The new embedding rows start near the mean of
    the old ones (transformers' ``mean_resizing``): they mean nothing to the model until they are trained.

    >>> add_domain_tokens(model, tokenizer, ["Quillothrax", "Vyrrathi"])  # doctest: +SKIP
    4
    """
    words = [str(w).strip() for w in words if str(w).strip()]
    if not words:
        raise LabkitError("No words to add: pass a list such as ['Quillothrax', 'Vyrrathi'].")
    added = tokenizer.add_tokens([f" {w}" for w in words] + words if with_space else words)
    model.resize_token_embeddings(len(tokenizer))
    return added


def general_knowledge(model, tokenizer, probe, *, limit: int | None = None, suffix: str = " Answer in a few words.",
                      max_new_tokens: int = 24):
    """Forgetting check on the general-knowledge probe: exact match of greedy answers and the loss on the answers.

    Exact match is lenient (ignores case and punctuation, the answer may sit inside a sentence), as the datasheet
    recommends for a chat model. ``model`` may be a causal LM, a peft model or the kit's classifier (its backbone
    answers; ``max_new_tokens`` caps each greedy answer). Returns ``{"exact_match": ..., "answer_loss": ...,
    "questions": n}``.

    >>> general_knowledge(model, tokenizer, lk.load_probe()["test"], limit=20)  # doctest: +SKIP
    """
    from ...batches import as_dataset
    from ...training import evaluate_exact_match, evaluate_loss

    lm = getattr(model, "backbone", model)
    data = as_dataset(probe)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    data = data.map(lambda row: {"question": row["question"] + suffix})
    em = evaluate_exact_match(lm, tokenizer, data, max_new_tokens=max_new_tokens, limit=len(data), ignore_case=True,
                              ignore_punctuation=True, contains=True)
    loss = evaluate_loss(lm, tokenizer, data, objective="sft", limit=len(data), seq_len=128)["eval_loss"]
    return {"exact_match": em.score, "answer_loss": loss, "questions": len(data)}
