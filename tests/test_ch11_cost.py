"""Lab 11: the project budget, spot hours, break-even, the IsoFLOP fit, the ledger table, energy, the panel."""

import dataclasses
import math

import pandas as pd
import pytest

from labkit.chapters.ch11_cost import budget, energy, predictions, scaling
from labkit.chapters.ch11_cost.panel import budget_panel, time_error_band
from labkit.core import LabkitError


def test_spot_hours_solve_the_preemption_recursion():
    # W = 10 / (1 - 0.1 * (1 / 2 + 0.2)) = 10 / 0.93; writing 0.05 h per 1 h interval adds 5% of the work
    assert budget.spot_hours(10, preemptions_per_hour=0.1, checkpoint_every_h=1, restart_h=0.2,
                             checkpoint_write_h=0) == pytest.approx(10 / 0.93)
    assert budget.spot_hours(10, preemptions_per_hour=0.1, checkpoint_every_h=1, restart_h=0.2,
                             checkpoint_write_h=0.05) == pytest.approx(10.5 / 0.93)
    assert budget.spot_hours(3, preemptions_per_hour=0, checkpoint_every_h=1, restart_h=1, checkpoint_write_h=0) == 3
    assert budget.spot_hours(1, preemptions_per_hour=2, checkpoint_every_h=1, restart_h=0, checkpoint_write_h=0) \
        == math.inf


def test_a_project_adds_up_its_parts_and_spot_lowers_the_compute_bill():
    on_demand = budget.plan_project(budget.Project())
    assert list(on_demand.parts_usd) == ["data preparation", "sweeps", "final run", "evaluation", "serving"]
    assert on_demand.total_usd == pytest.approx(sum(on_demand.parts_usd.values()))
    # the sweeps train 8 settings x 3 seeds on a quarter of the tokens: 6x the final run's hours, plus evaluations
    assert on_demand.hours["sweeps"] == pytest.approx(6 * on_demand.hours["final run"] + 24 * on_demand.hours[
        "evaluation"])
    spot = budget.plan_project(dataclasses.replace(budget.Project(), spot_share=1.0))
    assert spot.parts_usd["final run"] == pytest.approx(
        on_demand.parts_usd["final run"] * (1 - 0.6) * (1 + spot.spot_overhead))
    assert spot.parts_usd["serving"] == on_demand.parts_usd["serving"]
    full = budget.plan_project(dataclasses.replace(budget.Project(), method="full"))
    assert not full.fits and full.parts_usd["final run"] > on_demand.parts_usd["final run"]


@pytest.mark.parametrize(("change", "message"), [
    ({"spot_share": 1.5}, "spot_share is a share between 0 and 1"),
    ({"spot_share": -0.1}, "spot_share is a share between 0 and 1"),
    ({"train_tokens": 0}, "train_tokens must be positive"),
    ({"hardware": "TPU-v9"}, "Unknown hardware 'TPU-v9'"),
    ({"serving_hardware": "B300"}, "Unknown hardware 'B300'"),
    ({"sweep_runs": -1}, "cannot be negative"),
    ({"method": "magic"}, "magic"),
])
def test_bad_projects_get_clear_errors(change, message):
    with pytest.raises(LabkitError, match=message):
        dataclasses.replace(budget.Project(), **change)


def test_break_even_and_prices():
    assert budget.breakeven_tokens(500, 0.05, 0.30) == pytest.approx(2e9)
    assert budget.breakeven_tokens(500, 0.30, 0.30) == math.inf
    with pytest.raises(LabkitError, match="cannot be negative"):
        budget.breakeven_tokens(-1, 0.1, 0.2)
    with pytest.raises(LabkitError, match="cannot be negative"):
        budget.breakeven_tokens(100, 0.1, -0.2)
    assert budget.hosted_usd_per_mtok("gpt-4o-mini", output_share=0.5) == pytest.approx(0.375)
    with pytest.raises(LabkitError, match="Unknown hosted model"):
        budget.hosted_usd_per_mtok("gpt-9")
    # SmolLM2-135M: 2 x 134.5M matmul params per token = 2.69e14 FLOPs per Mtok; L4 bf16 121 TFLOP/s x 0.35 MFU
    flops = 2 * __import__("labkit").meters.matmul_params(budget.resolve_config("smollm2-135m")) * 1e6
    assert budget.own_usd_per_mtok("smollm2-135m", "L4") == pytest.approx(flops / (121e12 * 0.35) / 3600 * 0.71)


def test_chinchilla_rule_and_the_isoflop_fit():
    n, d = scaling.chinchilla_optimal(1.2e21)
    assert n == pytest.approx(math.sqrt(1e19)) and d == pytest.approx(20 * n)
    with pytest.raises(LabkitError, match="positive FLOP count"):
        scaling.chinchilla_optimal(0)
    # parabolas in log10 N with minima at N = 1e4 and 1e5 for budgets 1e10 and 1e12: a = (5 - 4) / (12 - 10)
    rows = [{"budget": c, "params": 10 ** x, "eval_loss": (x - v) ** 2 + 3 - k}
            for k, (c, v) in enumerate(((1e10, 4.0), (1e12, 5.0))) for x in (3.5, 4.0, 4.5, 5.0, 5.5)]
    optima, exponent = scaling.fit_isoflop(pd.DataFrame(rows))
    assert optima["n_opt"].tolist() == pytest.approx([1e4, 1e5]) and optima["from_parabola"].all()
    assert exponent == pytest.approx(0.5)
    n_opt, loss = scaling.predict_optimum(optima, 1e14)
    assert n_opt == pytest.approx(1e6) and loss == pytest.approx(10 ** (math.log10(3) + (math.log10(2) -
                                                                                       math.log10(3)) * 2))
    with pytest.raises(LabkitError, match="2 budgets or more"):
        scaling.predict_optimum(optima.iloc[:1], 1e14)
    edge = pd.DataFrame([{"budget": 1e10, "params": 10 ** x, "eval_loss": x} for x in (3, 4, 5)])
    assert scaling.fit_isoflop(edge)[0]["n_opt"][0] == 1e3  # the minimum at the edge is the best measured size


def test_tiny_llama_sizes_and_bad_shapes():
    assert scaling.size_for(1.2e5) == (48, 2)  # N = 98,544 is nearer 120k on a log scale than (64, 2)'s 164,160
    with pytest.raises(LabkitError, match="multiple of 16"):
        scaling.tiny_llama_config(20, 2)
    with pytest.raises(LabkitError, match="positive FLOP counts"):
        scaling.isoflop_sweep([0])


def test_the_isoflop_training_path_learns(one_thread):
    """A tiny Llama from scratch, as the lab trains it: 10x the compute gives a clearly lower validation loss."""
    import labkit as lk

    corpus = lk.load_corpus()
    texts, eval_texts = corpus["train"]["text"][:400], corpus["validation"]["text"][:32]
    tokenizer = scaling.corpus_tokenizer(texts)
    table = scaling.isoflop_sweep([3e9, 3e10], [(16, 1)], texts=texts, eval_texts=eval_texts, tokenizer=tokenizer)
    small, large = table["eval_loss"]
    assert large < small - 0.5 and large < math.log(len(tokenizer)) - 1.5  # uniform guessing is ln(512) = 6.24


def _ledger_frame():
    return pd.DataFrame([
        {"id": 1, "label": "a", "model": "m", "method": "lora", "device": "cpu", "tokens": 1000, "flops": 4e12,
         "predicted_peak_gib": 0.9, "measured_peak_gib": 1.0, "time_s": 50.0},
        {"id": 2, "label": "b", "model": "m", "method": "full", "device": "cpu", "tokens": 1000, "flops": 6e12,
         "predicted_peak_gib": 2.4, "measured_peak_gib": 2.0, "time_s": 30.0},
        {"id": 3, "label": "c", "model": "m", "method": "none", "device": "cpu", "tokens": 10, "flops": None,
         "predicted_peak_gib": None, "measured_peak_gib": 0.1, "time_s": 1.0},
    ])


def test_the_ledger_table_measures_errors_and_mfu():
    table = predictions.ledger_table(_ledger_frame(), peak_tflops=0.5, mfu=0.5)
    assert table["id"].tolist() == [1, 2]  # a run without FLOPs is left out
    assert table["memory_error"].tolist() == pytest.approx([-0.1, 0.2])
    # the CPU row's 0.4 TFLOP/s at MFU 0.5: 4e12 FLOPs take 20 s against 50 s measured
    assert table["predicted_time_s"].tolist() == pytest.approx([20.0, 30.0])
    assert table["time_error"].tolist() == pytest.approx([-0.6, 0.0])
    assert table["mfu"].tolist() == pytest.approx([4e12 / 50 / 0.5e12, 6e12 / 30 / 0.5e12])
    summary = predictions.error_summary(table)
    assert summary.index.tolist() == ["lora", "full"]  # most optimistic first
    assert time_error_band(table, low_q=0, high_q=1) == pytest.approx((1.0, 2.5))
    with pytest.raises(LabkitError, match="peak_tflops must be positive"):
        predictions.ledger_table(_ledger_frame(), peak_tflops=0)
    with pytest.raises(LabkitError, match="no finished runs"):
        predictions.ledger_table(_ledger_frame().iloc[2:], peak_tflops=1)


def test_top_up_fills_the_ledger_once(tmp_path, monkeypatch, one_thread):
    import labkit as lk

    monkeypatch.setenv("LABKIT_LEDGER", str(tmp_path / "runs.sqlite"))
    data = lk.load_instructions()["train"].select(range(8))
    assert predictions.top_up("tiny-llama", data, min_runs=3, steps=1) == 3
    assert lk.ledger.read_runs()["method"].tolist() == ["lora", "full", "ia3"]
    assert predictions.top_up("tiny-llama", data, min_runs=3, steps=1) == 0
    monkeypatch.setenv("LABKIT_LEDGER", "0")
    with pytest.raises(LabkitError, match="ledger is off"):
        predictions.top_up("tiny-llama", data)


def test_energy_estimates_and_bad_input():
    assert energy.table_estimate_kwh(3600, "T4") == pytest.approx(0.070)  # 70 W for an hour
    with pytest.raises(LabkitError, match="cannot be negative"):
        energy.table_estimate_kwh(-1)
    table = energy.run_on_each_gpu(1e15, mfu=0.5)
    t4 = table.set_index("hardware").loc["T4"]
    assert t4["dtype"] == "fp16" and t4["seconds"] == pytest.approx(1e15 / (65e12 * 0.5))
    with pytest.raises(LabkitError, match="flops must be positive"):
        energy.run_on_each_gpu(0)
    with pytest.raises(LabkitError, match="alpha-3"), energy.energy_meter(country="France"):
        pass


def test_codecarbon_measures_a_block():
    with energy.energy_meter(country="FRA", interval_s=0.5) as reading:
        sum(i * i for i in range(2_000_000))
    assert reading.seconds > 0 and reading.kwh > 0 and reading.cpu_kwh > 0 and reading.grams_co2 > 0


def test_the_panel_follows_its_controls():
    panel = budget_panel(band=(0.5, 2.0))
    lora = panel.budget.total_usd
    panel.method.value = "full"
    assert panel.project.method == "full" and panel.budget.total_usd > lora and "does NOT fit" in panel.message.value
    panel.spot.value = 1.0
    assert panel.budget.project.spot_share == 1.0
    bar_total = sum(trace.x[0] for trace in panel.figure.data if trace.type == "bar")
    assert bar_total == pytest.approx(panel.budget.total_usd)
    with pytest.raises(LabkitError, match="0 < low <= high"):
        budget_panel(band=(2.0, 1.0))
    with pytest.raises(LabkitError, match="No ledger runs"):
        time_error_band(pd.DataFrame())


def test_matmul_peak_is_measured_and_checked():
    from labkit.meters import measure_matmul_tflops

    assert measure_matmul_tflops(size=128, repeats=2) > 0
    with pytest.raises(LabkitError, match="Unknown dtype 'int4'"):
        measure_matmul_tflops(dtype="int4")
    with pytest.raises(LabkitError, match="size"):
        measure_matmul_tflops(size=0)
    with pytest.raises(LabkitError, match="max_seconds"):
        measure_matmul_tflops(max_seconds=0)


def test_matmul_peak_stops_at_its_time_budget(monkeypatch):
    from labkit.meters import compute

    ticks = []  # a clock that moves one second per reading: every product "takes" a second

    def clock():
        ticks.append(None)
        return float(len(ticks))

    monkeypatch.setattr(compute.time, "perf_counter", clock)
    assert compute.measure_matmul_tflops(size=64, repeats=8, max_seconds=2.5) == 2 * 64**3 / 1 / 1e12
    # read at the start, as the warm-up and the first timed product begin, as it ends, and once for the budget: 5
    # readings and then it stops (ignoring the budget, 8 timed products would read the clock 26 times)
    assert len(ticks) == 5
