"""Exact match after light normalisation, with any number of accepted answers per reference."""

import re
import string

import datasets
import evaluate

_DESCRIPTION = ("Share of predictions that equal one of their accepted answers after normalisation: surrounding "
                "whitespace stripped and inner runs of whitespace collapsed; optionally case and punctuation "
                "ignored, or a hit counted when the answer appears as whole words inside a longer prediction.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of answers: one string each, or a list of accepted strings each (answer + aliases).
    ignore_case: compare lower-cased text (default False).
    ignore_punctuation: drop ASCII punctuation before comparing (default False; keep it off for JSON answers).
    contains: count a hit when an accepted answer occurs as whole words inside the prediction, for chatty
        models that answer "The capital of France is Paris." (default False).
Returns:
    exact_match: a float between 0 and 1.
Example:
    >>> metric = load_metric("exact_match")
    >>> metric.compute(predictions=[" 3000 ", "Rome"], references=["3000", ["Paris", "paris"]])
    {'exact_match': 0.5}
"""
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")


def normalise(text, ignore_case=False, ignore_punctuation=False):
    """Strip, collapse whitespace and optionally lower-case and drop punctuation."""
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = _PUNCTUATION.sub(" ", text)
    return " ".join(text.split())


def is_hit(prediction, answers, ignore_case=False, ignore_punctuation=False, contains=False):
    """True when ``prediction`` matches one of ``answers`` under the chosen normalisation."""
    pred = normalise(prediction, ignore_case, ignore_punctuation)
    for answer in answers:
        ref = normalise(answer, ignore_case, ignore_punctuation)
        if pred == ref or (contains and ref and re.search(r"(?<!\w)" + re.escape(ref) + r"(?!\w)", pred)):
            return True
    return False


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    """Exact match with normalisation options and aliases."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))})],
        )

    def _compute(self, predictions, references, ignore_case=False, ignore_punctuation=False, contains=False):
        hits = [is_hit(pred, [ref] if isinstance(ref, str) else ref, ignore_case, ignore_punctuation, contains)
                for pred, ref in zip(predictions, references)]
        return {"exact_match": sum(hits) / len(hits) if hits else 0.0}
