"""The cheap-first ladder (probe -> LoRA -> partial -> full): run classifiers, then walk the measured results.

>>> run = run_classifier("lora", intents["train"].select(range(200)), {"test": intents["test"]})  # doctest: +SKIP
>>> walk_ladder(results, data_size=200, eval_set="shift")  # doctest: +SKIP
>>> ladder_widget(results)  # doctest: +SKIP
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from ...core import LabkitError, fast_mode

RUNGS = ("probe", "lora", "partial", "full")  # cheapest first: the order the chapter's mini-procedure climbs
RUNG_ABOUT = {
    "probe": "frozen model, a logistic-regression head on its features",
    "lora": "low-rank updates on the attention projections, plus a head",
    "partial": "the lowest blocks frozen, the top blocks and a head train",
    "full": "every weight trains, plus a head",
}
SETUPS = ("lora", "partial", "full")  # what run_classifier trains (the probe rung is fitted with probes.fit_probe)
# Per setup of this ladder, not per method: each setup trains a new classification head along with its own part,
# so these differ from the registry's default_lr (language-model answers). Measured: SmolLM2, the intents, 40 steps.
SETUP_LR = {"lora": 1e-3, "partial": 3e-4, "full": 1e-4}


@dataclass
class ClassifierRun:
    """One measured fine-tuning run of an intent classifier."""

    row: dict  # label, setup, trainable_params, time_per_step_s, train_time_s, final_loss, <eval>_accuracy...
    result: object  # the TrainResult of lk.train (history, tokens/s, peak memory)
    model: object = field(default=None, repr=False)  # the trained classifier when keep_model=True, else None


def run_classifier(setup: str, train_data, eval_sets: dict, *, model_name: str = "smollm2-135m",
                   freeze_k: int | None = None, lora_layers=None, rank: int = 8,
                   target_modules=("q_proj", "v_proj"), num_steps: int = 20,
                   batch_size: int = 8, seq_len: int = 64, lr: float | None = None, eval_limit: int | None = None,
                   label: str | None = None, keep_model: bool = False, progress: bool = True,
                   seed: int = 0) -> ClassifierRun:
    """Load a fresh model, set it up ("lora", "partial" with ``freeze_k``, "full"), add a head, train, evaluate.

    LoRA goes on ``target_modules`` (rank ``rank``, alpha 2 x rank) of every block, or of the blocks in
    ``lora_layers``. Accuracy is measured on every set in ``eval_sets``. ``seed`` fixes the new head and the batches.

    >>> run = run_classifier("partial", train, {"test": test}, freeze_k=24, num_steps=40)  # doctest: +SKIP
    >>> run.row["test_accuracy"], run.row["trainable_params"]  # doctest: +SKIP
    """
    from ...data import INTENT_LABELS
    from ...meters import param_summary
    from ...methods import apply_method
    from ...methods.linear_probe import add_classifier_head
    from ...models import load_model
    from ...training import evaluate_loss, train
    from . import probes

    if setup not in SETUPS:
        raise LabkitError(f"Unknown setup {setup!r}: use one of {', '.join(SETUPS)} (the probe rung needs no "
                          "training loop: use probes.fit_probe).")
    if (setup == "partial") != (freeze_k is not None):
        raise LabkitError("freeze_k goes with setup='partial' only: e.g. run_classifier('partial', ..., freeze_k=24).")
    if lora_layers is not None and setup != "lora":
        raise LabkitError("lora_layers goes with setup='lora' only.")
    model, tokenizer = load_model(model_name)
    if setup == "lora":
        lora = {"rank": rank, "alpha": 2.0 * rank, "target_modules": list(target_modules)}
        model = (apply_method(model, "lora", **lora) if lora_layers is None
                 else probes.lora_on_layers(model, lora_layers, **lora))
    elif setup == "partial":
        model = probes.freeze_lowest(model, freeze_k)
    else:
        model = apply_method(model, "full")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same head for every run, wherever it sits in a notebook
        clf = add_classifier_head(model, list(INTENT_LABELS))
    label = label or setup
    result = train(clf, tokenizer, train_data, objective="classification", num_steps=num_steps,
                   batch_size=batch_size, seq_len=seq_len, lr=lr or SETUP_LR[setup], live_plot=False,
                   progress=progress, label=label, seed=seed)
    limit = eval_limit if eval_limit is not None else (48 if fast_mode() else None)
    row = {"label": label, "setup": setup, "train_size": len(train_data),
           "trainable_params": param_summary(clf).trainable, "time_per_step_s": result.time_per_step_s,
           "train_time_s": result.time_s, "final_loss": result.final_loss}
    for name, data in eval_sets.items():
        row[f"{name}_accuracy"] = evaluate_loss(clf, tokenizer, data, objective="classification", seq_len=seq_len,
                                                limit=limit, batch_size=32)["eval_accuracy"]
    return ClassifierRun(row=row, result=result, model=clf if keep_model else None)


def probe_rung(feats: dict, labels: dict, *, layer: int, size: int, feature_time_s: float) -> dict:
    """The probe rung at one data size: a scikit-learn probe on the first ``size`` cached training features.

    ``feats`` and ``labels`` map set names to LayerFeatures and label lists; "train" is fitted, every other set is
    scored. The cost is the fit time plus the share of ``feature_time_s`` (the measured forward pass over all
    training messages) that ``size`` messages take.

    >>> probe_rung(feats, labels, layer=20, size=50, feature_time_s=feats["train"].time_s)  # doctest: +SKIP
    """
    import time

    import numpy as np

    from .probes import fit_probe

    total = len(labels["train"])
    if not 0 < size <= total:
        raise LabkitError(f"size must be between 1 and the {total} cached training messages, got {size}.")
    start = time.perf_counter()
    probe = fit_probe(feats["train"][layer][:size], list(labels["train"][:size]))
    fit_time_s = time.perf_counter() - start
    clf = probe[-1]
    row = {"rung": "probe", "data_size": size, "trainable_params": int(clf.coef_.size + clf.intercept_.size),
           "train_time_s": fit_time_s + feature_time_s * size / total}
    for name in feats:
        if name != "train":
            row[f"{name}_accuracy"] = float(np.mean(probe.predict(feats[name][layer]) == np.asarray(labels[name])))
    return row


def rung_row(rung: str, size: int, run: ClassifierRun) -> dict:
    """One ladder row from a measured fine-tuning run."""
    if rung not in RUNGS:
        raise LabkitError(f"Unknown rung {rung!r}: use one of {', '.join(RUNGS)}.")
    return {"rung": rung, "data_size": size, **run.row}


def ladder_table(rows: list[dict]):
    """The ladder's results as a DataFrame: by data size, cheapest rung first, with the columns the walk needs."""
    import pandas as pd

    table = pd.DataFrame(rows)
    _check_results(table)
    accuracy = [c for c in table.columns if c.endswith("_accuracy")]
    table["order"] = table["rung"].map({r: i for i, r in enumerate(RUNGS)})
    table = table.sort_values(["data_size", "order"]).reset_index(drop=True)
    return table[["rung", "data_size", "trainable_params", "train_time_s", *accuracy]]


def _check_results(results):
    need = {"rung", "data_size", "trainable_params", "train_time_s"}
    missing = need - set(results.columns)
    if missing:
        raise LabkitError(f"The ladder results need columns {sorted(need)} plus '<eval>_accuracy'; "
                          f"missing {sorted(missing)}.")


def walk_ladder(results, data_size: int, *, eval_set: str = "test", tolerance: float = 0.02):
    """Climb probe -> lora -> partial -> full for one data size; stop at the first rung within ``tolerance``
    of the best accuracy measured at that size. Returns a DataFrame with a ``verdict`` per rung.

    >>> walk_ladder(results, 200, eval_set="shift", tolerance=0.05)  # doctest: +SKIP
    """
    _check_results(results)
    column = f"{eval_set}_accuracy"
    if column not in results.columns:
        sets = [c.removesuffix("_accuracy") for c in results.columns if c.endswith("_accuracy")]
        raise LabkitError(f"No {column!r} column: eval_set must be one of {sets}.")
    sizes = sorted(int(s) for s in results["data_size"].unique())
    if data_size not in sizes:
        raise LabkitError(f"No runs with data_size={data_size}: measured sizes are {sizes}.")
    if not 0 <= tolerance < 1:
        raise LabkitError(f"tolerance is an accuracy gap between 0 and 1 (e.g. 0.02), got {tolerance!r}.")
    rows = results[results["data_size"] == data_size].set_index("rung")
    order = [r for r in RUNGS if r in rows.index]
    walk = rows.loc[order, ["trainable_params", "train_time_s", column]].rename(columns={column: "accuracy"})
    walk = walk.reset_index()
    target = walk["accuracy"].max() - tolerance
    verdicts, stopped = [], False
    for acc in walk["accuracy"]:
        if stopped:
            verdicts.append("not needed")
        elif acc >= target - 1e-12:
            verdicts.append("stop here")
            stopped = True
        else:
            verdicts.append("climb")
    walk["target"] = target
    walk["verdict"] = verdicts
    return walk


def recommendation(walk) -> str:
    """One sentence on where the walk stopped and what it saved, from a walk_ladder table."""
    stop = walk[walk["verdict"] == "stop here"].iloc[0]
    most = walk["trainable_params"].max()
    return (f"Stop at {stop['rung']}: accuracy {stop['accuracy']:.3f} (target {stop['target']:.3f}) with "
            f"{int(stop['trainable_params']):,} trainable parameters ({100 * stop['trainable_params'] / most:.3g}% "
            f"of the most expensive rung) and {stop['train_time_s']:.1f} s of training.")


class LadderWidget:
    """Pick a data size, the eval set and a tolerance; the ladder walk, its chart and a recommendation follow."""

    def __init__(self, results, *, eval_labels: dict | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go

        from ... import plots

        _check_results(results)
        self.results = results
        sets = [c.removesuffix("_accuracy") for c in results.columns if c.endswith("_accuracy")]
        labels = eval_labels or {}
        sizes = sorted(int(s) for s in results["data_size"].unique())
        self.data_size = w.Dropdown(options=sizes, value=sizes[-1], description="data size")
        self.eval_set = w.ToggleButtons(options=[(labels.get(s, s), s) for s in sets], value=sets[0],
                                        description="evaluate on")
        self.tolerance = w.FloatSlider(value=0.02, min=0.0, max=0.2, step=0.01, description="tolerance",
                                       continuous_update=False, readout_format=".2f")
        self.message = w.HTML()
        self.table = w.HTML()
        self.walk = walk_ladder(results, self.data_size.value, eval_set=self.eval_set.value,
                                tolerance=self.tolerance.value)
        self.figure = go.FigureWidget(plots.ladder_figure(self.walk))
        for control in (self.data_size, self.eval_set, self.tolerance):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.data_size, self.tolerance]), self.eval_set, self.message, self.figure,
                              self.table])
        self.update()

    def update(self) -> None:
        """Walk the ladder for the current controls and redraw."""
        from ... import plots
        from ...plots.live import refresh_figure

        self.walk = walk_ladder(self.results, self.data_size.value, eval_set=self.eval_set.value,
                                tolerance=self.tolerance.value)
        refresh_figure(self.figure, plots.ladder_figure(self.walk))
        self.message.value = f"<b>{html.escape(recommendation(self.walk))}</b>"
        shown = self.walk.assign(about=[RUNG_ABOUT.get(r, "") for r in self.walk["rung"]])
        self.table.value = shown.to_html(index=False, float_format=lambda x: f"{x:.3f}", classes="lk-ladder")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def ladder_widget(results, **kwargs) -> LadderWidget:
    """The mini-procedure as a widget over measured results (columns rung, data_size, trainable_params,
    train_time_s and ``<eval>_accuracy``).

    >>> panel = ladder_widget(results, eval_labels={"test": "in-domain test", "shift": "domain shift"})  # doctest: +SKIP
    >>> panel.data_size.value = 50  # the walk, chart and recommendation update  # doctest: +SKIP
    """
    return LadderWidget(results, **kwargs)
