"""Local ``evaluate`` metric modules that load offline: accuracy, macro_f1, exact_match, perplexity, token_f1,
rouge_l (rouge-score) and bleu (sacrebleu)."""

from __future__ import annotations

from pathlib import Path

from ..core import LabkitError

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "macro_f1", "exact_match", "perplexity", "token_f1", "rouge_l", "bleu")


def load_metric(name: str):
    """Load one of the kit's metrics as an ``evaluate`` module, without contacting the hub.

    >>> metric = load_metric("accuracy")  # doctest: +SKIP
    >>> metric.compute(predictions=[1, 0], references=[1, 1])  # doctest: +SKIP
    {'accuracy': 0.5}
    """
    if name not in METRIC_NAMES:
        raise LabkitError(f"Unknown metric {name!r}: use one of {', '.join(METRIC_NAMES)}.")
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


__all__ = ["METRIC_NAMES", "load_metric"]
