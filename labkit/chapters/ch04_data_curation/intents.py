"""The intent classifier of lab 04 under label noise, and active learning with it.

The classifier is a linear probe: a softmax head on SmolLM2's mean-pooled last hidden state, the features computed
once (the model is frozen, so every epoch of every run would compute the same ones). That makes dozens of runs
affordable on a CPU: the noise sweep, the repair, and every round of active learning.

>>> x = embed(model, tokenizer, intents["train"]["text"])  # doctest: +SKIP
>>> noisy, flipped = flip_labels(y, 0.3, num_classes=8, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from ...core import LabkitError

STRATEGIES = ("uncertainty", "random")


def embed(model, tokenizer, texts, *, batch_size: int = 32, seq_len: int = 64):
    """Mean-pooled last hidden states of ``texts`` (numpy, [n, hidden]): the probe's features."""
    from ...training import embed_texts

    return embed_texts(model, tokenizer, texts, batch_size=batch_size, seq_len=seq_len)


def flip_labels(labels, rate: float, *, num_classes: int, seed: int = 0):
    """(noisy labels, flipped mask): exactly round(rate * n) labels moved to another class, chosen with ``seed``."""
    import numpy as np

    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise LabkitError(f"rate must be a share of labels in [0, 1) (e.g. 0.1 for 10% noise), got {rate!r}.")
    rng = np.random.default_rng(seed)
    y = np.asarray(labels).copy()
    flipped = np.zeros(len(y), dtype=bool)
    chosen = rng.choice(len(y), size=round(rate * len(y)), replace=False)
    y[chosen] = (y[chosen] + rng.integers(1, num_classes, size=len(chosen))) % num_classes
    flipped[chosen] = True
    return y, flipped


class Probe:
    """A softmax head on standardised features, trained full-batch with AdamW."""

    def __init__(self, num_classes: int, *, epochs: int = 150, lr: float = 0.01, weight_decay: float = 0.01,
                 seed: int = 0):
        self.num_classes, self.epochs, self.lr, self.weight_decay, self.seed = num_classes, epochs, lr, weight_decay, seed

    def fit(self, x, y) -> Probe:
        import numpy as np
        import torch

        if len(x) == 0:
            raise LabkitError("No training examples for the probe: label a few first.")
        x = np.asarray(x, dtype=np.float32)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        torch.manual_seed(self.seed)
        self.head = torch.nn.Linear(x.shape[1], self.num_classes)
        opt = torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = self._x(x), torch.as_tensor(np.asarray(y), dtype=torch.long)
        for _ in range(self.epochs):
            loss = torch.nn.functional.cross_entropy(self.head(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    def _x(self, x):
        import numpy as np
        import torch

        return torch.as_tensor((np.asarray(x, dtype=np.float32) - self.mean) / self.std)

    def proba(self, x):
        import torch

        with torch.no_grad():
            return torch.softmax(self.head(self._x(x)), -1).numpy()

    def losses(self, x, y):
        """Per-example cross-entropy against labels ``y``."""
        import numpy as np

        p = self.proba(x)
        return -np.log(p[np.arange(len(p)), np.asarray(y)] + 1e-12)

    def accuracy(self, x, y) -> float:
        import numpy as np

        return float((self.proba(x).argmax(1) == np.asarray(y)).mean())


def noise_sweep(x_train, y_train, x_test, y_test, rates, *, num_classes: int, seed: int = 0):
    """Test accuracy of a probe trained at each label-noise rate. A DataFrame: rate, flipped, accuracy."""
    import pandas as pd

    rows = []
    for rate in rates:
        noisy, flipped = flip_labels(y_train, rate, num_classes=num_classes, seed=seed)
        probe = Probe(num_classes, seed=seed).fit(x_train, noisy)
        rows.append({"rate": rate, "flipped": int(flipped.sum()), "accuracy": probe.accuracy(x_test, y_test)})
    return pd.DataFrame(rows)


def find_noisy(x, noisy, *, num_classes: int, budget: int, epochs: int = 40, seed: int = 0):
    """Indices of the ``budget`` training examples with the highest training loss after a short fit (a network
    fits clean labels before it memorises noisy ones: the small-loss criterion, Arpit et al. 2017, Han et al. 2018).
    Returns (flagged indices, the probe's predicted labels)."""
    import numpy as np

    if not isinstance(budget, int) or budget < 0:
        raise LabkitError(f"budget must be a whole number of examples to flag (>= 0), got {budget!r}.")
    probe = Probe(num_classes, epochs=epochs, seed=seed).fit(x, noisy)
    losses = probe.losses(x, noisy)
    return np.argsort(-losses)[:budget], probe.proba(x).argmax(1)


def precision_recall(flagged, truth_mask) -> dict:
    """Precision and recall of flagged indices against a boolean mask of the true positives."""
    flagged = {int(i) for i in flagged}
    planted = {i for i, t in enumerate(truth_mask) if t}
    hits = len(flagged & planted)
    return {"flagged": len(flagged), "planted": len(planted),
            "precision": hits / len(flagged) if flagged else 1.0, "recall": hits / len(planted) if planted else 1.0}


def repair(x, noisy, flagged, predicted, how: str):
    """(x, y) after dropping the flagged examples or relabelling them with the probe's prediction."""
    import numpy as np

    if how not in ("drop", "relabel"):
        raise LabkitError(f"how must be 'drop' or 'relabel', got {how!r}.")
    y = np.asarray(noisy).copy()
    idx = np.asarray(flagged, dtype=int)
    if how == "relabel":
        y[idx] = np.asarray(predicted)[idx]
        return np.asarray(x), y
    keep = np.ones(len(y), dtype=bool)
    keep[idx] = False
    return np.asarray(x)[keep], y[keep]


def active_learning(x_pool, y_pool, x_test, y_test, *, num_classes: int, start: int, step: int, rounds: int,
                    strategy: str, seed: int = 0):
    """Accuracy against labelled examples: start with ``start`` random labels, then each round label ``step`` more,
    the least confident first (``uncertainty``: 1 - the top probability) or at random. A DataFrame."""
    import numpy as np
    import pandas as pd

    if strategy not in STRATEGIES:
        raise LabkitError(f"Unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}.")
    if start < 1 or step < 1 or start + step * rounds > len(y_pool):
        raise LabkitError(f"start={start} + step={step} x rounds={rounds} must fit in the pool of {len(y_pool)} and "
                          "start and step must be positive.")
    rng = np.random.default_rng(seed)
    y_pool = np.asarray(y_pool)
    labelled = list(rng.choice(len(y_pool), size=start, replace=False))
    rows = []
    for r in range(rounds + 1):
        probe = Probe(num_classes, seed=seed).fit(x_pool[labelled], y_pool[labelled])
        rows.append({"strategy": strategy, "labelled": len(labelled), "accuracy": probe.accuracy(x_test, y_test)})
        if r == rounds:
            break
        rest = np.setdiff1d(np.arange(len(y_pool)), labelled)
        if strategy == "uncertainty":
            confidence = probe.proba(x_pool[rest]).max(1)
            labelled += list(rest[np.argsort(confidence)[:step]])
        else:
            labelled += list(rng.choice(rest, size=step, replace=False))
    return pd.DataFrame(rows)
