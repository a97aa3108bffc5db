"""A bounded load test on 127.0.0.1: a fixed number of requests per concurrency level and a time cap; throughput
against p50/p95 latency, the knee of the curve, and the concurrency that meets a p95 target.

>>> table = load_test(server, [1, 2, 4, 8], requests=16, max_tokens=16)  # doctest: +SKIP
>>> knee(table), concurrency_for_p95(table, target_s=2.0)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from ...core import LabkitError
from .server import HOST

MAX_REQUESTS = 256  # per concurrency level: a load test here is a measurement, never a flood
MAX_CONCURRENCY = 32
PROMPTS = ("What is the capital of France?", "Sort alphabetically: egg, cave, glide.", "Name a primary colour.",
           "What is 12 plus 7?", "Give the opposite of 'cold'.", "Spell 'cat' backwards.")


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def load_level(server, concurrency: int, *, requests: int, max_tokens: int, time_cap_s: float) -> dict:
    """Send ``requests`` chat requests, ``concurrency`` at a time; requests not started before the cap are skipped."""
    deadline = time.perf_counter() + time_cap_s
    client = server.client(timeout_s=time_cap_s)

    def one(i: int):
        if time.perf_counter() > deadline:
            return None
        begin = time.perf_counter()
        try:
            out = client.chat.completions.create(model=server.model_id, max_tokens=max_tokens, temperature=0.0,
                                                 messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}])
        except Exception:  # noqa: BLE001 - a failed or timed-out request counts as an error, not a crash
            return "error"
        return time.perf_counter() - begin, (out.usage.completion_tokens if out.usage else 0)

    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall_s = time.perf_counter() - begin
    done = [r for r in results if isinstance(r, tuple)]
    latencies = [r[0] for r in done]
    tokens = sum(r[1] for r in done)
    return {"continuous_batching": server.continuous_batching, "concurrency": concurrency, "sent": requests,
            "done": len(done), "errors": sum(r == "error" for r in results), "skipped": results.count(None),
            "wall_s": wall_s, "requests_per_s": len(done) / wall_s, "tokens_per_s": tokens / wall_s,
            "p50_s": _percentile(latencies, 50), "p95_s": _percentile(latencies, 95)}


def load_test(server, concurrencies=(1, 2, 4, 8), *, requests: int = 16, max_tokens: int = 16,
              time_cap_s: float = 60.0):
    """One load_level per concurrency, on a running server on 127.0.0.1; a DataFrame, one row per level."""
    import pandas as pd

    if urlparse(server.base_url).hostname != HOST:
        raise LabkitError(f"The load test targets only {HOST}: start the server with Server(folder), which binds there.")
    if not server.running:
        raise LabkitError("The server is not running: run the load test inside `with Server(folder) as server:`.")
    levels = list(concurrencies)
    if not levels or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_CONCURRENCY for c in levels):
        raise LabkitError(f"concurrencies must be whole numbers from 1 to {MAX_CONCURRENCY}, got {concurrencies!r}.")
    if not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise LabkitError(f"requests must be a whole number from 1 to {MAX_REQUESTS} per level, got {requests!r}.")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise LabkitError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}.")
    if not time_cap_s > 0:
        raise LabkitError(f"time_cap_s must be positive seconds per level (try 60), got {time_cap_s!r}.")
    load_level(server, 1, requests=1, max_tokens=max_tokens, time_cap_s=time_cap_s)  # warm-up, not counted
    rows = [load_level(server, c, requests=requests, max_tokens=max_tokens, time_cap_s=time_cap_s) for c in levels]
    return pd.DataFrame(rows)


def knee(table, *, min_gain: float = 0.15) -> int:
    """The concurrency after which more concurrency adds less than ``min_gain`` throughput (or the largest tried)."""
    rows = table.sort_values("concurrency")
    levels, rates = list(rows["concurrency"]), list(rows["requests_per_s"])
    if not levels:
        raise LabkitError("The load-test table is empty: run load_test(server, ...) first.")
    for i in range(len(levels) - 1):
        if rates[i + 1] < rates[i] * (1 + min_gain):
            return int(levels[i])
    return int(levels[-1])


def concurrency_for_p95(table, target_s: float) -> int | None:
    """The highest concurrency whose measured p95 latency is within ``target_s`` (None if none is)."""
    if not target_s > 0:
        raise LabkitError(f"target_s must be positive seconds, got {target_s!r}.")
    ok = table[table["p95_s"] <= target_s]
    return int(ok["concurrency"].max()) if len(ok) else None


def plot_load(table):
    """Throughput against p50/p95 latency, one line per server mode, labelled by concurrency."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for cb, part in table.groupby("continuous_batching"):
        part = part.sort_values("concurrency")
        name = "continuous batching" if cb else "plain"
        for stat, dash in (("p50_s", "dot"), ("p95_s", "solid")):
            fig.add_trace(go.Scatter(x=part[stat], y=part["requests_per_s"], mode="lines+markers+text",
                                     text=[f"c={c}" for c in part["concurrency"]], textposition="top center",
                                     name=f"{name} {stat[:3]}", line={"dash": dash}))
    fig.update_layout(xaxis_title="latency per request (s)", yaxis_title="throughput (requests/s)", height=380,
                      title="Under load: throughput against latency")
    return fig
