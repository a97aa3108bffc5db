"""BLEU from the sacrebleu package: clipped n-gram precision (n = 1..4) times a brevity penalty, over a corpus."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = ("Corpus BLEU (Papineni et al. 2002) computed with sacrebleu (Post 2018): the geometric mean of the "
                "clipped 1- to 4-gram precisions of all predictions together, times a brevity penalty for output "
                "shorter than the references. sacrebleu reports 0-100; this module divides by 100 so that it reads "
                "like the kit's other metrics. Without smoothing, a corpus with no matching 4-gram scores 0; the "
                "default smooth_method='exp' is sacrebleu's own default.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated strings.
    references: list of references: one string each, or a list of strings each (any number per prediction).
    tokenize: sacrebleu tokenizer, default "13a" (the WMT standard).
    lowercase: compare lower-cased text (default False).
    smooth_method: "exp" (default), "none", "floor" or "add-k".
Returns:
    bleu: between 0 and 1; precisions: the 1- to 4-gram precisions (0-1); brevity_penalty; sys_len, ref_len (tokens).
Example:
    >>> metric = load_metric("bleu")
    >>> metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])["bleu"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    """Corpus BLEU via sacrebleu, scaled to 0-1."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))})],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp"):
        refs = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
        width = max((len(r) for r in refs), default=1)
        # sacrebleu takes one stream per reference position; repeating a reference changes nothing in BLEU
        # (clipping uses the largest count over references, the brevity penalty the closest length)
        streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
        result = sacrebleu.corpus_bleu(predictions, streams, tokenize=tokenize, lowercase=lowercase,
                                       smooth_method=smooth_method)
        return {"bleu": result.score / 100, "precisions": [p / 100 for p in result.precisions],
                "brevity_penalty": result.bp, "sys_len": result.sys_len, "ref_len": result.ref_len}
