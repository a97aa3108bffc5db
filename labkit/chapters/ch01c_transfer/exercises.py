"""Lab 01c (section 1.3) exercises: read a probe curve, pick a freeze depth under a budget, linear CKA, read it, tokens per word."""

from __future__ import annotations

from ...grading import Exercise, NotAttempted, is_placeholder

# ---- q1: explain the probe curve ------------------------------------------------------------------------------------

PROBE_STATEMENTS = {
    "A": "The embedding layer already understands whole sentences, so the transformer blocks add nothing.",
    "B": "A mean of token embeddings is a bag of words, and these intents differ largely in their words, so layer 0 "
         "is already far above chance; the blocks add context on top.",
    "C": "Layer 0 is above chance only by luck: with 8 classes, a probe on random features would score about as well.",
    "D": "The probe reads the model's answer to the question, which the chat model was trained to give.",
}


def _check_statement(answer, *context):
    choice = str(answer).strip().upper()
    if choice not in PROBE_STATEMENTS:
        return f"answer with one letter among {', '.join(PROBE_STATEMENTS)} (a string such as 'A')."
    return {
        "A": "if that were so, the curve would be flat; look at how accuracy changes after layer 0.",
        "B": None,
        "C": "chance with 8 balanced classes is 1 in 8: compare the layer-0 accuracy with the chance line in the plot.",
        "D": "the probe never runs the model's generation: it reads a mean-pooled hidden state.",
    }[choice]


q1 = Exercise(
    "q1", lab="lab01c", title="Why a probe on layer 0 already works",
    checker=_check_statement,
    hints=("What is layer 0? It is the token embeddings, before any attention has mixed tokens.",
           ("Averaging the embeddings of a message's tokens is close to a bag of words. The datasheet's TF-IDF "
            "baseline is a bag of words too.")),
    solution_code="probe_explanation = 'B'  # a mean of token embeddings is a bag of words; intents differ by words",
)


# ---- q2: freeze depth under a budget --------------------------------------------------------------------------------

def _best_depth(sweep, budget_params, column="validation_accuracy"):
    within = sweep[sweep["trainable_params"] <= budget_params]
    if within.empty:
        return None
    best = within.sort_values([column, "trainable_params"], ascending=[False, True]).iloc[0]
    return int(best["k"])


def _check_depth(answer, sweep, budget_params):
    if is_placeholder(answer):
        raise NotAttempted
    if isinstance(answer, bool) or not float(answer).is_integer():
        return "answer with a whole number of frozen blocks k from the sweep table."
    k = int(answer)
    rows = sweep[sweep["k"] == k]
    if rows.empty:
        return "pick one of the k values that the sweep measured (the k column of the table)."
    expected = _best_depth(sweep, budget_params)
    if k == expected:
        return None
    row = rows.iloc[0]
    if row["trainable_params"] > budget_params:
        return "that depth trains more parameters than the budget allows; drop the rows over budget first."
    best_acc = sweep[sweep["k"] == expected].iloc[0]["validation_accuracy"]
    if row["validation_accuracy"] == best_acc:
        return "a tie on accuracy: take the cheaper of the tied depths (fewer trainable parameters)."
    if k == int(sweep[sweep["trainable_params"] <= budget_params]["k"].max()):
        return "that is the cheapest depth, not the most accurate one within the budget."
    return "another depth within the budget reaches a higher validation accuracy."


q2 = Exercise(
    "q2", lab="lab01c", title="Freeze depth under a parameter budget",
    checker=_check_depth,
    context=("sweep", "budget_params"),
    hints=("Keep only the rows whose trainable_params fit the budget.",
           "Among those, take the highest validation_accuracy; on a tie, the one with fewer trainable parameters.",
           "sweep[sweep.trainable_params <= budget_params].sort_values([...], ascending=[False, True])"),
    solution_code="within = sweep[sweep.trainable_params <= budget_params]\n"
                  "best = within.sort_values(['validation_accuracy', 'trainable_params'], ascending=[False, True])\n"
                  "chosen_k = int(best.iloc[0]['k'])",
)


# ---- q3: linear CKA -------------------------------------------------------------------------------------------------

def _cases():
    import numpy as np

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 7))
    rot, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    z = x @ rng.normal(size=(5, 4)) + 0.5 * rng.normal(size=(30, 4)) + 4.0
    return [("two unrelated random matrices (30 x 5 and 30 x 7)", x, y),
            ("x against a noisy linear map of x plus an offset", x, z),
            ("x against x rotated, scaled by 3 and shifted by 2", x, 3 * x @ rot + 2),
            ("two single columns", np.array([[1.0], [2.0], [3.0], [5.0]]), np.array([[1.0], [4.0], [9.0], [4.0]]))]


def _cka_variants():
    import numpy as np

    def parts(x, y, centre=True):
        x, y = np.asarray(x, float), np.asarray(y, float)
        if centre:
            x, y = x - x.mean(0), y - y.mean(0)
        return np.linalg.norm(y.T @ x), np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)

    def no_centre(x, y):
        h, a, b = parts(x, y, centre=False)
        return h ** 2 / (a * b)

    def not_squared(x, y):
        h, a, b = parts(x, y)
        return h / (a * b)

    def squared_norms(x, y):
        h, a, b = parts(x, y)
        return h ** 2 / (a ** 2 * b ** 2)

    def sqrt_missing(x, y):
        h, a, b = parts(x, y)
        return h / np.sqrt(a * b)

    return [(no_centre, "centre each matrix first (subtract the column means); CKA must ignore an offset."),
            (not_squared, "square the numerator: ||Yc^T Xc||_F^2."),
            (squared_norms, "the denominator uses ||Xc^T Xc||_F and ||Yc^T Yc||_F, not their squares."),
            (sqrt_missing, "square the numerator and do not take a square root of the denominator.")]


def _check_cka(func, *context):
    import math

    from .probes import linear_cka

    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    for what, x, y in _cases():
        try:
            got = func(x.copy(), y.copy())
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
            return f"on {what} your function raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        try:
            got = float(got)
        except (TypeError, ValueError):
            return f"return one number (a float), not a value of type {type(got).__name__}."
        if math.isclose(got, linear_cka(x, y), rel_tol=1e-6, abs_tol=1e-9):
            continue
        for wrong, message in _cka_variants():
            if math.isclose(got, float(wrong(x, y)), rel_tol=1e-6, abs_tol=1e-9):
                return message
        return f"on {what} your function returned {got:.4f}, which is not right yet."
    return None


q3 = Exercise(
    "q3", lab="lab01c", title="Linear CKA",
    checker=_check_cka,
    hints=("Centre both matrices: x = x - x.mean(axis=0), the same for y.",
           "Numerator: the squared Frobenius norm of y.T @ x (np.linalg.norm of a matrix is Frobenius).",
           "Denominator: np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)."),
    solution_code="def my_linear_cka(x, y):\n"
                  "    x = x - x.mean(axis=0)\n"
                  "    y = y - y.mean(axis=0)\n"
                  "    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))",
)


# ---- q4: which layer did fine-tuning change most? -------------------------------------------------------------------

def _most_changed(cka_diagonal):
    import numpy as np

    return int(np.argmin(np.asarray(cka_diagonal)))


def _check_changed(answer, cka_diagonal):
    import numpy as np

    if is_placeholder(answer):
        raise NotAttempted
    if isinstance(answer, bool) or not float(answer).is_integer():
        return "answer with a layer index (a whole number; 0 is the embeddings)."
    diag = np.asarray(cka_diagonal)
    k = int(answer)
    if not 0 <= k < len(diag):
        return f"layer indices run from 0 (embeddings) to {len(diag) - 1} (the final, normalised output)."
    if k == _most_changed(diag):
        return None
    if k == int(np.argmax(diag)):
        return "that layer changed least (highest CKA with its old self); look for the lowest similarity."
    if k - 1 == _most_changed(diag) or k + 1 == _most_changed(diag):
        return "off by one: the index is the position on the diagonal, with 0 for the embeddings."
    return "another layer has a lower CKA with its pretrained self."


q4 = Exercise(
    "q4", lab="lab01c", title="The layer fine-tuning changed most",
    checker=_check_changed,
    context=("cka_diagonal",),
    hints=("The diagonal of the heatmap compares each layer after fine-tuning with the same layer before.",
           "Lower CKA means more change: np.argmin gives the position of the smallest value."),
    solution_code="most_changed_layer = int(np.argmin(cka_diagonal))",
)


# ---- q5: tokens per word --------------------------------------------------------------------------------------------

TPW_TEXTS = ("The roostmaster saw scalebloom on the Quillothrax before the emberfast.",
             "Please send someone to feed my dragon today.",
             "Vyrrathi hoardlock pyrolith",
             "dragon")


def _tpw_variants(tokenizer):
    def ids(text, special=False):
        return tokenizer(text, add_special_tokens=special)["input_ids"]

    return [(lambda t: len(t.split()) / len(ids(t)), "upside down: divide the number of tokens by the number of words."),
            (lambda t: len(t) / len(ids(t)), "that counts characters per token; count words (text.split())."),
            (lambda t: sum(len(ids(w)) for w in t.split()) / len(t.split()),
             ("tokenize the whole text at once: a word mid-sentence carries its leading space, which changes "
              "its pieces.")),
            (lambda t: len(ids(t, special=True)) / len(t.split()),
             "leave out special tokens (add_special_tokens=False): they are not part of any word.")]


def _check_tpw(func, tokenizer):
    import math

    from .probes import tokens_per_word

    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    for text in TPW_TEXTS:
        try:
            got = func(tokenizer, text)
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001
            return f"on {text!r} your function raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        want = tokens_per_word(tokenizer, text)
        if isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, want, rel_tol=1e-9):
            continue
        for wrong, message in _tpw_variants(tokenizer):
            if isinstance(got, (int, float)) and math.isclose(got, wrong(text), rel_tol=1e-9):
                return message
        return f"on {text!r} your function returned {got!r}, which is not right yet."
    return None


q5 = Exercise(
    "q5", lab="lab01c", title="Tokens per word",
    checker=_check_tpw,
    context=("tokenizer",),
    hints=("Words: text.split(). Tokens: tokenizer(text, add_special_tokens=False)['input_ids'].",
           "Tokenize the whole text in one call, then divide the number of tokens by the number of words."),
    solution_code="def my_tokens_per_word(tokenizer, text):\n"
                  "    ids = tokenizer(text, add_special_tokens=False)['input_ids']\n"
                  "    return len(ids) / len(text.split())",
)
