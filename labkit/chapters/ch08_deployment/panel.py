"""The serving panel: concurrency, max new tokens, quantization and merged-or-adapters; predicted latency and
memory follow each change, and "measure" runs a short load test on the running server and adds the point.

>>> panel = serving_panel(ServingCosts(prefill_s=0.07, decode_s_per_token=0.03, weight_mib=513))  # doctest: +SKIP
>>> panel.concurrency.value = 4; panel.prediction  # doctest: +SKIP
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ...core import LabkitError


@dataclass
class ServingCosts:
    """What the predictions are built from, all measured earlier in the same run."""

    prefill_s: float  # one request's prefill, batch 1 (latency.anatomy)
    decode_s_per_token: float  # one request's decode step, batch 1, KV cache on
    weight_mib: float  # the served model's weights in MiB
    prompt_tokens: int = 40  # tokens of a typical prompt
    kv_bytes_per_token: int = 0  # latency.kv_bytes_per_token(config)
    int8_decode_ratio: float = 1.0  # int8 decode time / fp32 decode time (quant.compare_int8)
    int8_weight_mib: float | None = None  # int8 weights in MiB (quant.compare_int8)
    adapter_ratio: float = 1.0  # mixed-batch adapters time / merged time (adapters.compare_serving)
    adapter_mib: float = 0.0  # extra MiB for the adapters

    def __post_init__(self):
        for name in ("prefill_s", "decode_s_per_token", "weight_mib", "int8_decode_ratio", "adapter_ratio"):
            if not getattr(self, name) > 0:
                raise LabkitError(f"{name} must be positive, got {getattr(self, name)!r}: pass the figures measured "
                                  "earlier in the lab.")


def predict(costs: ServingCosts, *, concurrency: int, max_tokens: int, int8: bool, adapters: bool) -> dict:
    """Predicted p95 latency (a plain server answers one request at a time: the last of c waits for all) and memory."""
    if not isinstance(concurrency, int) or concurrency < 1 or not isinstance(max_tokens, int) or max_tokens < 1:
        raise LabkitError(f"concurrency and max_tokens must be whole numbers >= 1, got {concurrency!r}, {max_tokens!r}.")
    decode = costs.decode_s_per_token * (costs.int8_decode_ratio if int8 else 1.0)
    one_s = (costs.prefill_s + max_tokens * decode) * (costs.adapter_ratio if adapters else 1.0)
    weights = (costs.int8_weight_mib or costs.weight_mib) if int8 else costs.weight_mib
    kv_mib = costs.kv_bytes_per_token * concurrency * (costs.prompt_tokens + max_tokens) / 2**20
    return {"one_request_s": float(one_s), "p95_s": float(concurrency * one_s), "requests_per_s": float(1 / one_s),
            "memory_mib": float(weights + (costs.adapter_mib if adapters else 0.0) + kv_mib), "kv_mib": float(kv_mib)}


class ServingPanel:
    """Controls; the predicted p95-vs-concurrency line and the memory follow; measured points are added on demand."""

    def __init__(self, costs: ServingCosts, server=None):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.costs, self.server, self.measured = costs, server, []
        self.concurrency = w.IntSlider(value=1, min=1, max=8, description="concurrency")
        self.max_tokens = w.IntSlider(value=16, min=1, max=128, description="max tokens")
        self.quantization = w.ToggleButtons(options=["fp32", "int8"], value="fp32", description="weights")
        self.merged = w.ToggleButtons(options=["merged", "adapters"], value="merged", description="serve")
        self.button = w.Button(description="measure", tooltip="a short load test on the running server")
        self.button.on_click(lambda _: self.measure())
        self.message = w.HTML()
        self.figure = go.FigureWidget()
        for control in (self.concurrency, self.max_tokens, self.quantization, self.merged):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.concurrency, self.max_tokens]), w.HBox([self.quantization, self.merged]),
                              self.button, self.message, self.figure])
        self.update()

    def _settings(self, concurrency=None) -> dict:
        return {"concurrency": concurrency or self.concurrency.value, "max_tokens": self.max_tokens.value,
                "int8": self.quantization.value == "int8", "adapters": self.merged.value == "adapters"}

    def update(self) -> None:
        """Recompute the prediction for the controls and redraw."""
        import plotly.graph_objects as go

        from ...plots.live import refresh_figure

        self.prediction = predict(self.costs, **self._settings())
        levels = list(range(1, 9))
        line = [predict(self.costs, **self._settings(c))["p95_s"] for c in levels]
        fig = go.Figure(go.Scatter(x=levels, y=line, mode="lines", name="predicted p95"))
        fig.add_trace(go.Scatter(x=[self.concurrency.value], y=[self.prediction["p95_s"]], mode="markers",
                                 marker={"size": 12}, name="your setting"))
        same = [m for m in self.measured if m["max_tokens"] == self.max_tokens.value]
        if same:
            fig.add_trace(go.Scatter(x=[m["concurrency"] for m in same], y=[m["p95_s"] for m in same],
                                     mode="markers", marker={"symbol": "x", "size": 12}, name="measured p95"))
        fig.update_layout(height=320, xaxis_title="concurrency", yaxis_title="p95 latency (s)",
                          title="Predicted from this run's anatomy; x = measured on the server")
        refresh_figure(self.figure, fig)
        p = self.prediction
        self.message.value = html.escape(
            f"predicted: one request {p['one_request_s']:.2f} s, p95 {p['p95_s']:.2f} s, {p['requests_per_s']:.1f} "
            f"requests/s; memory {p['memory_mib']:.0f} MiB (KV cache {p['kv_mib']:.1f} MiB)")

    def measure(self, requests: int | None = None) -> dict | None:
        """A short load test at the current concurrency and max tokens on ``self.server``; adds the measured point."""
        from .load import load_test

        if self.server is None or not self.server.running:
            self.message.value = "No running server: set panel.server inside `with Server(folder) as server:`."
            return None
        if self.quantization.value != "fp32" or self.merged.value != "merged":
            self.message.value = "The running server serves the merged fp32 model: set weights=fp32, serve=merged."
            return None
        c = self.concurrency.value
        row = load_test(self.server, [c], requests=requests or 2 * c, max_tokens=self.max_tokens.value,
                        time_cap_s=60.0).iloc[0].to_dict()
        point = {"concurrency": c, "max_tokens": self.max_tokens.value, "p95_s": row["p95_s"],
                 "predicted_p95_s": predict(self.costs, **self._settings())["p95_s"]}
        self.measured.append(point)
        self.update()
        return point

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def serving_panel(costs: ServingCosts, server=None) -> ServingPanel:
    """The panel; drive it from code by setting control values and calling measure()."""
    return ServingPanel(costs, server)
