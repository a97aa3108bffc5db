"""The compression panel: bits, group size, salient-channel share, sparsity pattern and level. Each setting's
predicted bits per weight and measured perplexity (measured once, then cached) land on one Pareto plot."""

from __future__ import annotations

from ...core import LabkitError
from .pruning import layer_mask
from .rtn import SCALE_BITS, fake_quantize, linear_layers, perplexity, replaced_weights
from .salience import salient_channels

PATTERNS = ("none", "unstructured", "2:4")
FLOAT_BITS = 32


def predicted_setting_bits(bits: int | None, group: int, share: float, pattern: str, level: float) -> float:
    """Bits per weight of a setting: codes + a float16 scale and a zero point per group, salient channels in
    float16, and for sparsity only the kept weights plus where they are (a 1-bit mask per weight for unstructured,
    2 bits per kept weight for 2:4 as NVIDIA's sparse tensor cores store it)."""
    if pattern not in PATTERNS:
        raise LabkitError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}.")
    if not 0 <= level < 1:
        raise LabkitError(f"level (the sparsity) must be in [0, 1), got {level!r}.")
    dense = FLOAT_BITS if bits is None else bits + (SCALE_BITS + bits) / group
    dense = (1 - share) * dense + share * 16 if bits is not None else dense
    if pattern == "none" or (pattern == "unstructured" and level == 0):
        return dense
    if pattern == "2:4":
        return 0.5 * dense + 0.5 * 2
    return (1 - level) * dense + 1


class CompressionPanel:
    """Widgets + a FigureWidget; ``measure()`` (or moving a control) evaluates the current setting."""

    def __init__(self, model, tokenizer, data, calib, *, layers=None, seq_len: int = 128, auto: bool = True):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.model, self.tokenizer, self.data, self.calib = model, tokenizer, data, calib
        self.layers, self.seq_len, self.cache = layers, seq_len, {}
        self.bits = w.Dropdown(options=[("float32", 0), *[(f"{b} bits", b) for b in (8, 6, 4, 3, 2)]], value=4,
                               description="bits")
        self.group = w.Dropdown(options=[32, 64, 96, 192], value=64, description="group")  # divide 576 and 1536
        self.share = w.Dropdown(options=[("0%", 0.0), ("1%", 0.01), ("5%", 0.05)], value=0.0, description="salient")
        self.pattern = w.Dropdown(options=PATTERNS, value="none", description="sparsity")
        self.level = w.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.1, description="level")
        self.status = w.HTML()
        self.figure = go.FigureWidget(go.Figure(layout={
            "title": "Predicted size against measured perplexity", "xaxis_title": "bits per weight (predicted)",
            "yaxis_title": "perplexity (log)", "yaxis_type": "log", "height": 380}))
        self.figure.add_scatter(x=[], y=[], mode="markers", name="measured settings", text=[])
        self.figure.add_scatter(x=[], y=[], mode="markers", name="current", marker={"size": 14, "symbol": "star"})
        if auto:
            for control in (self.bits, self.group, self.share, self.pattern, self.level):
                control.observe(lambda _: self.measure(), names="value")
        self.widget = w.VBox([w.HBox([self.bits, self.group, self.share]), w.HBox([self.pattern, self.level]),
                              self.status, self.figure])

    @property
    def setting(self) -> tuple:
        level = self.level.value if self.pattern.value == "unstructured" else (0.5 if self.pattern.value == "2:4"
                                                                              else 0.0)
        return (self.bits.value or None, self.group.value, self.share.value, self.pattern.value, round(level, 2))

    def _weight(self, name, m):
        bits, group, share, pattern, level = self.setting
        w = m.weight.data
        if pattern != "none" and level > 0:
            w = w * layer_mask(w, "wanda", (2, 4) if pattern == "2:4" else level, self.calib.norm[name])
        if bits is not None:
            q = fake_quantize(w, bits, "zeropoint", group)
            if share > 0:
                keep = salient_channels(self.calib.mean_abs[name], share)
                q[:, keep] = w[:, keep]
            w = q
        return w

    def measure(self) -> dict:
        """Perplexity and predicted bits of the current setting (from the cache when measured before)."""
        key = self.setting
        if key not in self.cache:
            with replaced_weights(linear_layers(self.model, self.layers), self._weight):
                ppl = perplexity(self.model, self.tokenizer, self.data, seq_len=self.seq_len)
            self.cache[key] = {"predicted_bits": predicted_setting_bits(*key), "perplexity": ppl}
        point = self.cache[key]
        labels = [self.label(k) for k in self.cache]
        with self.figure.batch_update():
            self.figure.data[0].x = [v["predicted_bits"] for v in self.cache.values()]
            self.figure.data[0].y = [v["perplexity"] for v in self.cache.values()]
            self.figure.data[0].text = labels
            self.figure.data[1].x, self.figure.data[1].y = [point["predicted_bits"]], [point["perplexity"]]
        self.status.value = (f"<b>{self.label(key)}</b>: {point['predicted_bits']:.2f} bits per weight predicted, "
                             f"perplexity {point['perplexity']:.2f} measured ({len(self.cache)} settings cached)")
        return point

    @staticmethod
    def label(key) -> str:
        bits, group, share, pattern, level = key
        q = "float32" if bits is None else f"{bits}-bit g{group}" + (f" +{share:.0%} salient" if share else "")
        return q + ("" if pattern == "none" else f", {pattern} {level:.0%}")

    def table(self):
        import pandas as pd

        return pd.DataFrame([{"setting": self.label(k), **v} for k, v in self.cache.items()]).set_index("setting")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def compression_panel(model, tokenizer, data, calib, *, layers=None, seq_len: int = 128) -> CompressionPanel:
    """The panel, with the default setting measured once."""
    panel = CompressionPanel(model, tokenizer, data, calib, layers=layers, seq_len=seq_len)
    panel.measure()
    return panel
