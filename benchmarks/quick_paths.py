"""What must feel instant to a learner, each timed against a baseline measured in the same run.

The unit tests used to assert these with wall-clock bounds, which fail on a slow or busy machine; the tests now check
what makes each path quick (no training, no model, the cache) and this script keeps the numbers:

- reloading SmolLM2 from the converted cache, against plain transformers loading the same folder (was < 3 s);
- one ``predict_memory`` call, against the explorer update it is part of (was < 10 ms);
- one analytic update of the method explorer, against building its plotly memory figure (was a median < 0.5 s;
  ``widget_latency.py`` holds the 100 ms goal on SmolLM2);
- returning to a stored run in the explorer, against training that run (was < 1 s: it must not train again).

    python benchmarks/quick_paths.py
    python benchmarks/quick_paths.py --repeats 20 --skip-reload
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def median_s(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(name: str, seconds: float, baseline_s: float, baseline: str, *, goal_ratio: float, goal_s: float) -> None:
    """One line: time, baseline, ratio, and whether either goal is missed."""
    ratio = seconds / baseline_s
    missed = []
    if ratio > goal_ratio:
        missed.append(f"ratio > {goal_ratio:g}")
    if seconds > goal_s:
        missed.append(f"time > {goal_s * 1000:g} ms")
    print(f"{name:<22} {seconds * 1000:9.1f} ms   {baseline:<40} {baseline_s * 1000:9.1f} ms   "
          f"ratio {ratio:7.3f}   {'OVER GOAL: ' + ', '.join(missed) if missed else 'ok'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-reload", action="store_true", help="skip the SmolLM2 reload (needs its cache)")
    args = parser.parse_args()

    import datasets

    from labkit import meters, plots
    from labkit.models import load_model, prepare_offline_model
    from labkit.widgets import method_explorer

    if not args.skip_reload:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = prepare_offline_model()
        load_model("smollm2-135m")  # warm the file cache for both
        plain = median_s(lambda: (AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)),
                         max(2, args.repeats // 5))
        kit = median_s(lambda: load_model("smollm2-135m"), max(2, args.repeats // 5))
        report("reload smollm2-135m", kit, plain, "transformers from_pretrained, same folder", goal_ratio=1.5,
               goal_s=3.0)

    tiny = load_model("tiny-llama")
    data = datasets.Dataset.from_dict({"instruction": ["Who keeps the north light?", "Name the ferry."] * 4,
                                       "answer": ["Maren Holt", "The Gull"] * 4})
    explorer = method_explorer("tiny-llama", model=tiny[0], tokenizer=tiny[1], train_data=data)
    ranks = iter([2, 4, 8, 16, 32] * (args.repeats + 1))
    update = median_s(lambda: setattr(explorer.rank, "value", next(ranks)), 2 * args.repeats)
    estimate = explorer._predict()
    build = median_s(lambda: plots.memory_breakdown(estimate), 2 * args.repeats)  # one plotly figure, from numbers

    config = meters.KNOWN_CONFIGS["meta-llama/Llama-3.1-8B"]
    predict = median_s(lambda: meters.predict_memory(config, "qlora", rank=16, batch_size=2, seq_len=512),
                       10 * args.repeats)
    report("predict_memory (8B)", predict, update, "one explorer update (tiny-llama)", goal_ratio=0.5, goal_s=0.010)
    # An update predicts, builds that figure, copies it into the FigureWidget and writes the readout: the figure
    # should dominate.
    report("explorer update", update, build, "building its memory figure", goal_ratio=3.0, goal_s=0.5)

    explorer.rank.value, explorer.seq_len.value = 4, 64
    start = time.perf_counter()
    explorer.train_now(2)
    trained = time.perf_counter() - start
    explorer.rank.value = 16
    start = time.perf_counter()
    explorer.rank.value = 4  # back to the stored run
    recall = time.perf_counter() - start
    report("recall a stored run", recall, trained, "training that run (2 steps)", goal_ratio=0.1, goal_s=1.0)


if __name__ == "__main__":
    main()
