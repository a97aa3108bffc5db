"""Lab 07 runs: LoRA on the intents learns on the real model; seed runs and the early-stopped run land in the
tracker and are read back; the judge and the evaluation panel; bad input rejected."""

import numpy as np
import pytest

from labkit.chapters.ch07_evaluation import judge, runs, scoring
from labkit.chapters.ch07_evaluation.panel import compare_runs, evaluation_panel
from labkit.core import LabkitError


def test_lora_on_intents_learns_on_smollm2(one_thread):
    """The lab's training path: a fresh LoRA model, scored as the lab scores it, then SFT on the label word. The loss on
    a fixed batch of 8 messages falls at least 2x within 3 steps (batch 4, the method's default lr)."""
    import labkit as lk

    rows = list(lk.load_intents()["train"].select(range(8)))
    model, tokenizer = runs.lora_model("smollm2-135m", seed=0)
    scoring.lm_run("before", model, tokenizer, rows[:2])  # what the lab does with a model: score it
    data = scoring.intent_sft(rows)  # the 8 messages: 2 batches of 4 per pass
    before = lk.training.evaluate_loss(model, tokenizer, data, objective="sft", seq_len=runs.SEQ_LEN)["eval_loss"]
    runs.train_intents(model, tokenizer, rows, num_steps=3, seed=0, label="test-lab07-learning", batch_size=4)
    after = lk.training.evaluate_loss(model, tokenizer, data, objective="sft", seq_len=runs.SEQ_LEN)["eval_loss"]
    print(f"fixed-batch SFT loss {before:.3f} -> {after:.3f}")
    assert after < before / 2, (before, after)


def test_seed_runs_and_early_stopping_are_tracked(tmp_path, monkeypatch, one_thread):
    import labkit as lk

    monkeypatch.setenv("LABKIT_TRACKER_DIR", str(tmp_path / "tb"))
    intents = lk.load_intents()
    train_rows, test_rows = list(intents["train"].select(range(8))), list(intents["test"].select(range(6)))
    table, found = runs.seed_runs("tiny-llama", train_rows, test_rows, seeds=[3, 4], num_steps=1, batch_size=2,
                                  progress=False)
    assert table["seed"].tolist() == [3, 4] and len(found) == 2 and found[0].ids == list(range(6))
    tracked = lk.tracker.runs()
    assert set(tracked["run"]) == {"lab07-seed3", "lab07-seed4"} and set(tracked["seed"]) == {3, 4}
    assert not lk.tracker.scalars("lab07-seed3").query("tag == 'train/loss'").empty

    model, tokenizer = runs.lora_model("tiny-llama", seed=0)
    stopped = runs.train_early_stopping(model, tokenizer, train_rows, list(intents["validation"].select(range(4))),
                                        eval_every=1, max_steps=3, patience=1, batch_size=2, label="es-test")
    assert stopped.stopped_step <= 3 and stopped.history["step"].iloc[0] == 1
    best = stopped.history.loc[stopped.history["best"], "eval_loss"].iloc[0]
    assert best == stopped.history["eval_loss"].min()
    now = lk.training.evaluate_loss(model, tokenizer, scoring.intent_sft(intents["validation"].select(range(4))),
                                    objective="sft", seq_len=runs.SEQ_LEN)["eval_loss"]
    assert now == pytest.approx(best, rel=1e-4)  # the best weights are back
    curves = lk.tracker.scalars(stopped.run)
    assert len(curves.query("tag == 'eval/eval_loss'")) == len(stopped.history)


@pytest.mark.parametrize("kwargs", [{"eval_every": 0}, {"max_steps": 0}, {"patience": 0}, {"eval_every": 1.5}])
def test_early_stopping_rejects_bad_input(kwargs):
    call = {"eval_every": 1, "max_steps": 2, "patience": 1, **kwargs}
    with pytest.raises(LabkitError):
        runs.train_early_stopping(None, None, [], [], **call)


def test_unwritable_tracker_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LABKIT_TRACKER_DIR", str(blocker / "tb"))
    with pytest.raises(LabkitError, match="LABKIT_TRACKER_DIR"):
        runs.seed_runs("tiny-llama", [], [], seeds=[0], num_steps=1)
    with pytest.raises(LabkitError, match="LABKIT_TRACKER_DIR"):
        runs.train_early_stopping(None, None, [], [], eval_every=1, max_steps=1, patience=1)


def test_seed_runs_reject_bad_seeds():
    for seeds in ([], [1, 1]):
        with pytest.raises(LabkitError):
            runs.seed_runs("tiny-llama", [], [], seeds=seeds, num_steps=1)


def test_judge_on_a_tiny_model(one_thread):
    import labkit as lk

    model, tokenizer = lk.load_model("tiny-llama")
    rows = [{"instruction": "Add 2 and 3.", "answer": "5"}, {"instruction": "Reverse abc.", "answer": "cba"},
            {"instruction": "Sort 3, 1.", "answer": "1, 3"}]
    study = judge.judge_study(model, tokenizer, rows, ["5", "abc", "3, 1"])
    s = study.summary
    assert s["n"] == 3 and s["own_wrong"] == 2
    assert 0 <= s["picks_a_rate"] <= 1 and 0 <= s["position_flip_rate"] <= 1
    assert study.table[["p_ref_first", "p_ref_second"]].stack().between(0, 1).all()
    assert (study.table["foreign"] != study.table["reference"]).all()
    with pytest.raises(LabkitError):
        judge.judge_study(model, tokenizer, rows, ["5"])
    with pytest.raises(LabkitError):
        judge.prefer_first(model, tokenizer, [], [], [])


def _run(name, correct_share, n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 8, n)
    pred = np.where(rng.random(n) < correct_share, y, (y + 1) % 8)
    return scoring.IntentRun(name, list(range(n)), y, np.eye(8)[pred])


def test_probe_run_and_panel():
    rng = np.random.default_rng(0)
    labels = ["feed", "heal"] * 20
    x = rng.normal(size=(40, 5)) + np.array([[3.0 if lab == "feed" else -3.0] + [0] * 4 for lab in labels])
    rows = [{"text": "t", "label": lab} for lab in labels]
    probe = scoring.probe_run("probe", x, rows, x, rows)
    assert probe.accuracy == 1.0 and probe.proba.shape == (40, 8)

    strong, weak = _run("strong", 0.95), _run("weak", 0.3, seed=0)
    weak.y_true = strong.y_true
    found = compare_runs(strong, weak)
    assert found["significant"] and found["mcnemar_p"] < 0.05
    panel = evaluation_panel({"strong": strong, "weak": weak})
    assert "significant" in panel.verdict and "NOT" not in panel.verdict
    panel.size.value = panel.size.min
    assert f"on {panel.size.min} items" in panel.verdict
    panel.metric.value = "macro_f1"
    assert panel.found["metric"] == "macro_f1"
    panel.run_b.value = "strong"
    assert panel.verdict == "pick two different runs"


def test_panel_rejects_bad_input():
    a, b = _run("a", 0.5), _run("b", 0.5)
    with pytest.raises(LabkitError, match="metric"):
        compare_runs(a, b, "bleu")
    with pytest.raises(LabkitError):
        compare_runs(a, b, n=1)
    short = _run("c", 0.5, n=30)
    with pytest.raises(LabkitError, match="different items"):
        compare_runs(a, short)
    with pytest.raises(LabkitError):
        evaluation_panel({"a": a})
