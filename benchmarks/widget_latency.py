"""Median time of one analytic update of the method explorer (goal: <= 100 ms on the CPU).

An update is what happens when a learner moves a control: trainable parameters, predicted memory and cost are
recomputed from the model config (no model is touched) and the readout and memory FigureWidget are redrawn.

    python benchmarks/widget_latency.py            # smollm2-135m, 50 updates
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--updates", type=int, default=50)
    args = parser.parse_args()

    from labkit.widgets import method_explorer

    start = time.perf_counter()
    explorer = method_explorer(args.model)
    print(f"explorer built in {time.perf_counter() - start:.2f} s ({args.model})")
    ranks = [4, 8, 16, 32, 64]
    times_s = []
    for i in range(args.updates):
        if i % 10 == 9:  # now and then a different kind of change
            explorer.method.value = "adapter" if explorer.method.value == "lora" else "lora"
        t0 = time.perf_counter()
        explorer.rank.value = ranks[i % len(ranks)] if explorer.rank.value != ranks[i % len(ranks)] else 2
        times_s.append(time.perf_counter() - t0)
    median_ms = 1000 * statistics.median(times_s)
    print(f"updates: {len(times_s)}, p90 {1000 * sorted(times_s)[int(0.9 * len(times_s))]:.1f} ms")
    print(f"median_update_ms: {median_ms:.1f}")


if __name__ == "__main__":
    main()
