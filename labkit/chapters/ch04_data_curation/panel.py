"""The curation panel: sliders for the dedup threshold, the filter strictness and the selection fraction, and a
selector. It shows, live, what each stage keeps and drops (with examples, scored against the ground truth) and the
predicted cost of training on what is left; "train" measures the quality and the real time.

>>> panel = curation_panel(raw, test, truth, scores=pool_scores, runner=runner, eval_sets=evals)  # doctest: +SKIP
>>> panel.threshold.value = 0.5  # the figure, the table and the cost follow  # doctest: +SKIP
"""

from __future__ import annotations

import html

from ...core import LabkitError
from .cleaning import STAGES, add_minhash, clean, truth_map
from .selection import SELECTORS, PoolScores, select, subset


def curate(raw, test, truth, *, kind: str, scores: PoolScores, threshold: float, strictness: float, fraction: float,
           selector: str, minhashed=None):
    """(CleanResult, selected ids): the pipeline at these settings, then ``selector`` at ``fraction`` of the kept rows
    that have scores."""
    result = clean(raw, test, truth, kind=kind, threshold=threshold, strictness=strictness, minhashed=minhashed)
    kept = set(result.clean["id"])
    idx = [i for i, row_id in enumerate(scores.ids) if row_id in kept]
    if not idx:
        raise LabkitError("None of the scored rows survive these settings: loosen the threshold or the strictness.")
    pool = PoolScores(ids=[scores.ids[i] for i in idx], loss_with=[scores.loss_with[i] for i in idx],
                      loss_without=[scores.loss_without[i] for i in idx],
                      answer_chars=[scores.answer_chars[i] for i in idx],
                      hidden=scores.hidden[idx] if scores.hidden is not None else None,
                      tokens=[scores.tokens[i] for i in idx])
    return result, select(pool, selector, fraction)


def stage_figure(table):
    """Stacked bars per stage: rows it flagged rightly (planted defect) and wrongly."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name="flagged, planted", x=list(table.index), y=table["correct"], marker_color="#2a9d8f"),
                     go.Bar(name="flagged, clean (false alarm)", x=list(table.index),
                            y=table["flagged"] - table["correct"], marker_color="#e76f51"),
                     go.Bar(name="planted, missed", x=list(table.index),
                            y=(table["planted"] - table["correct"]).clip(lower=0), marker_color="#8d99ae")])
    fig.update_layout(barmode="stack", title="What each stage flags, against the planted ground truth", height=340,
                      yaxis_title="rows")
    return fig


class CurationPanel:
    """Sliders and a selector over the raw set; a figure, a message, dropped examples and a train button."""

    def __init__(self, raw, test, truth, *, kind: str, scores: PoolScores, runner=None, eval_sets=None,
                 tokens_per_s: float | None = None, examples: int = 2):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.raw, self.test, self.kind, self.scores = raw, test, kind, scores
        self.truth = truth if isinstance(truth, dict) else truth_map(truth)
        self.runner, self.eval_sets, self.tokens_per_s, self.examples = runner, eval_sets or {}, tokens_per_s, examples
        self.minhashed = add_minhash(raw, kind)
        self.threshold = w.FloatSlider(value=0.7, min=0.3, max=1.0, step=0.05, description="dedup Jaccard")
        self.strictness = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1, description="filter strictness")
        self.fraction = w.FloatSlider(value=0.25, min=0.05, max=1.0, step=0.05, description="keep fraction")
        self.selector = w.Dropdown(options=list(SELECTORS), value="ifd", description="selector")
        self.button = w.Button(description="train on the selection", button_style="primary")
        self.message, self.dropped_html, self.trained = w.HTML(), w.HTML(), w.HTML()
        self.last_run: dict | None = None
        self.update_now()
        self.figure = go.FigureWidget(stage_figure(self.result.table))
        for control in (self.threshold, self.strictness, self.fraction, self.selector):
            control.observe(lambda _: self.update(), names="value")
        self.button.on_click(lambda _: self.train())
        self.widget = w.VBox([w.HBox([self.threshold, self.strictness]), w.HBox([self.fraction, self.selector]),
                              self.message, self.figure, self.dropped_html, w.HBox([self.button]), self.trained])

    def update_now(self) -> None:
        """Re-run the pipeline and the selection for the current controls."""
        self.result, self.selected = curate(self.raw, self.test, self.truth, kind=self.kind, scores=self.scores,
                                            threshold=self.threshold.value, strictness=self.strictness.value,
                                            fraction=self.fraction.value, selector=self.selector.value,
                                            minhashed=self.minhashed)

    def predicted_cost(self) -> dict:
        """Tokens per epoch of the selection, and the predicted seconds of the button's run at the measured rate."""
        chosen = set(self.selected)
        tokens = [t for i, t in zip(self.scores.ids, self.scores.tokens) if i in chosen]
        per_epoch = sum(tokens)
        out = {"selected": len(chosen), "tokens_per_epoch": per_epoch, "predicted_s": None}
        if self.runner is not None and self.tokens_per_s:
            seen = self.runner.num_steps * self.runner.batch_size * per_epoch / max(len(tokens), 1)
            out["predicted_s"] = seen / self.tokens_per_s
        return out

    def update(self) -> None:
        """Recompute for the current controls and redraw."""
        from ...plots.live import refresh_figure

        self.update_now()
        table = self.result.table
        refresh_figure(self.figure, stage_figure(table))
        cost = self.predicted_cost()
        when = f", predicted {cost['predicted_s']:.0f} s for the run" if cost["predicted_s"] is not None else ""
        self.message.value = (f"<b>{len(self.result.clean)} of {len(self.raw)} rows kept</b> after cleaning; "
                              f"{self.selector.value} keeps {cost['selected']} of the scored ones "
                              f"(~{cost['tokens_per_epoch']:,} tokens per epoch{when}).")
        self.dropped_html.value = self.dropped_table().to_html(index=False, classes="lk-dropped")

    def dropped_table(self):
        """A few dropped (or masked) rows per stage and whether each carried a planted defect."""
        import pandas as pd

        text_key = "instruction" if self.kind == "instructions" else "text"
        by_id = dict(zip(self.raw["id"], self.raw[text_key]))
        rows = []
        for stage in STAGES:
            for row_id in sorted(self.result.flagged.get(stage, ()))[:self.examples]:
                text = by_id[row_id]
                rows.append({"stage": stage, "id": row_id, "planted defect": self.truth[row_id][0],
                             "text": html.escape(text[:80] + ("…" if len(text) > 80 else ""))})
        return pd.DataFrame(rows, columns=["stage", "id", "planted defect", "text"])

    def train(self) -> dict:
        """Train on the current selection (the runner's steps) and show the measured quality and time."""
        if self.runner is None:
            raise LabkitError("This panel has no runner: pass runner=Runner(model, tokenizer, ...) to train from it.")
        cost = self.predicted_cost()
        chosen = subset(self.result.clean, self.selected)
        row = self.runner.run(chosen, eval_sets=self.eval_sets, label=f"panel: {self.selector.value} "
                                                                      f"{self.fraction.value:.0%}")
        self.last_run = {**row, "predicted_s": cost["predicted_s"]}
        scores = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith(("exact_", "loss_")))
        predicted = f"{cost['predicted_s']:.1f} s predicted, " if cost["predicted_s"] is not None else ""
        self.trained.value = html.escape(f"{row['run']}: {len(chosen)} examples, {scores}; {predicted}"
                                         f"{row['time_s']:.1f} s measured.")
        return self.last_run

    def settings(self) -> dict:
        return {"threshold": self.threshold.value, "strictness": self.strictness.value,
                "fraction": self.fraction.value, "selector": self.selector.value}

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def curation_panel(raw, test, truth, *, kind: str = "instructions", scores: PoolScores, runner=None, eval_sets=None,
                   tokens_per_s: float | None = None) -> CurationPanel:
    """The panel; drive it from code by setting its controls' values, and ``panel.button.click()`` to train."""
    if not isinstance(scores, PoolScores):
        raise LabkitError("scores must be the PoolScores of selection.score_pool(...) for the cleaned pool.")
    return CurationPanel(raw, test, truth, kind=kind, scores=scores, runner=runner, eval_sets=eval_sets,
                         tokens_per_s=tokens_per_s)


