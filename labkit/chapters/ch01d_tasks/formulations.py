"""One problem, three formulations: the intents as classification with a head, as generation of the label word,
and as an instruction that lists the labels; each trained with ``lk.train`` and scored on the same messages.

>>> run = run_formulation("instruction", train, eval_data, labels=KNOWN, setup="lora", num_steps=20)  # doctest: +SKIP
>>> run.row["accuracy"], run.row["trainable_params"], run.row["new_label_recall"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from ...core import LabkitError

FORMULATIONS = ("classification", "generation", "instruction")
SETUPS = {"classification": ("probe", "lora"), "generation": ("lora",), "instruction": ("zero-shot", "lora")}
# The instruction formulation lists the labels in the prompt (the same wording as lab 01a's comparison).
INSTRUCTION_TEMPLATE = "Classify this help-desk message as one of: {labels}.\nMessage: {text}"
# Per setup, as in lab 01c's ladder: a new head trains faster alone (probe) than with LoRA under it; SFT uses the
# registry's LoRA default (lk.get_method("lora").default_lr, 1e-3). Measured on the intents, SmolLM2-135M.
SETUP_LR = {"probe": 3e-3, "lora": 1e-3}


def check_formulation(formulation: str, setup: str | None = None) -> None:
    """A LabkitError unless ``formulation`` (and ``setup``, if given) is one this lab knows."""
    if formulation not in FORMULATIONS:
        raise LabkitError(f"Unknown formulation {formulation!r}: use one of {', '.join(FORMULATIONS)}.")
    if setup is not None and setup not in SETUPS[formulation]:
        raise LabkitError(f"The {formulation} formulation has no setup {setup!r}: use one of "
                          f"{', '.join(SETUPS[formulation])}.")


def frame(data, formulation: str, labels) -> object:
    """Pose text/label rows as ``formulation``: the rows themselves (classification), instruction = the message
    and answer = the label word (generation), or the message inside a prompt that lists ``labels`` (instruction).

    >>> frame(intents["train"], "instruction", INTENT_LABELS)[0]["instruction"][:40]  # doctest: +SKIP
    'Classify this help-desk message as one o'
    """
    from ...batches import as_dataset
    from ...data import _quiet

    check_formulation(formulation)
    data = as_dataset(data)
    if not {"text", "label"} <= set(data.column_names):
        raise LabkitError(f"frame needs text/label rows (lk.load_intents() splits); got columns {data.column_names}.")
    if formulation == "classification":
        return data
    choices = ", ".join(str(label) for label in labels)

    def pose(row):
        text = row["text"] if formulation == "generation" else INSTRUCTION_TEMPLATE.format(labels=choices,
                                                                                           text=row["text"])
        return {"instruction": text, "answer": str(row["label"])}

    with _quiet():
        return data.map(pose, remove_columns=data.column_names)


def first_answer_tokens(tokenizer, labels) -> list[int]:
    """The token each label's answer starts with, tokenized as SFT tokenizes answers (distinct, or a LabkitError)."""
    from ...batches import tokenize
    from ...units import IGNORE_INDEX

    rows = [{"instruction": "?", "answer": str(label)} for label in labels]
    firsts = [next(t for t in ex["labels"] if t != IGNORE_INDEX) for ex in tokenize(rows, tokenizer, "sft", seq_len=512)]
    clashes = sorted({str(label) for label, tok in zip(labels, firsts) if firsts.count(tok) > 1})
    if clashes:
        raise LabkitError(f"Labels {clashes} start with the same token, so their first token cannot tell them apart: "
                          "rename them so that each starts differently.")
    return firsts


def choose_labels(model, tokenizer, instructions: list[str], labels, *, batch_size: int = 16):
    """For each chat-formatted instruction, the label whose first answer token the model finds most likely, and the
    softmax over the labels' first tokens: (list of labels, numpy array (n, len(labels)))."""
    import torch

    from ...batches import prompt_text

    labels = [str(label) for label in labels]
    firsts = torch.tensor(first_answer_tokens(tokenizer, labels))
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # every prompt ends at the last position
    was_training = model.training
    model.eval()
    probs = []
    try:
        for i in range(0, len(instructions), batch_size):
            prompts = [prompt_text(tokenizer, q) for q in instructions[i:i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            positions = (enc["attention_mask"].cumsum(1) - 1).clamp(min=0)  # as if each prompt started at 0
            with torch.no_grad():  # logits for the last position only: the vocabulary projection is most of the cost
                logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], position_ids=positions,
                               logits_to_keep=1).logits[:, -1]
            probs.append(torch.softmax(logits[:, firsts.to(device)].float(), -1).cpu())
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    probs = torch.cat(probs).numpy()
    return [labels[i] for i in probs.argmax(1)], probs


def head_predict(clf, tokenizer, texts: list[str], *, seq_len: int = 64, batch_size: int = 32):
    """The classifier's label for each text and its softmax: (list of labels, numpy array (n, num_labels))."""
    import torch

    device = next(clf.parameters()).device
    was_training = clf.training
    clf.eval()
    probs = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[i:i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                            max_length=seq_len).to(device)
            with torch.no_grad():
                logits = clf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            probs.append(torch.softmax(logits.float(), -1).cpu())
    finally:
        clf.train(was_training)
    probs = torch.cat(probs).numpy()
    return [clf.labels[i] for i in probs.argmax(1)], probs


@dataclass
class RunConfig:
    """How one formulation run trains and is scored; checked on creation (``dataclasses.replace`` checks again)."""

    setup: str = "lora"  # "probe" (head on the frozen model), "lora" (LoRA on q/v; plus a head for classification),
    #                      or "zero-shot" (instruction only: no training)
    num_steps: int = 20  # optimizer steps
    batch_size: int = 8  # examples per step
    seq_len: int = 128  # tokens per example; longer ones are cut (the answer first, for SFT)
    lr: float | None = None  # peak learning rate; None: SETUP_LR[setup]
    rank: int = 8  # LoRA rank (alpha = 2 x rank)
    smoothing: float = 0.0  # label smoothing of the training loss, from 0 (off) up to (not including) 1
    class_weights: list | None = None  # one weight per training label (classification only), e.g. balanced_weights
    reduction: str = "token"  # average the training loss over tokens ("token") or over sequences ("sequence")
    answer_only: bool = True  # SFT loss on the answer only; False: on the prompt too (generation, instruction)
    max_new_tokens: int = 6  # tokens generated per evaluation answer (language-model runs)
    generate: bool = True  # generate answers for the text metrics; False: a language model's answer is its label
    label: str | None = None  # name of the run in tables and the panel; None: "<formulation> <setup>"
    progress: bool = True  # show lk.train's progress bar
    seed: int = 0  # seeds the new head, the LoRA init and the batch order

    def __post_init__(self):
        from . import losses

        if self.setup not in ("probe", "lora", "zero-shot"):
            raise LabkitError(f"Unknown setup {self.setup!r}: use 'probe', 'lora' or 'zero-shot'.")
        for name in ("num_steps", "batch_size", "seq_len", "rank", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not self.lr > 0):
            raise LabkitError(f"lr must be a positive number, or None for SETUP_LR[setup]; got {self.lr!r}.")
        losses.check_smoothing(self.smoothing)
        if self.reduction not in losses.REDUCTIONS:
            raise LabkitError(f"Unknown reduction {self.reduction!r}: use 'token' or 'sequence'.")
        for name in ("answer_only", "generate", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise LabkitError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @property
    def loss(self) -> dict:
        """The settings for losses.with_loss that differ from plain cross-entropy (empty: the model's own loss)."""
        loss = {"smoothing": self.smoothing} if self.smoothing else {}
        if self.class_weights is not None:
            loss["class_weights"] = self.class_weights
        if self.reduction != "token":
            loss["reduction"] = self.reduction
        return loss


@dataclass
class FormulationRun:
    """One trained (or zero-shot) formulation, scored on the evaluation messages."""

    row: dict  # label, formulation, setup, loss, trainable_params, time_per_step_s, final_loss, accuracy, macro_f1...
    predictions: list  # the label each evaluation message got (a head's argmax, or the likeliest label word)
    answers: list  # the text answer: greedy generation for language-model runs, the label name for a head
    references: list  # the true label of each evaluation message
    confidence: list  # the probability the run gave its own prediction, per message
    config: RunConfig  # the settings it ran with
    result: object = None  # lk.train's TrainResult (None for zero-shot)
    model: object = field(default=None, repr=False)  # the trained model when keep_model=True


def run_formulation(formulation: str, train, eval_data, *, labels, config: RunConfig | None = None, eval_labels=None,
                    new_label_data=None, new_label: str | None = None, base=None, model_name: str = "smollm2-135m",
                    keep_model: bool = False, **settings) -> FormulationRun:
    """Pose the task as ``formulation``, train it as ``config`` says (or keyword settings: the fields of
    RunConfig), and score it on ``eval_data``.

    ``labels``: the classes in training (a head gets one output each). ``eval_labels``: the classes offered when
    scoring (default ``labels``): a language model can be offered a label it never trained on, a head cannot.
    ``new_label_data``: messages of ``new_label``; ``row["new_label_recall"]`` is the share labelled as it, and
    ``row["new_label_false_alarms"]`` the share of ``eval_data`` (other labels) labelled as it. ``base``: a loaded
    ``(model, tokenizer)`` to start from instead of loading ``model_name``: a probe or a zero-shot run uses it as it
    is (neither changes its weights), a LoRA run trains a copy.

    >>> run = run_formulation("classification", train, val, labels=KNOWN, setup="probe", num_steps=40)  # doctest: +SKIP
    >>> run = run_formulation("instruction", train, val, labels=KNOWN, config=RunConfig(answer_only=False))  # doctest: +SKIP
    """
    import datasets
    import torch

    from ...batches import tokenize
    from ...meters import param_summary
    from ...methods import apply_method
    from ...methods.linear_probe import add_classifier_head
    from ...models import load_model
    from ...training import generate_answers
    from ...training import train as train_model
    from . import losses
    from .scoring import score

    if config is not None and settings:
        raise LabkitError("Pass the settings either in config or as keywords, not both: use "
                          "config=dataclasses.replace(config, ...).")
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown:
        raise LabkitError(f"run_formulation has no setting {', '.join(unknown)}: its settings are the fields of "
                          f"RunConfig ({', '.join(f.name for f in dataclasses.fields(RunConfig))}).")
    cfg = dataclasses.replace(config) if config is not None else RunConfig(**settings)
    setup = cfg.setup
    check_formulation(formulation, setup)
    labels = [str(x) for x in labels]
    eval_labels = labels if eval_labels is None else [str(x) for x in eval_labels]
    if (new_label_data is None) != (new_label is None):
        raise LabkitError("Give new_label_data together with new_label (the name of the class it holds), or neither.")
    if new_label is not None and formulation != "classification" and new_label not in eval_labels:
        raise LabkitError(f"new_label {new_label!r} must be one of eval_labels so that the model can be offered it.")
    if not cfg.answer_only and formulation == "classification":
        raise LabkitError("answer_only=False (loss on the prompt too) is for the generation and instruction "
                          "formulations; a head has no prompt tokens to predict.")
    loss = cfg.loss
    if loss and setup == "zero-shot":
        raise LabkitError("A zero-shot run does not train, so it takes no loss settings: drop smoothing, "
                          "class_weights and reduction.")
    if cfg.class_weights is not None and formulation != "classification":
        raise LabkitError("class_weights go with the classification formulation (one weight per label); a language "
                          "model's loss is over its whole vocabulary.")
    label = cfg.label or f"{formulation} {setup}"
    if base is None:
        model, tokenizer = load_model(model_name)
    elif setup in ("probe", "zero-shot"):  # neither changes the backbone's weights: share it
        model, tokenizer = base
    else:  # LoRA changes the model: train a copy (cheaper than loading it again)
        model, tokenizer = copy.deepcopy(base[0]), base[1]
    if setup == "lora":
        model = apply_method(model, "lora", rank=cfg.rank, alpha=2.0 * cfg.rank, target_modules=["q_proj", "v_proj"])
    if formulation == "classification":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same new head wherever the run sits in a notebook
            model = (apply_method(model, "linear_probe", labels=labels) if setup == "probe"
                     else add_classifier_head(model, labels))
    trainable = param_summary(model).trainable if setup != "zero-shot" else 0

    result = None
    if setup != "zero-shot":
        data = frame(train, formulation, labels)
        objective = "classification" if formulation == "classification" else "sft"
        if not cfg.answer_only:
            data = datasets.Dataset.from_list(losses.whole_sequence(tokenize(data, tokenizer, "sft",
                                                                             seq_len=cfg.seq_len)))
        trained = losses.with_loss(model, **loss) if loss else model
        result = train_model(trained, tokenizer, data, objective=objective, num_steps=cfg.num_steps,
                             batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr or SETUP_LR[setup],
                             live_plot=False, progress=cfg.progress, label=label, seed=cfg.seed)

    references = [str(x) for x in eval_data["label"]]
    if formulation == "classification":
        predictions, probs = head_predict(model, tokenizer, list(eval_data["text"]), seq_len=cfg.seq_len)
        answers = list(predictions)
    else:
        posed = frame(eval_data, formulation, eval_labels)
        predictions, probs = choose_labels(model, tokenizer, list(posed["instruction"]), eval_labels)
        answers = (generate_answers(model, tokenizer, list(posed["instruction"]), max_new_tokens=cfg.max_new_tokens)
                   if cfg.generate else list(predictions))
    confidence = [float(p.max()) for p in probs]
    offered = labels if formulation == "classification" else eval_labels
    accuracy = score("accuracy", predictions, references, labels=offered + references)
    macro_f1 = score("macro_f1", predictions, references, labels=offered + references)
    exact = score("exact_match", answers, references)
    row = {"label": label, "formulation": formulation, "setup": setup, "loss": loss_name(loss, cfg.answer_only),
           "trainable_params": trainable, "num_outputs": len(offered),
           "time_per_step_s": result.time_per_step_s if result else 0.0,
           "train_time_s": result.time_s if result else 0.0,
           "final_loss": result.final_loss if result else float("nan"),
           "accuracy": accuracy, "macro_f1": macro_f1, "exact_match": exact,
           "mean_confidence": sum(confidence) / len(confidence)}
    if new_label_data is not None:
        if formulation == "classification":
            got, _ = head_predict(model, tokenizer, list(new_label_data["text"]), seq_len=cfg.seq_len)
        else:
            got, _ = choose_labels(model, tokenizer,
                                   list(frame(new_label_data, formulation, eval_labels)["instruction"]), eval_labels)
        row["new_label_recall"] = sum(g == new_label for g in got) / len(got)
        row["new_label_false_alarms"] = sum(p == new_label for p in predictions) / len(predictions)
    return FormulationRun(row=row, predictions=predictions, answers=answers, references=references,
                          confidence=confidence, config=cfg, result=result, model=model if keep_model else None)


def loss_name(loss: dict | None, answer_only: bool = True) -> str:
    """A short name for a loss setting: "CE", "CE answer-only", "CE whole sequence", "CE + smoothing 0.1", ..."""
    loss = loss or {}
    parts = ["CE"]
    if loss.get("smoothing"):
        parts.append(f"smoothing {loss['smoothing']:g}")
    if loss.get("class_weights") is not None:
        parts.append("class weights")
    if loss.get("reduction", "token") == "sequence":
        parts.append("sequence mean")
    name = " + ".join(parts)
    return name if answer_only else f"{name} (whole sequence)"
