"""Drift between a reference slice and a production slice: the population stability index (PSI) on labels and on
text lengths, and the shift of the mean embedding against a threshold, with an alert.

>>> report = drift_report(reference_rows, shifted_rows, ref_vectors, new_vectors)  # doctest: +SKIP
>>> report.alerts  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...core import LabkitError

# Common reading of the PSI (Siddiqi, "Credit Risk Scorecards", 2006): < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
PSI_ALERT = 0.25
PSI_WATCH = 0.10


def psi(expected_counts, actual_counts, *, eps: float = 1e-4) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), shares floored at ``eps``."""
    import numpy as np

    e, a = np.asarray(expected_counts, dtype=float), np.asarray(actual_counts, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or e.sum() <= 0 or a.sum() <= 0:
        raise LabkitError("psi needs two count vectors over the same bins, each with at least one item.")
    e, a = np.maximum(e / e.sum(), eps), np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def label_psi(reference_labels, new_labels, labels) -> float:
    """PSI of the label distribution."""
    import numpy as np

    labels = list(labels)
    index = {name: i for i, name in enumerate(labels)}
    count = lambda ys: np.bincount([index[y] for y in ys], minlength=len(labels))
    return psi(count(reference_labels), count(new_labels))


def length_psi(reference_lengths, new_lengths, *, n_bins: int = 10) -> float:
    """PSI of a numeric feature binned at the reference's deciles (the usual choice)."""
    import numpy as np

    ref, new = np.asarray(reference_lengths, dtype=float), np.asarray(new_lengths, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return psi(np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1),
               np.bincount(np.searchsorted(edges, new, side="right"), minlength=len(edges) + 1))


def embedding_shift(reference_vectors, new_vectors) -> float:
    """Distance between the two slices' mean embeddings, in units of the reference's typical spread (the RMS
    distance of a reference vector from its mean), so that one threshold serves any model's hidden size."""
    import numpy as np

    ref, new = np.asarray(reference_vectors, dtype=float), np.asarray(new_vectors, dtype=float)
    if ref.ndim != 2 or new.ndim != 2 or ref.shape[1] != new.shape[1]:
        raise LabkitError("embedding_shift needs two [n, hidden] arrays from the same model.")
    centre = ref.mean(0)
    spread = np.sqrt(((ref - centre) ** 2).sum(1).mean())
    return float(np.linalg.norm(new.mean(0) - centre) / max(spread, 1e-12))


def shift_threshold(reference_vectors, *, sample: int, quantile: float = 0.99, trials: int = 200, seed: int = 0):
    """The alert threshold for ``embedding_shift``: the ``quantile`` of the shift between two slices drawn from the
    reference's own items (with replacement: one as large as the reference, one of ``sample`` items). That is what
    chance alone gives when both slices come from the same population, the reference's sampling noise included and
    for any ``sample``, even one larger than the reference."""
    import numpy as np

    ref = np.asarray(reference_vectors, dtype=float)
    if not isinstance(sample, int) or sample < 1:
        raise LabkitError(f"sample is the new slice's number of items, a whole number >= 1; got {sample!r}.")
    rng = np.random.default_rng(seed)
    shifts = [embedding_shift(ref[rng.integers(len(ref), size=len(ref))], ref[rng.integers(len(ref), size=sample)])
              for _ in range(trials)]
    return float(np.quantile(shifts, quantile))


@dataclass
class DriftReport:
    """What the monitor found on one production slice."""

    table: object  # pandas DataFrame: signal, value, threshold, alert
    alerts: list = field(default_factory=list)  # one sentence per signal over its threshold

    def __repr__(self) -> str:
        return f"DriftReport({len(self.alerts)} alert(s))"


def drift_report(reference_rows, new_rows, reference_vectors, new_vectors, *, labels, tokenizer=None,
                 psi_alert: float = PSI_ALERT, seed: int = 0) -> DriftReport:
    """PSI on labels and lengths (tokens if a tokenizer is given, else characters) and the mean-embedding shift."""
    import pandas as pd

    reference_rows, new_rows = list(reference_rows), list(new_rows)
    if not reference_rows or not new_rows:
        raise LabkitError("Both slices need at least one row (text, label).")
    length = (lambda t: len(tokenizer(t)["input_ids"])) if tokenizer is not None else len
    threshold = shift_threshold(reference_vectors, sample=len(new_rows), seed=seed)
    values = {
        "label PSI": (label_psi([r["label"] for r in reference_rows], [r["label"] for r in new_rows], labels),
                      psi_alert),
        "length PSI": (length_psi([length(r["text"]) for r in reference_rows], [length(r["text"]) for r in new_rows]),
                       psi_alert),
        "mean-embedding shift": (embedding_shift(reference_vectors, new_vectors), threshold),
    }
    table = pd.DataFrame([{"signal": k, "value": v, "threshold": t, "alert": v > t} for k, (v, t) in values.items()])
    alerts = [f"ALERT: {r.signal} = {r.value:.3f} > {r.threshold:.3f}" for r in table.itertuples() if r.alert]
    return DriftReport(table=table, alerts=alerts)
