"""Lab 02 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

from labkit.chapters.ch02_performance.exercises import OPTIONS, q1, q2, q3, q4


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def _run(exercise):
    namespace = {}
    exec(exercise.solution_code, namespace)  # noqa: S102 (our own solution text)
    return next(v for k, v in namespace.items() if callable(v) and not k.startswith("__"))


def test_solutions_pass():
    for exercise in (q1, q2, q3, q4):
        assert _status(exercise, _run(exercise)) == "correct", exercise.name


def test_q1_layer_bytes():
    assert "5·a·s/h" in q1.evaluate(lambda s, b, h, a: s * b * h * 34).message
    assert "16-bit" in q1.evaluate(lambda s, b, h, a: 2 * s * b * h * (34 + 5 * a * s / h)).message
    assert "s²" in q1.evaluate(lambda s, b, h, a: s * b * h * (34 + 5 * a / h)).message
    outcome = q1.evaluate(lambda s, b, h, a: 0)
    assert outcome.status == "incorrect" and str(int(2048 * 12288 * (34 + 5 * 96 * 2048 / 12288))) not in outcome.message
    assert _status(q1, lambda s, b, h, a: ...) == "not attempted"


def test_q2_accumulation():
    assert "divide the target" in q2.evaluate(
        lambda f, p, c, target=32: -(-target // int((c - f) // p)) if (c - f) >= p else None).message
    assert "fixed_gib" in q2.evaluate(lambda f, p, c, target=32: target // max(1, int(c // p)) if c >= p + f
                                      else None).message
    assert _status(q2, lambda f, p, c, target=32: 1) == "incorrect"
    assert _status(q2, lambda f, p, c, target=32: ...) == "not attempted"


def test_q3_top_operator():
    assert "self time" in q3.evaluate(lambda t: str(t.sort_values("total_ms", ascending=False)["operator"].iloc[0])
                                      ).message
    assert "most frequent" in q3.evaluate(lambda t: str(t.sort_values("calls", ascending=False)["operator"].iloc[0])
                                          ).message
    outcome = q3.evaluate(lambda t: "aten::add")
    assert outcome.status == "incorrect" and "aten::mm" not in outcome.message
    assert _status(q3, lambda t: ...) == "not attempted"


def test_q4_fastest_fitting():
    assert "filter first" in q4.evaluate(lambda o, b: max(o, key=lambda x: x["tokens_per_s"])["name"]).message
    assert "not always" in q4.evaluate(lambda o, b: min(o, key=lambda x: x["mem_gib"])["name"]).message
    strict = q4.evaluate(lambda o, b: (max((x for x in o if x["mem_gib"] < b), key=lambda x: x["tokens_per_s"],
                                           default=None) or {"name": None})["name"])
    assert "<=" in strict.message
    outcome = q4.evaluate(lambda o, b: "plain")
    assert outcome.status == "incorrect" and not any(o["name"] in outcome.message for o in OPTIONS[2:])
    assert _status(q4, lambda o, b: ...) == "not attempted"
