"""The training loop (``train``, re-exported as ``lk.train``), its ``TrainConfig``, and evaluation helpers.

>>> import labkit as lk
>>> result = lk.train(model, tokenizer, lk.load_instructions()["train"], num_steps=20)  # doctest: +SKIP
>>> cfg = lk.training.TrainConfig(num_steps=20, schedule="cosine", warmup_steps=2)
>>> result = lk.train(model, tokenizer, lk.load_instructions()["train"], config=cfg)  # doctest: +SKIP
>>> lk.training.evaluate_loss(model, tokenizer, lk.load_corpus()["validation"])  # doctest: +SKIP
"""

from __future__ import annotations

from .config import TrainConfig
from .evaluate import ExactMatch, embed_texts, evaluate_exact_match, evaluate_loss, generate_answers
from .loop import TrainResult, train

__all__ = ["ExactMatch", "TrainConfig", "TrainResult", "embed_texts", "evaluate_exact_match", "evaluate_loss", "generate_answers",
           "train"]
