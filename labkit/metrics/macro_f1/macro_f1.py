"""Macro-F1: the F1 score of each class, averaged with equal weight per class."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = ("Macro-averaged F1 (scikit-learn's f1_score with average='macro'): every class counts the same, "
                "so a model that ignores a rare class is punished even when its accuracy looks good.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels, all ints (class ids) or all strings (label names).
    references: true labels, same type as predictions.
    labels: optional list of all class labels, so classes never predicted nor present still count (as 0).
Returns:
    macro_f1: a float between 0 and 1.
Example:
    >>> metric = load_metric("macro_f1")
    >>> metric.compute(predictions=[0, 0, 1, 1], references=[0, 1, 1, 1])
    {'macro_f1': 0.7333333333333334}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    """Macro-averaged F1 over class ids or label names."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("int64"),
                                         "references": datasets.Value("int64")})],
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, labels=None):
        score = f1_score(references, predictions, labels=labels, average="macro", zero_division=0)
        return {"macro_f1": float(score)}
