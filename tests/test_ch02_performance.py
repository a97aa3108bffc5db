"""Lab 02: the step's levers, the profiler's anatomy, the ladder, the scaling helpers, the panel and the budget fit."""

import math

import pandas as pd
import pytest
import torch

from labkit.chapters.ch02_performance import ladder, panel, profile, scaling
from labkit.core import LabkitError
from labkit.meters import predict_memory
from labkit.models import load_model

PEAKS = {"fp32": 0.1, "bf16": 0.2}


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def batches(tiny):
    _, tokenizer = tiny
    return ladder.make_batches(tokenizer, ["the dragon sleeps on gold", "a knight reads"], batch_size=2, seq_len=16,
                               num_batches=2)


def test_levers_change_one_setting_each():
    assert ladder.lever_settings("plain", 4) == ladder.PLAIN
    assert ladder.lever_settings("accumulation", 4).micro_batch == 2
    assert ladder.lever_settings("sdpa", 4).attention == "sdpa"
    changed = {lever: sum(getattr(ladder.lever_settings(lever, 4), f) != getattr(ladder.PLAIN, f)
                          for f in ("attention", "grad_checkpointing", "micro_batch", "precision", "compile",
                                    "optimizer", "method")) for lever in ladder.LEVERS}
    assert changed == {lever: int(lever != "plain") for lever in ladder.LEVERS}
    assert ladder.micro_batches(8, 2) == 4 and ladder.micro_batches(8, None) == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ladder.lever_settings("turbo", 4), "Unknown lever"),
    (lambda: ladder.lever_settings("accumulation", 1), "at least 2"),
    (lambda: ladder.micro_batches(8, 3), "does not divide the batch of 8: pick one of 1, 2, 4, 8"),
    (lambda: ladder.StepSettings(attention="flash"), "Unknown attention"),
    (lambda: ladder.StepSettings(optimizer="lion"), "Unknown optimizer"),
    (lambda: ladder.StepSettings(micro_batch=0), "micro_batch must be"),
    (lambda: ladder.StepSettings(compile="yes"), "compile must be True or False"),
    (lambda: ladder.make_batches(None, [], batch_size=2, seq_len=8, num_batches=1), "No texts"),
    (lambda: ladder.make_batches(None, ["a"], batch_size=0, seq_len=8, num_batches=1), "batch_size must be"),
    (lambda: ladder.loss_verdicts(pd.DataFrame({"loss_change": [0.0]}), 0), "tolerance must be"),
    (lambda: scaling.activation_slope(pd.DataFrame({"tokens": [8], "activations_gib": [1.0]})), "two or more"),
])
def test_bad_input_says_what_to_do(call, message):
    with pytest.raises(LabkitError, match=message):
        call()


def test_run_ladder_rejects_unknown_levers_and_bad_micro_batches(tiny, batches):
    model, _ = tiny
    with pytest.raises(LabkitError, match="Unknown lever"):
        ladder.run_ladder(model, batches, levers=("plain", "warp"))
    with pytest.raises(LabkitError, match="does not divide"):
        ladder.run_rung(model, batches, "plain", base=ladder.StepSettings(micro_batch=3))


def test_make_batches_fills_every_row(tiny, batches):
    assert [b["input_ids"].shape for b in batches] == [torch.Size([2, 16])] * 2
    assert torch.equal(batches[0]["input_ids"], batches[0]["labels"])


def test_the_profiler_timeline_matches_the_kits_prediction(tiny, batches):
    model, _ = tiny
    settings = ladder.StepSettings(attention="sdpa")
    runner, params = ladder.prepare(model, settings)
    opt = ladder.make_optimizer(params, "adamw", 1e-4)
    ladder.train_step(runner, params, opt, batches[0], settings)
    prof = profile.profile_step(lambda: ladder.train_step(runner, params, opt, batches[0], settings))
    assert set(prof.phases_ms) == set(profile.PHASES) and all(v > 0 for v in prof.phases_ms.values())
    assert prof.top_ops["self_ms"].is_monotonic_decreasing and prof.top_ops["operator"].str.startswith("aten::").all()
    n = sum(p.numel() for p in model.parameters())
    assert prof.at_peak["parameters"] == 4 * n  # every fp32 weight, counted once (the head is tied)
    assert prof.at_peak["optimizer state"] >= 8 * n  # AdamW's two moments (plus its step counters)
    frame = profile.compare_with_prediction(prof, predict_memory(model.config, "full", batch_size=2, seq_len=16))
    assert abs(frame.loc["total", "error"]) < 0.05
    with pytest.raises(LabkitError, match="one training step"):
        profile.profile_step("not a function")


def test_ladder_rows_measure_every_rung(tiny, batches):
    model, _ = tiny
    table = ladder.run_ladder(model, batches, levers=("sdpa", "accumulation", "sgd", "lora"), num_steps=1,
                              progress=False)
    assert list(table.index) == ["plain", "sdpa", "accumulation", "sgd", "lora"] and table["ran"].all()
    assert table.loc["plain", "speedup"] == 1.0 and table.loc["plain", "loss_change"] == 0.0
    # sdpa and accumulation compute the same step as plain: the same losses up to float rounding
    assert table.loc["sdpa", "final_loss"] == pytest.approx(table.loc["plain", "final_loss"], abs=1e-4)
    assert table.loc["accumulation", "final_loss"] == pytest.approx(table.loc["plain", "final_loss"], abs=1e-4)
    assert (table["live_error"].abs() < 0.15).all()
    assert table.loc["lora", "live_peak_gib"] < table.loc["plain", "live_peak_gib"]
    verdicts = ladder.loss_verdicts(table, ladder.loss_tolerance(table))
    assert verdicts["sdpa"] == "held"
    fig = ladder.plot_ladder(table)
    assert len(fig.data) == 4


def test_a_lever_that_fails_reports_its_error(tiny, batches, monkeypatch):
    model, _ = tiny

    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cc not found\nmore")

    monkeypatch.setattr(ladder, "prepare", broken)
    result = ladder.run_rung(model, batches, "compile")
    assert not result.ran and result.error == "RuntimeError: Compiler: cc not found"
    assert math.isnan(ladder.ladder_table([result]).loc["compile", "tokens_per_s"])


def test_bf16_on_a_cpu_that_emulates_it_is_skipped_only_when_asked(tiny, batches, monkeypatch):
    model, _ = tiny
    monkeypatch.setattr(ladder, "cpu_has_bf16", lambda: False)
    skipped = ladder.run_rung(model, batches, "bf16", num_steps=1, live_peak=False, emulated_bf16=False)
    assert not skipped.ran and "no bf16 arithmetic" in skipped.error and skipped.losses == []
    ran = ladder.run_rung(model, batches, "bf16", num_steps=1, live_peak=False)  # the default runs it anyway
    assert ran.ran and len(ran.losses) == 2
    monkeypatch.setattr(ladder, "cpu_has_bf16", lambda: True)  # a CPU with AVX512-BF16 or AMX runs it
    assert ladder.run_rung(model, batches, "bf16", num_steps=1, live_peak=False, emulated_bf16=False).ran
    assert ladder.run_rung(model, batches, "sgd", num_steps=1, live_peak=False, emulated_bf16=False).ran


def test_eager_scores_are_the_quadratic_term(tiny):
    model, _ = tiny
    cfg = model.config
    assert ladder.eager_scores_bytes(cfg, 1, 64) == 4 * ladder.eager_scores_bytes(cfg, 1, 32)
    eager = ladder.predict_step_gib(cfg, ladder.StepSettings(), 2, 64)
    sdpa = ladder.predict_step_gib(cfg, ladder.StepSettings(attention="sdpa"), 2, 64)
    assert (eager - sdpa) * 2**30 == pytest.approx(ladder.eager_scores_bytes(cfg, 2, 64))
    # Korthikanti's 34·h bytes per token and layer in 16-bit is 68·h in fp32
    assert scaling.korthikanti_bytes_per_token(cfg, 128) == 68 * cfg.hidden_size * cfg.num_hidden_layers


def test_sweep_measures_and_predicts(tiny):
    model, _ = tiny
    table = scaling.sweep(model, "seq_len", [16, 32], progress=False)
    assert list(table["seq_len"]) == [16, 32] and (table["live_peak_gib"] > 0).all()
    slope = scaling.activation_slope(table)
    assert slope == pytest.approx(scaling.predicted_slope(model, method="lora"), rel=0.1)
    assert scaling.crossover_tokens(table) in (None, 16, 32)
    with pytest.raises(LabkitError, match="Unknown setting"):
        scaling.sweep(model, "layers", [1])
    with pytest.raises(LabkitError, match="longer than the model"):
        scaling.sweep(model, "seq_len", [10**6])
    with pytest.raises(LabkitError, match="positive whole"):
        scaling.sweep(model, "batch_size", [0])


def test_mfu_is_achieved_over_peak():
    table = pd.DataFrame({"ran": [True, True], "tokens_per_s": [100.0, 200.0]}, index=["plain", "bf16"])
    out = scaling.mfu_table(table, 1_000_000, {"full": 1_000_000, "lora": 10}, PEAKS)
    assert out.loc["plain", "achieved_tflops"] == pytest.approx(6e6 * 100 / 1e12)
    assert out.loc["bf16", "mfu"] == pytest.approx(6e6 * 200 / 1e12 / 0.2)


def test_fit_budget_and_step_time(tiny):
    model, _ = tiny
    cfg = model.config
    plain = ladder.StepSettings(attention="sdpa")
    t = panel.predict_step_time_s(cfg, plain, 2, 32, PEAKS, 0.5)
    ckpt = panel.predict_step_time_s(cfg, ladder.StepSettings(attention="sdpa", grad_checkpointing=True), 2, 32,
                                     PEAKS, 0.5)
    assert ckpt == pytest.approx(t * 4 / 3)
    fits = panel.fit_budget(cfg, 0.04, batch_size=4, seq_len=32, peaks_tflops=PEAKS, mfu=0.5)
    assert (fits["predicted_gib"] <= 0.04).all()
    assert fits["predicted_tokens_per_s"].is_monotonic_decreasing
    with pytest.raises(LabkitError, match="does not even hold"):
        panel.fit_budget(cfg, 0.001, batch_size=4, seq_len=32, peaks_tflops=PEAKS, mfu=0.5)
    with pytest.raises(LabkitError, match="No combination fits"):
        panel.fit_budget(cfg, 0.0121, batch_size=4, seq_len=512, peaks_tflops=PEAKS, mfu=0.5)
    with pytest.raises(LabkitError, match="mfu must be"):
        panel.predict_step_time_s(cfg, plain, 2, 32, PEAKS, 0)
    with pytest.raises(LabkitError, match="steps must be"):
        panel.measure_settings(model, plain, batch_size=2, seq_len=8, steps=1)


def test_the_panel_follows_its_controls_and_measures(tiny):
    model, _ = tiny
    p = panel.LeverPanel(model, peaks_tflops=PEAKS, mfu=0.5, batch_size=2, seq_len=16)
    before = p.predicted_gib
    p.method.value = "lora"
    assert p.predicted_gib < before
    p.accum.value = 4  # does not divide a batch of 2: a message, no crash
    assert "do not divide" in p.message.value
    p.accum.value = 2
    point = p.measure()
    assert point["step_time_s"] > 0 and point["micro_batch"] == 1 and len(p.figure.data[1].y) == 1


def test_the_ladder_steps_learn_on_the_real_model():
    """The steps the ladder times train SmolLM2: after the calls the lab makes first (a profiled step for LoRA), the
    loss on a fixed batch falls by 30% within three more steps, for full fine-tuning and for LoRA."""
    model, tokenizer = load_model("smollm2-135m")
    batch = ladder.make_batches(tokenizer, ["The capital of France is Paris. The capital of Spain is Madrid."],
                                batch_size=1, seq_len=12, num_batches=1)[0]
    for method, lr in (("lora", 3e-3), ("full", 1e-4)):
        settings = ladder.StepSettings(attention="sdpa", method=method)
        runner, params = ladder.prepare(model, settings)
        opt = ladder.make_optimizer(params, "adamw", lr)
        first = ladder.train_step(runner, params, opt, batch, settings)
        if method == "lora":
            profile.profile_step(lambda r=runner, p=params, o=opt, s=settings: ladder.train_step(r, p, o, batch, s))
        for _ in range(3):
            last = ladder.train_step(runner, params, opt, batch, settings)
        assert last < 0.7 * first, (method, first, last)
