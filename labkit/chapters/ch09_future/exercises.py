"""Lab 09 exercises: top-k routing with renormalised gates, the Switch load-balancing loss, backward transfer from a
forgetting matrix, and TIES's sign election with the disjoint mean."""

from __future__ import annotations

import math

from ...grading import Args, Exercise, expect_function

# ---- q1: top-k routing with renormalised gates ----------------------------------------------------------------------


def top_k_gates(logits, k):
    """Gate per expert: softmax over all experts, keep the k largest, renormalise them to sum to 1, zero the rest."""
    exp = [math.exp(x - max(logits)) for x in logits]
    probs = [e / sum(exp) for e in exp]
    chosen = sorted(range(len(probs)), key=lambda i: -probs[i])[:k]
    kept = sum(probs[i] for i in chosen)
    return [probs[i] / kept if i in chosen else 0.0 for i in range(len(probs))]


def _softmax(xs):
    exp = [math.exp(x - max(xs)) for x in xs]
    return [e / sum(exp) for e in exp]


def _no_renorm(logits, k):
    probs = _softmax(logits)
    chosen = sorted(range(len(probs)), key=lambda i: -probs[i])[:k]
    return [p if i in chosen else 0.0 for i, p in enumerate(probs)]


def _lowest(logits, k):
    probs = _softmax(logits)
    chosen = sorted(range(len(probs)), key=lambda i: probs[i])[:k]
    kept = sum(probs[i] for i in chosen)
    return [probs[i] / kept if i in chosen else 0.0 for i in range(len(probs))]


GATE_CASES = [Args([1.0, 3.0, 0.5, 2.0], 2), Args([0.2, -1.0, 0.7], 1), Args([2.0, 1.0, 0.0, -1.0, 0.5, 1.5], 3),
              Args([0.1, 0.4], 2)]

q1 = Exercise(
    "q1", lab="lab09", title="Top-k routing with renormalised gates",
    checker=expect_function(top_k_gates, GATE_CASES, rel_tol=1e-6, abs_tol=1e-9, mistakes=[
        (_no_renorm, "the kept gates should sum to 1: divide each by the sum of the k you kept (Mixtral does)."),
        (lambda logits, k: _softmax(logits), "that keeps every expert: zero all but the k largest gates."),
        (_lowest, "keep the k LARGEST probabilities, not the smallest."),
    ]),
    hints=("Softmax the logits into probabilities first.",
           "Find the k experts with the largest probabilities; every other gate is 0.",
           "Divide the kept probabilities by their sum so that they add up to 1."),
    solution_code="def my_top_k_gates(logits, k):\n"
                  "    exp = [math.exp(x - max(logits)) for x in logits]\n"
                  "    probs = [e / sum(exp) for e in exp]\n"
                  "    chosen = sorted(range(len(probs)), key=lambda i: -probs[i])[:k]\n"
                  "    kept = sum(probs[i] for i in chosen)\n"
                  "    return [probs[i] / kept if i in chosen else 0.0 for i in range(len(probs))]",
)

# ---- q2: the Switch load-balancing loss -----------------------------------------------------------------------------


def switch_loss(expert_index, router_probs, num_experts):
    """N * sum_i f_i * P_i: f_i the share of tokens sent to expert i, P_i its mean router probability."""
    tokens = len(expert_index)
    f = [sum(1 for e in expert_index if e == i) / tokens for i in range(num_experts)]
    p = [sum(row[i] for row in router_probs) / tokens for i in range(num_experts)]
    return num_experts * sum(fi * pi for fi, pi in zip(f, p))


SWITCH_CASES = [
    Args([0, 1, 1, 2], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], 3),
    Args([0, 0, 0, 0], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.95, 0.05]], 2),
    Args([1, 0], [[0.5, 0.5], [0.5, 0.5]], 2),
    Args([3, 1, 2, 0, 3], [[0.1, 0.2, 0.3, 0.4], [0.1, 0.6, 0.2, 0.1], [0.2, 0.2, 0.5, 0.1], [0.7, 0.1, 0.1, 0.1],
                           [0.05, 0.05, 0.1, 0.8]], 4),
]

q2 = Exercise(
    "q2", lab="lab09", title="The Switch load-balancing loss",
    checker=expect_function(switch_loss, SWITCH_CASES, rel_tol=1e-9, mistakes=[
        (lambda idx, probs, n: switch_loss(idx, probs, n) / n, ("multiply by the number of experts N, so that a "
                                                               "perfectly balanced router scores 1 for any N.")),
        (lambda idx, probs, n: n * sum((sum(1 for e in idx if e == i) / len(idx)) ** 2 for i in range(n)),
         "use the router's mean probability P_i as the second factor, not f_i again: f is not differentiable."),
        (lambda idx, probs, n: n * sum(sum(1 for e in idx if e == i) * sum(r[i] for r in probs) for i in range(n)),
         "f_i and P_i are means over the tokens: divide the counts and the sums by the number of tokens."),
    ]),
    hints=("f_i: the share of tokens whose chosen expert is i.",
           "P_i: the router's probability for expert i, averaged over the tokens.",
           "loss = N * sum over experts of f_i * P_i (Fedus et al. 2021, eq. 4)."),
    solution_code="def my_switch_loss(expert_index, router_probs, num_experts):\n"
                  "    t = len(expert_index)\n"
                  "    f = [sum(e == i for e in expert_index) / t for i in range(num_experts)]\n"
                  "    p = [sum(row[i] for row in router_probs) / t for i in range(num_experts)]\n"
                  "    return num_experts * sum(fi * pi for fi, pi in zip(f, p))",
)

# ---- q3: backward transfer ------------------------------------------------------------------------------------------


def bwt(matrix):
    """Mean over the earlier tasks j of R[T-1][j] - R[j][j] (Lopez-Paz and Ranzato 2017)."""
    t = len(matrix)
    return sum(matrix[t - 1][j] - matrix[j][j] for j in range(t - 1)) / (t - 1)


BWT_CASES = [Args([[0.8, 0.1, 0.2], [0.5, 0.9, 0.1], [0.4, 0.6, 0.7]]), Args([[0.5, 0.0], [0.6, 0.9]]),
             Args([[0.9, 0.2, 0.1, 0.0], [0.7, 0.8, 0.2, 0.1], [0.6, 0.5, 0.9, 0.3], [0.7, 0.4, 0.6, 0.95]])]

q3 = Exercise(
    "q3", lab="lab09", title="Backward transfer from a forgetting matrix",
    checker=expect_function(bwt, BWT_CASES, rel_tol=1e-9, abs_tol=1e-12, mistakes=[
        (lambda m: sum(m[len(m) - 1][j] - m[j][j] for j in range(len(m))) / len(m),
         "leave the last task out: it was just learned, so it has had no chance to be forgotten."),
        (lambda m: -bwt(m), "the sign: forgetting makes backward transfer negative (final minus just-learned)."),
        (lambda m: sum(m[len(m) - 1][j] - m[0][j] for j in range(len(m) - 1)) / (len(m) - 1),
         "compare with the score right after learning task j, the diagonal R[j][j], not the first row."),
    ]),
    hints=("matrix[i][j] is the score on task j after stage i; the last row is the end of training.",
           "For each earlier task j (all but the last), take final score minus the score just after learning it.",
           "Average those differences over the T - 1 earlier tasks."),
    solution_code="def my_bwt(matrix):\n"
                  "    t = len(matrix)\n"
                  "    return sum(matrix[t - 1][j] - matrix[j][j] for j in range(t - 1)) / (t - 1)",
)

# ---- q4: TIES sign election and the disjoint mean -------------------------------------------------------------------


def ties_merge(vectors):
    """Per coordinate: elect the sign of the sum over tasks, then average only the values with that sign (0 if none)."""
    merged = []
    for values in zip(*vectors):
        sign = 1.0 if sum(values) >= 0 else -1.0
        agree = [v for v in values if v * sign > 0]
        merged.append(sum(agree) / len(agree) if agree else 0.0)
    return merged


def _majority_sign(vectors):
    merged = []
    for values in zip(*vectors):
        sign = 1.0 if sum(v > 0 for v in values) >= sum(v < 0 for v in values) else -1.0
        agree = [v for v in values if v * sign > 0]
        merged.append(sum(agree) / len(agree) if agree else 0.0)
    return merged


TIES_CASES = [Args([[0.5, -0.2, 0.1], [0.3, 0.4, -0.3], [-0.1, 0.1, -0.2]]),
              Args([[1.0, -1.0], [-3.0, 0.5], [0.5, 0.2]]),
              Args([[0.2, 0.0, -0.4, 0.9], [0.1, 0.3, -0.1, -0.2]])]

q4 = Exercise(
    "q4", lab="lab09", title="TIES sign election on small vectors",
    checker=expect_function(ties_merge, TIES_CASES, rel_tol=1e-9, abs_tol=1e-12, mistakes=[
        (lambda vs: [sum(v) / len(v) for v in zip(*vs)], ("that is the plain mean: TIES first elects a sign per "
                                                          "coordinate and drops the values that disagree.")),
        (_majority_sign, ("elect the sign of the SUM of the values (their total mass), not the sign most tasks "
                          "have.")),
        (lambda vs: [sum(x for x in v if x * (1 if sum(v) >= 0 else -1) > 0) for v in zip(*vs)],
         "average the agreeing values (a disjoint mean), do not just add them."),
    ]),
    hints=("Work coordinate by coordinate over the tasks' values.",
           "The elected sign is the sign of the sum of the values at that coordinate.",
           "Average only the values with the elected sign; if none has it, the coordinate is 0."),
    solution_code="def my_ties_merge(vectors):\n"
                  "    merged = []\n"
                  "    for values in zip(*vectors):\n"
                  "        sign = 1.0 if sum(values) >= 0 else -1.0\n"
                  "        agree = [v for v in values if v * sign > 0]\n"
                  "        merged.append(sum(agree) / len(agree) if agree else 0.0)\n"
                  "    return merged",
)
