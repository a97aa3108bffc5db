"""The LoRA designer: pick a method, rank, scale rule, targets and init; see the count, bytes and memory live, and
once trained, the spectrum of that run's update."""

from __future__ import annotations

from ...core import LabkitError
from .sweeps import SCALE_RULES, Budget, lora_scale, scale_settings, train_run

DESIGNER_METHODS = ("lora", "dora", "adalora", "vera", "loha", "lokr")  # methods with a rank and chosen targets
INITS = ("default", "gaussian", "pissa_niter_4", "olora")  # LoRA/DoRA only
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraDesigner:
    """Controls, a live readout and a FigureWidget; ``train_now`` trains the design and draws its ΔW spectrum."""

    def __init__(self, config, *, base=None, tokenizer=None, train_data=None, eval_data=None,
                 budget: Budget | None = None, batch_size: int = 4, seq_len: int = 64):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.config, self.base, self.tokenizer = config, base, tokenizer
        self.train_data, self.eval_data = train_data, eval_data
        self.budget = budget or Budget(num_steps=5, batch_size=batch_size, seq_len=seq_len)
        self.method = w.Dropdown(options=list(DESIGNER_METHODS), value="lora", description="method")
        self.rank = w.IntSlider(value=8, min=1, max=128, description="rank", continuous_update=False)
        self.rule = w.Dropdown(options=list(SCALE_RULES), value="alpha = 2r", description="α rule")
        self.targets = w.SelectMultiple(options=list(LINEARS), value=["q_proj", "v_proj"], description="targets",
                                        rows=len(LINEARS))
        self.init = w.Dropdown(options=list(INITS), value="default", description="init")
        self.button = w.Button(description="train this design", button_style="primary", icon="play")
        self.readout, self.status = w.HTML(), w.HTML()
        self.runs: dict[str, object] = {}
        self.figure = go.FigureWidget()
        self.figure.update_layout(height=320, title="ΔW spectrum of the last trained design (train to see it)",
                                  xaxis={"type": "log", "title": "index i"}, yaxis={"type": "log", "title": "σ_i / σ_1"})
        for control in (self.method, self.rank, self.rule, self.targets, self.init):
            control.observe(lambda _: self.refresh(), names="value")
        self.button.on_click(lambda _: self.train_now())
        controls = w.VBox([self.method, self.rank, self.rule, self.targets, self.init, self.button, self.status])
        self.widget = w.VBox([w.HBox([controls, self.readout]), self.figure])
        self.refresh()

    def settings(self) -> dict:
        """The apply_method settings the controls describe."""
        name, rank, targets = self.method.value, self.rank.value, list(self.targets.value)
        if not targets:
            raise LabkitError("Pick at least one target layer.")
        if name in ("lora", "dora"):
            extra = {} if self.init.value == "default" else {"init": self.init.value}
            return {**scale_settings(self.rule.value, rank), "target_modules": targets, **extra}
        if name == "adalora":
            return {"rank": rank, "target_rank": max(1, rank // 2), "target_modules": targets}
        if name in ("loha", "lokr"):
            return {"rank": rank, "alpha": 2.0 * rank if self.rule.value == "alpha = 2r" else 16.0,
                    "target_modules": targets}
        return {"rank": rank, "target_modules": targets}  # VeRA

    def predict(self) -> dict:
        """Trainable count, stored bytes and predicted training memory of the current design (from the config)."""
        from ... import meters

        settings = self.settings()
        count = meters.analytic_trainable_params(self.config, self.method.value, **settings)
        est = meters.predict_memory(self.config, self.method.value, batch_size=self.budget.batch_size,
                                    seq_len=self.budget.seq_len, **settings)
        return {"trainable": count, "stored_bytes": meters.analytic_storage_bytes(self.config, self.method.value,
                                                                                  **settings),
                "predicted_gib": est.total_gib, "scale": lora_scale(self.rule.value, self.rank.value)
                if self.method.value in ("lora", "dora") else None}

    def refresh(self) -> None:
        """Redraw the readout for the current controls (also called by every control)."""
        try:
            p = self.predict()
        except LabkitError as err:
            self.readout.value = f'<span class="lk-error">{err}</span>'
            return
        scale = "" if p["scale"] is None else f"<br>scale α/r: <b>{p['scale']:.3g}</b>"
        self.readout.value = (f"<b>{self.method.value}</b><br>trainable: <b>{p['trainable']:,}</b><br>"
                              f"stored (fp32): <b>{p['stored_bytes'] / 2**20:.2f} MiB</b><br>"
                              f"predicted training memory: <b>{p['predicted_gib']:.2f} GiB</b>{scale}")

    def train_now(self):
        """Train the current design for the budget's steps and draw the spectrum of its ΔW (None if refused)."""
        from .spectrum import linear_weights, spectra, weight_deltas

        if self.base is None or self.train_data is None:
            self.status.value = '<span class="lk-error">give the designer base=, tokenizer= and train_data=</span>'
            return None
        settings, name = self.settings(), self.method.value
        targets = settings["target_modules"]
        try:
            before = linear_weights(self.base, targets)
            run = train_run(self.base, self.tokenizer, name, settings, self.train_data, self.eval_data, self.budget,
                            label=f"{name} r={self.rank.value}", keep=True)
        except LabkitError as err:
            self.status.value = f'<span class="lk-error">{err}</span>'
            return None
        table, values = spectra(weight_deltas(run.model, before))
        run.model = None  # keep the numbers, not the weights
        module = table.sort_values("frobenius").iloc[-1]["module"]  # the most-changed layer
        s = values[module]
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_scatter(x=list(range(1, len(s) + 1)), y=[v / s[0] for v in s] if s[0] else s,
                                    mode="lines", name=module)
            self.figure.layout.title = (f"{run.label}: ΔW of {module}, effective rank "
                                        f"{int(table.set_index('module').loc[module, 'effective_rank'])}")
        self.runs[run.label] = {"run": run, "spectra": table}
        self.status.value = f"trained {run.label}: held-out loss {run.row['eval_loss']:.3f}"
        return table

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
