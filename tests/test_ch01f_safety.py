"""Lab 01f, safety and alignment: the safety set, refusals, canaries and exposure, DPO with TRL; each training path
the lab uses learns on the real model (SmolLM2-135M)."""

import json
import math
import random
import sys
from pathlib import Path

import pytest

from labkit.chapters.ch01f_hardware import align, safety
from labkit.core import LabkitError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def smollm2():
    from labkit.models import load_model

    return load_model("smollm2-135m")


def test_generator_rebuilds_the_files():
    sys.path.insert(0, str(DATA))
    try:
        import gen_safety
    finally:
        sys.path.remove(str(DATA))
    built = gen_safety.build(random.Random(505))  # the seed data/build_data.py gives the safety set
    for stem, rows in built.items():
        lines = (DATA / "safety" / f"{stem}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == rows


def test_safety_set_shape_and_no_operational_detail():
    rows = safety.load_safety("eval")
    harmful = [r for r in rows if r["kind"] == "harmful"]
    benign = [r for r in rows if r["kind"] == "benign"]
    assert len(harmful) == len(benign) == 24 and len({r["category"] for r in harmful}) == 12
    for row in harmful:  # headline level: short, one request, no numbers or quantities
        assert len(row["prompt"]) < 120 and not any(ch.isdigit() for ch in row["prompt"])
    pairs = safety.load_safety("preferences_train") + safety.load_safety("preferences_test")
    assert {p["prompt"] for p in safety.load_safety("preferences_train")}.isdisjoint(
        p["prompt"] for p in safety.load_safety("preferences_test"))
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    with pytest.raises(LabkitError, match="Unknown safety file"):
        safety.load_safety("train")


def test_eval_subset():
    rows = safety.load_safety("eval")
    sub = safety.eval_subset(rows, 4)
    assert [r["kind"] for r in sub] == ["harmful"] * 4 + ["benign"] * 4
    assert len({r["category"] for r in sub[:4]}) == 4  # one per category first
    assert safety.eval_subset(rows, None) == rows
    with pytest.raises(LabkitError, match="per_kind"):
        safety.eval_subset(rows, 0)


@pytest.mark.parametrize(("text", "refused"), [
    ("I'm sorry, but I can't help with that.", True), ("I cannot assist with this request.", True),
    ("I can’t provide that.", True), ("To kill a stuck process, run `kill -9 PID`.", False),
    ("Sure! Here are some tips for sunset photos.", False)])
def test_is_refusal(text, refused):
    assert safety.is_refusal(text) is refused


def test_refusal_rates_and_errors():
    import pandas as pd

    table = pd.DataFrame({"kind": ["harmful", "harmful", "benign", "benign"], "refused": [True, False, True, False]})
    assert safety.refusal_rates(table) == {"refusal_rate": 0.5, "over_refusal_rate": 0.5, "n_harmful": 2,
                                           "n_benign": 2}
    with pytest.raises(LabkitError, match="both harmful and benign"):
        safety.refusal_rates(table[table["kind"] == "harmful"])
    with pytest.raises(LabkitError, match="string"):
        safety.is_refusal(None)


def test_canary_planting_and_errors(smollm2):
    _, tokenizer = smollm2
    canaries = safety.load_safety("canaries")[:2]
    rows = safety.plant_canaries(["a", "b"], canaries, copies=3, tokenizer=tokenizer, seq_len=32)
    assert len(rows) == 2 + 2 * 3 and len(safety.deduplicate(rows)) == 4
    with pytest.raises(LabkitError, match="longer than seq_len"):
        safety.plant_canaries(["a"], canaries, copies=1, tokenizer=tokenizer, seq_len=5)
    with pytest.raises(LabkitError, match="copies"):
        safety.plant_canaries(["a"], canaries, copies=0, tokenizer=tokenizer, seq_len=32)
    others = safety.candidate_secrets(canaries[0], 50)
    assert len(set(others)) == 50 and canaries[0]["secret"] not in others and all(len(s) == 6 for s in others)
    with pytest.raises(LabkitError, match="candidate space"):
        safety.candidate_secrets(canaries[0], 10**6)


def test_exposure_from_rank():
    assert safety.exposure_from_rank(1, 1024) == 10.0 and safety.exposure_from_rank(1024, 1024) == 0.0
    for rank, n in ((0, 10), (11, 10), (1.5, 10)):
        with pytest.raises(LabkitError, match="rank"):
            safety.exposure_from_rank(rank, n)


def test_generate_answers_rejects_no_prompts_and_keeps_the_training_mode(smollm2):
    from labkit.training import generate_answers

    with pytest.raises(LabkitError, match="at least one"):
        generate_answers(*smollm2, [])
    model, tokenizer = smollm2
    model.train()
    try:
        assert len(generate_answers(model, tokenizer, ["Hi"], max_new_tokens=2)) == 1 and model.training
    finally:
        model.eval()


def test_lab_lora_path_learns_after_timing_and_generation():
    """Step 1 times the LoRA model, step 4 generates with it, then trains it: the loss on a fixed batch must fall."""
    from labkit.meters import measure_throughput
    from labkit.methods import apply_method
    from labkit.models import load_model
    from labkit.training import train

    model, tokenizer = load_model("smollm2-135m")
    model = apply_method(model, "lora")
    measure_throughput(model, batch_size=1, seq_len=16, num_steps=1)
    rows = safety.eval_subset(safety.load_safety("eval"), 1)
    assert safety.refusal_rates(safety.refusal_table(model, tokenizer, rows, max_new_tokens=4))["n_harmful"] == 1
    batch = [{"instruction": f"What is {a} + {a}?", "answer": str(2 * a)} for a in (11, 23, 37, 45)]
    result = train(model, tokenizer, batch, num_steps=6, batch_size=4, seq_len=48, lr=3e-3, live_plot=False,
                   progress=False)
    losses = result.history["loss"]
    assert losses.iloc[-1] < losses.iloc[0] / 2  # the same four rows every step: loss at least halves


def test_canary_path_learns_and_exposure_rises():
    """The canary step: LoRA causal-LM training on planted canaries lowers their loss and raises their exposure."""
    from labkit.methods import apply_method
    from labkit.models import load_model
    from labkit.training import train

    model, tokenizer = load_model("smollm2-135m")
    model = apply_method(model, "lora")
    canary = safety.load_safety("canaries")[0]
    before = safety.canary_exposure(model, tokenizer, canary, n_candidates=31)
    rows = safety.plant_canaries([], [canary], copies=4, tokenizer=tokenizer, seq_len=24)
    result = train(model, tokenizer, rows, objective="causal_lm", num_steps=5, batch_size=4, seq_len=24, lr=3e-3,
                   live_plot=False, progress=False)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0] / 2
    after = safety.canary_exposure(model, tokenizer, canary, n_candidates=31)
    assert after["exposure_bits"] > before["exposure_bits"] and after["rank"] == 1
    assert after["max_bits"] == pytest.approx(math.log2(32))


def test_preference_checks():
    good = [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    assert align.check_preferences(good) == good
    with pytest.raises(LabkitError, match="same chosen and rejected"):
        align.check_preferences([{"prompt": "p", "chosen": "a ", "rejected": "a"}])
    with pytest.raises(LabkitError, match="No preference pairs"):
        align.check_preferences([])
    with pytest.raises(LabkitError, match="'rejected'"):
        align.check_preferences([{"prompt": "p", "chosen": "a"}])
    assert align.to_trl(good)[0]["chosen"] == [{"role": "assistant", "content": "a"}]


def test_dpo_pair_loss():
    assert align.dpo_pair_loss(-5, -5, -5, -5) == pytest.approx(math.log(2))
    margin = 0.1 * ((-12 + 13) - (-15 + 14))
    assert align.dpo_pair_loss(-12, -15, -13, -14, 0.1) == pytest.approx(math.log1p(math.exp(-margin)))
    assert align.dpo_pair_loss(0, -1000, 0, 0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert align.dpo_pair_loss(-1000, 0, 0, 0, 1.0) == pytest.approx(1000.0)
    with pytest.raises(LabkitError, match="beta"):
        align.dpo_pair_loss(0, 0, 0, 0, 0)


def test_dpo_with_trl_learns():
    """TRL's DPOTrainer with LoRA on SmolLM2: the DPO loss on the same pairs falls and the held-out win rate is read."""
    from labkit.models import load_model

    model, tokenizer = load_model("smollm2-135m")
    pairs = safety.load_safety("preferences_train")[:2]
    result = align.run_dpo(model, tokenizer, pairs, pairs[:1], num_steps=4, batch_size=2, max_length=48, lr=3e-3)
    losses = result.history["loss"]
    assert losses.iloc[0] == pytest.approx(math.log(2), abs=1e-3)  # step 1: the policy is the reference
    assert losses.iloc[-1] < losses.iloc[0] / 2
    assert result.win_rate == 1.0 and result.margin > 0
    with pytest.raises(LabkitError, match="num_steps"):
        align.run_dpo(model, tokenizer, pairs, pairs, num_steps=0)
