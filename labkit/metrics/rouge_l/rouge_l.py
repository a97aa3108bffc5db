"""ROUGE-L: the longest common subsequence of words, from Google's rouge-score package."""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = ("ROUGE-L (Lin 2004) computed with the rouge-score package: the longest common subsequence (LCS) of "
                "the prediction's and the reference's words gives precision = LCS / prediction words and recall = "
                "LCS / reference words; the F-measure of the two is the score. rouge-score lower-cases the text and "
                "keeps only letters and digits as words (needs no NLTK data, even with the Porter stemmer). With "
                "several references the best one counts; the score is the mean over examples.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of references: one string each, or a list of strings each.
    use_stemmer: strip English suffixes with the Porter stemmer before matching (default False).
Returns:
    rougeL: mean F-measure, rougeL_precision, rougeL_recall: means over examples, all between 0 and 1.
Example:
    >>> metric = load_metric("rouge_l")
    >>> metric.compute(predictions=["the cat sat on the mat"], references=["the cat was on the mat"])["rougeL"]
    0.8333333333333334
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RougeL(evaluate.Metric):
    """ROUGE-L F-measure (LCS) via rouge-score."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))})],
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, use_stemmer=False):
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        scores = [scorer.score_multi([ref] if isinstance(ref, str) else list(ref), pred)["rougeL"]
                  for pred, ref in zip(predictions, references)]
        n = max(len(scores), 1)
        return {"rougeL": sum(s.fmeasure for s in scores) / n,
                "rougeL_precision": sum(s.precision for s in scores) / n,
                "rougeL_recall": sum(s.recall for s in scores) / n}
