"""Accuracy: the fraction of predictions equal to their reference (class ids or label names)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Accuracy = correct predictions / all predictions, computed with scikit-learn's accuracy_score."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels, all ints (class ids) or all strings (label names).
    references: true labels, same type as predictions.
    sample_weight: optional weight per example.
Returns:
    accuracy: a float between 0 and 1.
Example:
    >>> metric = load_metric("accuracy")
    >>> metric.compute(predictions=["feed", "heal"], references=["feed", "train"])
    {'accuracy': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Accuracy over class ids or label names."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("int64"),
                                         "references": datasets.Value("int64")})],
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, sample_weight=None):
        return {"accuracy": float(accuracy_score(references, predictions, sample_weight=sample_weight))}
