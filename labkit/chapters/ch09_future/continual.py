"""Continual learning on the kit's instruction families: fine-tune on tasks in sequence (A -> B -> C), the
forgetting matrix and backward transfer, and three remedies: replay, an anchor on the weights (L2-to-start or EWC
with a diagonal Fisher), and one LoRA per task with a router that picks the adapter.

>>> run = sequential("smollm2-135m", tasks, remedy="replay", num_steps=30)  # doctest: +SKIP
>>> backward_transfer(run.matrix)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ...core import LabkitError

REMEDIES = ("none", "replay", "l2", "ewc")
DEFAULT_TASKS = ("convert_units", "reformat_date", "sort_list")  # A, B, C: three instruction families


@dataclass
class Tasks:
    """Train and test rows per task (instruction family), in the order they are learned."""

    names: list  # task names in order
    train: dict  # name -> list of {"instruction", "answer"}
    test: dict  # name -> list of {"instruction", "answer"}


def make_tasks(names=DEFAULT_TASKS, *, train_per_task: int = 64, test_per_task: int = 16) -> Tasks:
    """The instruction families ``names`` as tasks, from lk.load_instructions()'s train and test splits."""
    from ...data import INSTRUCTION_FAMILIES, load_instructions

    names = list(names)
    unknown = [n for n in names if n not in INSTRUCTION_FAMILIES]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise LabkitError(f"tasks must be 2 or more different instruction families from {INSTRUCTION_FAMILIES}, "
                          f"got {names!r}.")
    data = load_instructions()

    def rows(split, name, n):
        picked = [r for r in data[split] if r["family"] == name][:n]
        return [{"instruction": r["instruction"], "answer": r["answer"]} for r in picked]

    return Tasks(names, {n: rows("train", n, train_per_task) for n in names},
                 {n: rows("test", n, test_per_task) for n in names})


def score_tasks(model, tokenizer, tasks: Tasks, *, seq_len: int = 64) -> dict:
    """Per task: the geometric-mean probability of the answer tokens, exp(-answer loss); 1 is perfect."""
    from ...training import evaluate_loss

    return {n: math.exp(-evaluate_loss(model, tokenizer, tasks.test[n], objective="sft", seq_len=seq_len,
                                       limit=len(tasks.test[n]))["eval_loss"]) for n in tasks.names}


def backward_transfer(matrix) -> float:
    """Mean change of each earlier task's score from just after learning it to the end (negative = forgetting).

    ``matrix[i][j]`` is the score on task j after stage i (a square list of lists, array or DataFrame).
    """
    import numpy as np

    r = np.asarray(matrix, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise LabkitError(f"The forgetting matrix must be square with at least 2 stages (stage x task), got shape "
                          f"{r.shape}.")
    t = r.shape[0]
    return float(np.mean([r[t - 1, j] - r[j, j] for j in range(t - 1)]))


@dataclass
class ContinualRun:
    """One sequence of stages and what it scored."""

    remedy: str  # one of REMEDIES, or "per-task LoRA + router"
    base: dict  # task -> score before any training
    matrix: object  # pandas DataFrame: rows "after <task>", columns tasks
    time_s: float  # training seconds, all stages

    @property
    def bwt(self) -> float:
        return backward_transfer(self.matrix.values)

    @property
    def learned(self) -> float:
        """Mean gain on each task right after learning it, over the untrained model (the diagonal minus base)."""
        return float(sum(self.matrix.iloc[i, i] - self.base[n] for i, n in enumerate(self.matrix.columns))
                     / len(self.matrix.columns))


def replay_mix(current: list, earlier: list, share: float, seed: int = 0) -> list:
    """The current task's rows plus ``share`` x as many rows drawn from earlier tasks (none at the first stage)."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise LabkitError(f"replay share must be a number in [0, 1] (e.g. 0.2 for 20% extra), got {share!r}.")
    rng = random.Random(seed)
    extra = rng.sample(earlier, min(len(earlier), round(share * len(current)))) if earlier else []
    mixed = current + extra
    rng.shuffle(mixed)
    return mixed


def diagonal_fisher(model, tokenizer, rows: list, *, seq_len: int = 64, batch_size: int = 4, max_batches: int = 8):
    """EWC's diagonal Fisher: the mean squared gradient of the loss for every trainable parameter."""
    import torch

    from ...batches import in_order, tokenize

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    examples = tokenize(rows, tokenizer, "sft", seq_len=seq_len)
    was = model.training
    model.eval()
    count = 0
    for batch in list(in_order(examples, batch_size, tokenizer.pad_token_id or 0))[:max_batches]:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was)
    return {n: f / max(count, 1) for n, f in fisher.items()}


def anchored_train(model, tokenizer, rows: list, *, anchor: dict, weight: dict | None, strength: float,
                   num_steps: int, batch_size: int = 4, seq_len: int = 64, lr: float = 1e-3, seed: int = 0) -> list:
    """Train with loss + strength * sum(weight * (theta - anchor)^2): L2-to-start (weight None) or EWC (Fisher).

    lk.train has no hook for an extra loss term, so this is its own short AdamW loop; returns the step losses.
    """
    import torch

    from ...batches import Batcher, tokenize

    if not strength >= 0:
        raise LabkitError(f"strength must be >= 0 (0 turns the anchor off), got {strength!r}.")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.0)
    batches = iter(Batcher(tokenize(rows, tokenizer, "sft", seq_len=seq_len), batch_size,
                           tokenizer.pad_token_id or 0, seed=seed))
    losses = []
    model.train()
    for _ in range(num_steps):
        loss = model(**next(batches)).loss
        penalty = sum(((weight[n] if weight else 1.0) * (p - anchor[n]) ** 2).sum() for n, p in params.items())
        (loss + strength * penalty).backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def sequential(model_name: str, tasks: Tasks, *, remedy: str = "none", num_steps: int = 20, batch_size: int = 4,
               seq_len: int = 64, rank: int = 8, replay_share: float = 0.25, strength: float | None = None,
               base: dict | None = None, seed: int = 0) -> ContinualRun:
    """Fine-tune one LoRA on the tasks in order; score every task after every stage.

    ``remedy``: "none", "replay" (replay_share of earlier rows mixed in), "l2" (anchor to the weights at the end
    of the previous stage) or "ewc" (the same anchor weighted by the diagonal Fisher of the earlier tasks).
    ``base``: the untrained model's scores if already known (LoRA starts as the model itself: B = 0).
    """
    import time

    import pandas as pd
    import torch

    from ...methods import apply_method
    from ...models import load_model
    from ...training import train

    if remedy not in REMEDIES:
        raise LabkitError(f"Unknown remedy {remedy!r}: use one of {', '.join(REMEDIES)}.")
    if strength is None:
        strength = {"l2": 1.0, "ewc": 1e4}.get(remedy, 0.0)  # EWC's Fisher entries are tiny: a larger multiplier
    model, tokenizer = load_model(model_name)
    model = apply_method(model, "lora", rank=rank, seed=seed)
    base = base if base is not None else score_tasks(model, tokenizer, tasks, seq_len=seq_len)
    rows, seen, fisher, time_s = [], [], None, 0.0
    for stage, name in enumerate(tasks.names):
        data = tasks.train[name]
        start = time.perf_counter()
        if remedy in ("l2", "ewc") and stage > 0:
            anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            anchored_train(model, tokenizer, data, anchor=anchor, weight=fisher if remedy == "ewc" else None,
                           strength=strength, num_steps=num_steps, batch_size=batch_size, seq_len=seq_len, seed=seed)
        else:
            if remedy == "replay":
                data = replay_mix(data, seen, replay_share, seed=seed + stage)
            train(model, tokenizer, data, num_steps=num_steps, batch_size=batch_size, seq_len=seq_len, seed=seed,
                  label=f"lab09 continual {remedy} {name}", live_plot=False, progress=False)
        time_s += time.perf_counter() - start
        seen += tasks.train[name]
        if remedy == "ewc" and stage < len(tasks.names) - 1:  # the next stage's anchor; none after the last
            new = diagonal_fisher(model, tokenizer, tasks.train[name], seq_len=seq_len)
            fisher = new if fisher is None else {n: fisher[n] + new[n] for n in new}
        rows.append(score_tasks(model, tokenizer, tasks, seq_len=seq_len))
    matrix = pd.DataFrame(rows, index=[f"after {n}" for n in tasks.names])[tasks.names]
    del model
    torch.set_grad_enabled(True)
    return ContinualRun(remedy, base, matrix, time_s)


class AdapterRouter:
    """Picks a task's adapter from the instruction text: TF-IDF words + logistic regression (scikit-learn)."""

    def __init__(self, tasks: Tasks):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        texts = [r["instruction"] for n in tasks.names for r in tasks.train[n]]
        labels = [n for n in tasks.names for _ in tasks.train[n]]
        self.model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(texts, labels)

    def route(self, texts: list[str]) -> list[str]:
        return list(self.model.predict(list(texts)))

    def accuracy(self, tasks: Tasks) -> float:
        pairs = [(r["instruction"], n) for n in tasks.names for r in tasks.test[n]]
        return sum(p == n for p, (_, n) in zip(self.route([t for t, _ in pairs]), pairs)) / len(pairs)


def train_task_adapters(model_name: str, tasks: Tasks, *, num_steps: int = 20, batch_size: int = 4,
                        seq_len: int = 64, rank: int = 8, seed: int = 0):
    """One peft model holding one LoRA per task, named after the task, each trained on its task alone.

    Returns (model, tokenizer, {task: TrainResult}).
    """
    from ...methods import apply_method
    from ...models import load_model
    from ...training import train

    model, tokenizer = load_model(model_name)
    model = apply_method(model, "lora", rank=rank, seed=seed)
    config = model.peft_config["default"]
    results = {}
    for name in tasks.names:
        model.add_adapter(name, config)
    model.set_adapter(tasks.names[0])  # peft warns when the active adapter is deleted
    model.delete_adapter("default")
    for name in tasks.names:
        model.set_adapter(name)  # only this adapter is active and trainable
        results[name] = train(model, tokenizer, tasks.train[name], num_steps=num_steps, batch_size=batch_size,
                              seq_len=seq_len, seed=seed, label=f"lab09 adapter {name}", live_plot=False,
                              progress=False)
    return model, tokenizer, results


def use_adapter(model, name: str) -> None:
    """Make ``name`` the active adapter; refuse a name that is not loaded."""
    loaded = list(getattr(model, "peft_config", {}) or {})
    if name not in loaded:
        raise LabkitError(f"No adapter called {name!r} is loaded: pick one of {', '.join(loaded) or 'none'}.")
    model.set_adapter(name)


def routed_scores(model, tokenizer, tasks: Tasks, router: AdapterRouter, *, seq_len: int = 64) -> dict:
    """Per task: exp(-answer loss) when each question goes to the adapter the router picks for it."""
    from ...training import evaluate_loss

    scores = {}
    for n in tasks.names:
        rows = tasks.test[n]
        picks = router.route([r["instruction"] for r in rows])
        total = 0.0
        for adapter in sorted(set(picks)):
            part = [r for r, p in zip(rows, picks) if p == adapter]
            use_adapter(model, adapter)
            total += evaluate_loss(model, tokenizer, part, objective="sft", seq_len=seq_len,
                                   limit=len(part))["eval_loss"] * len(part)
        scores[n] = math.exp(-total / len(rows))
    return scores


def per_task_run(model, tokenizer, tasks: Tasks, router: AdapterRouter, base: dict, *, seq_len: int = 64,
                 time_s: float = 0.0) -> ContinualRun:
    """The forgetting matrix of per-task adapters plus the router: adapters trained so far, each task routed.

    A task not learned yet has no adapter; the router can still send it to a learned one, as it would in use.
    """
    import pandas as pd

    rows = []
    for stage in range(len(tasks.names)):
        known = tasks.names[:stage + 1]
        sub = Tasks(known, {n: tasks.train[n] for n in known}, {n: tasks.test[n] for n in known})
        stage_router = AdapterRouter(sub) if len(known) > 1 else None
        row = {}
        for n in tasks.names:
            one = Tasks([n], {n: tasks.train[n]}, {n: tasks.test[n]})
            if stage_router is None:
                use_adapter(model, known[0])
                row[n] = score_tasks(model, tokenizer, one, seq_len=seq_len)[n]
            else:
                row[n] = routed_scores(model, tokenizer, one, stage_router, seq_len=seq_len)[n]
        rows.append(row)
    matrix = pd.DataFrame(rows, index=[f"after {n}" for n in tasks.names])[tasks.names]
    return ContinualRun("per-task LoRA + router", base, matrix, time_s)


def plot_learning_forgetting(runs: list):
    """Learning (mean gain on each new task) against forgetting (-BWT), one point per remedy (Biderman et al. 2024)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in runs:
        fig.add_trace(go.Scatter(x=[-run.bwt], y=[run.learned], mode="markers+text", text=[run.remedy],
                                 textposition="top center", marker={"size": 12}, name=run.remedy))
    fig.update_layout(xaxis_title="forgetting (-backward transfer, answer probability)",
                      yaxis_title="learning (gain on the new task)", height=380, showlegend=False,
                      title="Learn more, forget less: up and to the left is better")
    return fig


def plot_matrix(run: ContinualRun):
    """The forgetting matrix as a heat map."""
    import plotly.graph_objects as go

    m = run.matrix
    fig = go.Figure(go.Heatmap(z=m.values, x=list(m.columns), y=list(m.index), colorscale="Viridis", zmin=0,
                               text=[[f"{v:.3f}" for v in row] for row in m.values], texttemplate="%{text}"))
    fig.update_layout(title=f"{run.remedy}: score on every task after each stage", height=300,
                      yaxis={"autorange": "reversed"})
    return fig
