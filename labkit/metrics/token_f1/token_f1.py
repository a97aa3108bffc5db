"""Token F1 (SQuAD style): the overlap of answer words, partial credit where exact match gives none."""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = ("Token F1 as in the SQuAD evaluation script (Rajpurkar et al. 2016): both texts are lower-cased, "
                "ASCII punctuation and the articles a/an/the are dropped, and the rest is split on whitespace; F1 is "
                "the harmonic mean of the precision and recall of the shared words (counted as a multiset). With "
                "several accepted answers the best one counts. The score is the mean over examples.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of answers: one string each, or a list of accepted strings each (answer + aliases).
Returns:
    token_f1: a float between 0 and 1.
Example:
    >>> metric = load_metric("token_f1")
    >>> metric.compute(predictions=["the dragon Pip"], references=["Pip the red dragon"])
    {'token_f1': 0.8}
"""
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def words(text):
    """The words token F1 compares: lower-cased, punctuation and articles removed."""
    return _ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).split()


def f1(prediction, answer):
    """Token F1 of one prediction against one answer (1.0 when both have no words, 0.0 when only one has none)."""
    pred, ref = words(prediction), words(answer)
    if not pred or not ref:
        return float(pred == ref)
    shared = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(pred), shared / len(ref)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenF1(evaluate.Metric):
    """SQuAD-style token F1 with aliases."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))})],
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        scores = [max(f1(pred, answer) for answer in ([ref] if isinstance(ref, str) else ref))
                  for pred, ref in zip(predictions, references)]
        return {"token_f1": sum(scores) / len(scores) if scores else 0.0}
