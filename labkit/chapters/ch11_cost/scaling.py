"""Scaling laws in miniature: an IsoFLOP sweep of tiny Llamas trained from scratch on the kit's corpus.

For each compute budget C (FLOPs), models of several sizes N each train on D = C / (6·N) tokens; the loss is
smallest at one size. Fitting a parabola in log N per budget gives N_opt(C), and a line through log N_opt against
log C gives the exponent a of N_opt ∝ C^a. Chinchilla (Hoffmann et al. 2022, "Training Compute-Optimal Large
Language Models", arXiv:2203.15556, Table 2) finds a ≈ 0.50 (approach 2, IsoFLOP profiles: 0.49).

>>> table = isoflop_sweep([1e10, 3e10], SIZES[:3])  # doctest: +SKIP
"""

from __future__ import annotations

import math

from ...core import LabkitError, pick
from ...meters import matmul_params

CHINCHILLA_A = 0.49  # Hoffmann et al. 2022, Table 2, approach 2 (IsoFLOP profiles)
CHINCHILLA_TOKENS_PER_PARAM = 20  # the rule of thumb that follows from their fits (D_opt ≈ 20·N_opt)
SIZES = ((16, 1), (32, 2), (64, 2), (96, 3), (128, 4))  # (hidden size, layers) of the tiny Llamas
VOCAB = 512  # a small BPE vocabulary trained on the corpus, so the embedding does not dominate tiny models
SEQ_LEN, BATCH = 64, 8
LR = 3e-3  # from scratch, tiny models: a larger lr than fine-tuning; warmup then cosine


def corpus_tokenizer(texts, vocab_size: int = VOCAB):
    """A byte-level BPE tokenizer trained on ``texts`` with the tokenizers library, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise LabkitError(f"vocab_size={vocab_size} leaves no room for merges over the 256 bytes: use 512.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def tiny_llama_config(hidden: int, layers: int, vocab_size: int = VOCAB):
    """A LlamaConfig of the given width and depth (head size 16, MLP 4x wide, tied embeddings)."""
    from transformers import LlamaConfig

    if hidden % 16 or hidden <= 0 or layers <= 0:
        raise LabkitError(f"hidden must be a positive multiple of 16 and layers positive, got {hidden}, {layers}.")
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden,
                       num_hidden_layers=layers, num_attention_heads=hidden // 16, num_key_value_heads=hidden // 16,
                       max_position_embeddings=SEQ_LEN, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                       pad_token_id=0)


def size_for(n_target: float, vocab_size: int = VOCAB) -> tuple[int, int]:
    """The (hidden, layers) on the SIZES ladder's shape (layers ≈ hidden / 32) whose N is nearest ``n_target``."""
    options = [(h, max(1, round(h / 32))) for h in range(16, 513, 16)]
    return min(options, key=lambda s: abs(math.log(matmul_params(tiny_llama_config(*s, vocab_size)) / n_target)))


def isoflop_sweep(budgets, sizes=SIZES, *, texts=None, eval_texts=None, tokenizer=None, label: str = "isoflop"):
    """Train each size at each budget (D = C / 6N tokens); a table of C, N, D, steps, eval loss and seconds."""
    import pandas as pd
    import torch
    from datasets import Dataset
    from transformers import LlamaForCausalLM

    from ...data import load_corpus
    from ...training import evaluate_loss, train

    budgets = list(budgets)
    if not budgets or any(not c > 0 for c in budgets):
        raise LabkitError(f"Compute budgets are positive FLOP counts, got {budgets!r}.")
    if texts is None or eval_texts is None:
        corpus = load_corpus()
        texts, eval_texts = corpus["train"]["text"], corpus["validation"]["text"][:pick(32, 200)]
    tokenizer = tokenizer or corpus_tokenizer(texts)
    lengths = [min(len(ids), SEQ_LEN) for ids in tokenizer(list(texts[:200]))["input_ids"]]
    tokens_per_step = BATCH * sum(lengths) / len(lengths)
    train_set, eval_set = Dataset.from_dict({"text": list(texts)}), Dataset.from_dict({"text": list(eval_texts)})
    rows = []
    for budget in budgets:
        for hidden, layers in sizes:
            config = tiny_llama_config(hidden, layers, len(tokenizer))
            n = matmul_params(config)
            steps = round(budget / (6 * n) / tokens_per_step)
            if steps < 4:  # too small a budget for this size to learn anything: leave the point out
                continue
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
            result = train(model, tokenizer, train_set, num_steps=steps, batch_size=BATCH, seq_len=SEQ_LEN, lr=LR,
                           warmup_steps=max(1, steps // 10), schedule="cosine", progress=False, live_plot=False,
                           label=f"{label} C={budget:.0e} N={n}")
            loss = evaluate_loss(model, tokenizer, eval_set, seq_len=SEQ_LEN, limit=len(eval_set))["eval_loss"]
            tokens = result.tokens_per_s * result.time_s
            rows.append({"budget": budget, "hidden": hidden, "layers": layers, "params": n, "tokens": tokens,
                         "flops": 6 * n * tokens, "steps": steps, "eval_loss": loss, "time_s": result.time_s})
    if not rows:
        raise LabkitError("Every budget was too small for every size (under 4 steps): raise the budgets.")
    return pd.DataFrame(rows)


def fit_isoflop(table):
    """Per budget, the N at the minimum of a parabola in log10 N (the best measured N where the parabola opens
    down or has under 3 points), and the exponent a of N_opt ∝ C^a fitted across budgets (None with one budget)."""
    import numpy as np
    import pandas as pd

    optima = []
    for budget, part in table.groupby("budget"):
        x, y = np.log10(part["params"].to_numpy(float)), part["eval_loss"].to_numpy(float)
        best = float(10 ** x[np.argmin(y)])
        n_opt, fitted = best, False
        if len(part) >= 3:
            a2, a1, _ = np.polyfit(x, y, 2)
            vertex = -a1 / (2 * a2) if a2 > 0 else None
            if vertex is not None and x.min() <= vertex <= x.max():  # a minimum inside the measured range
                n_opt, fitted = float(10 ** vertex), True
        optima.append({"budget": budget, "n_opt": n_opt, "min_loss": float(y.min()), "from_parabola": fitted})
    optima = pd.DataFrame(optima)
    exponent = None
    if len(optima) >= 2:
        exponent = float(np.polyfit(np.log10(optima["budget"]), np.log10(optima["n_opt"]), 1)[0])
    return optima, exponent


def predict_optimum(optima, budget: float) -> tuple[float, float]:
    """(N_opt, loss) extrapolated to ``budget`` by power laws through the optima (needs 2 budgets or more)."""
    import numpy as np

    if len(optima) < 2:
        raise LabkitError("Extrapolating needs optima at 2 budgets or more: sweep more budgets.")
    if not budget > 0:
        raise LabkitError(f"The budget is a positive FLOP count, got {budget!r}.")
    log_c = np.log10(optima["budget"])
    n_fit = np.polyfit(log_c, np.log10(optima["n_opt"]), 1)
    loss_fit = np.polyfit(log_c, np.log10(optima["min_loss"]), 1)
    return float(10 ** np.polyval(n_fit, math.log10(budget))), float(10 ** np.polyval(loss_fit, math.log10(budget)))


def chinchilla_optimal(flops: float) -> tuple[float, float]:
    """(N, D) with C = 6·N·D and D = 20·N: the rule-of-thumb compute-optimal split of ``flops``."""
    if not flops > 0:
        raise LabkitError(f"The budget is a positive FLOP count, got {flops!r}.")
    n = math.sqrt(flops / (6 * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


def plot_isoflop(table, optima):
    """Loss against parameters, one curve per budget, with each budget's optimum marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for budget, part in table.groupby("budget"):
        part = part.sort_values("params")
        fig.add_trace(go.Scatter(x=part["params"], y=part["eval_loss"], mode="lines+markers", name=f"C = {budget:.0e}"))
    fig.add_trace(go.Scatter(x=optima["n_opt"], y=optima["min_loss"], mode="markers", name="N_opt",
                             marker={"symbol": "star", "size": 14, "color": "black"}))
    fig.update_layout(height=380, title="IsoFLOP profiles: tiny Llamas on the kit's corpus",
                      xaxis={"type": "log", "title": "parameters N (matmul)"}, yaxis={"title": "validation loss"})
    return fig
