"""Perplexity from losses the model already computed: exp of the token-weighted mean cross-entropy."""

import math

import datasets
import evaluate

from labkit.core import LabkitError

_DESCRIPTION = ("Perplexity = exp(total negative log-likelihood / total tokens). Give it the mean loss of each "
                "batch (what a causal LM returns as `outputs.loss`, natural log) with the number of predicted "
                "tokens in that batch; for per-token losses pass num_tokens=1 each. Weighting by tokens makes the "
                "result independent of how the text was cut into batches.")
_KWARGS_DESCRIPTION = """
Args:
    losses: mean cross-entropy (nats per token) of each batch or sequence.
    num_tokens: number of predicted tokens behind each loss (labels that are not the ignore index).
Returns:
    perplexity: exp(mean_loss); mean_loss: token-weighted mean loss; num_tokens: total tokens.
Example:
    >>> metric = load_metric("perplexity")
    >>> metric.compute(losses=[2.0, 4.0], num_tokens=[30, 10])
    {'perplexity': 12.182493960703473, 'mean_loss': 2.5, 'num_tokens': 40}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    """Token-weighted perplexity from batch losses."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"losses": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}),
        )

    def _compute(self, losses, num_tokens):
        total = sum(num_tokens)
        if total <= 0 or any(n < 0 for n in num_tokens):
            raise LabkitError("num_tokens must be non-negative and add up to more than 0: pass the number of "
                             "predicted tokens behind each loss.")
        if not all(math.isfinite(loss) for loss in losses):
            raise LabkitError("Every loss must be a finite number: a nan or inf loss means training diverged.")
        mean_loss = sum(loss * n for loss, n in zip(losses, num_tokens)) / total
        return {"perplexity": math.exp(mean_loss), "mean_loss": mean_loss, "num_tokens": int(total)}
