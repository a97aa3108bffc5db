"""The bug zoo: realistic broken fine-tuning set-ups, each built by one function, each with its symptom, the
pre-flight check that catches it and the fix.

>>> setup = build("missing_eos", "tiny-llama")  # doctest: +SKIP
>>> preflight(setup).failed  # doctest: +SKIP
['eos_in_labels']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from ...core import LabkitError
from ...units import IGNORE_INDEX
from ...validation.pipeline import Recipe, Setup, make_examples

N_EXAMPLES = 8  # training examples per set-up: two optimizer steps of 2 x 2
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}  # every set-up's adapter
RANDOM_PRESETS = ("tiny-llama", "tiny-mistral")  # presets with random weights (Recipe.pretrained=False)
DOMAIN_VOCAB = 4096  # size of the tokenizer trained on the course corpus for vocab_mismatch


@dataclass(frozen=True)
class Bug:
    """One member of the zoo."""

    name: str  # the key in ZOO and the name of the function that builds it
    title: str  # a few words
    symptom: str  # what a learner would see in a real run
    check: str  # the pre-flight check that catches it (checks.CHECKS)
    fix: str  # the fix, in one sentence
    build: Callable  # build(model_name, n_examples) -> Setup


ZOO: dict[str, Bug] = {}


def _member(title: str, symptom: str, check: str, fix: str):
    def register(func):
        if func.__name__ in ZOO:
            raise LabkitError(f"A zoo member called {func.__name__!r} already exists: pick another name.")
        ZOO[func.__name__] = Bug(func.__name__, title, symptom, check, fix, func)
        return func
    return register


def rows(n_examples: int = N_EXAMPLES, split: str = "train") -> list[dict]:
    """The first ``n_examples`` instruction/answer rows of the kit's instructions data set."""
    from ...data import load_instructions

    data = load_instructions()[split]
    if n_examples < 1 or n_examples > len(data):
        raise LabkitError(f"n_examples must be between 1 and {len(data)}, got {n_examples!r}.")
    return [dict(r) for r in data.select(range(n_examples))]


def base_model(model_name: str):
    """(model with the zoo's LoRA adapter, tokenizer set to pad on the left for batched generation)."""
    from ...methods import apply_method
    from ...models import load_model

    model, tokenizer = load_model(model_name)
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left; training batches pad on the right
    return apply_method(model, "lora", **LORA), tokenizer


def _recipe(model_name: str, **changes) -> Recipe:
    return Recipe(pretrained=model_name not in RANDOM_PRESETS, **changes)


def healthy(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES, **example_kwargs) -> Setup:
    """The healthy set-up: LoRA, answer-only labels ending in EOS, the chat template, token-normalised accumulation."""
    model, tokenizer = base_model(model_name)
    data = make_examples(tokenizer, rows(n_examples), **example_kwargs)
    return Setup(model, tokenizer, data, _recipe(model_name), name="healthy")


def _variant(name: str, model_name: str, n_examples: int, *, recipe: dict | None = None, **example_kwargs) -> Setup:
    setup = healthy(model_name, n_examples, **example_kwargs)
    if recipe:
        setup.recipe = _recipe(model_name, **recipe)
    setup.name = name
    return setup


@_member("labels shifted twice (off by one)",
         "the loss falls a little slower and stays higher; answers come out garbled, as if one word were skipped",
         "label_alignment",
         "leave labels aligned with input_ids: Hugging Face causal LMs shift them inside forward().")
def labels_shifted_twice(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """The data loader shifts labels left by one for next-token prediction, and the model shifts them again."""
    return _variant("labels_shifted_twice", model_name, n_examples, shift_labels=True)


@_member("loss on the prompt tokens",
         "the loss looks lower and smoother (prompts are easy to predict), while the answers improve less",
         "answer_only",
         f"mask the prompt's labels with IGNORE_INDEX ({IGNORE_INDEX}) when the objective is the answer only.")
def loss_on_prompt(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """Answer-only training was meant, but the labels are a copy of input_ids, prompt included."""
    return _variant("loss_on_prompt", model_name, n_examples, answer_only=False)


@_member("padding on the wrong side at generation",
         "training looks perfect; batched evaluation scores worse than one prompt at a time, worst on short prompts",
         "generation_padding",
         "tokenizer.padding_side = 'left' before batched generation (training batches may pad on the right).")
def right_padding(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """The tokenizer pads on the right for batched generation, so short prompts end in pad tokens."""
    setup = _variant("right_padding", model_name, n_examples)
    setup.tokenizer.padding_side = "right"
    return setup


@_member("no EOS at the end of answers",
         "the loss is fine; at inference the answer is right, then the model keeps going until max_new_tokens",
         "eos_in_labels",
         "append tokenizer.eos_token to each answer and keep it in the labels.")
def missing_eos(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """Answers are tokenized without the end-of-turn token, so the model never learns to stop."""
    return _variant("missing_eos", model_name, n_examples, add_eos=False)


@_member("a different prompt template at training than at inference",
         "the training loss falls normally; at inference (chat template) the answers ignore the fine-tune",
         "template_match",
         "build training prompts with tokenizer.apply_chat_template(..., add_generation_prompt=True), as generation "
         "does.")
def template_mismatch(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """Training prompts use an Alpaca-style '### Instruction' template; inference uses the chat template."""
    return _variant("template_mismatch", model_name, n_examples, template="plain")


@_member("wrong loss normalisation under gradient accumulation",
         "batch 1 x 4 trains differently from batch 4: the same data gives another loss curve (trl#2175)",
         "accumulation_match",
         "divide the summed token losses by the label tokens of the whole step (transformers' num_items_in_batch).")
def accumulation_normalization(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """Batch 1 x 4 accumulation averages the four micro-batch means, so short answers weigh more than long ones."""
    return _variant("accumulation_normalization", model_name, n_examples,
                    recipe={"batch_size": 1, "grad_accum": 4, "loss_normalization": "batches"})


@_member("optimizer built before the method was applied",
         "the loss stays flat: the adapter never updates, and no error is raised",
         "optimizer_covers",
         "build the optimizer after lk.apply_method, from the parameters that require gradients.")
def optimizer_before_method(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """AdamW is built over the base model's parameters, then LoRA is applied: the adapter is not in the optimizer."""
    import torch

    from ...methods import apply_method
    from ...models import load_model

    model, tokenizer = load_model(model_name)
    tokenizer.padding_side = "left"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model = apply_method(model, "lora", **LORA)
    data = make_examples(tokenizer, rows(n_examples))
    return Setup(model, tokenizer, data, _recipe(model_name, optimizer=optimizer), name="optimizer_before_method")


@_member("dropout left on in evaluation",
         "evaluation scores jitter from run to run on the same data, and sit a little worse than they should",
         "eval_deterministic",
         "call model.eval() before evaluating and model.train() after.")
def dropout_in_eval(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """The evaluation loop never calls model.eval(), so LoRA's dropout stays on."""
    return _variant("dropout_in_eval", model_name, n_examples, recipe={"eval_mode": False})


@_member("tokenizer and model vocabularies differ",
         "the loss starts near ln V instead of low, then falls like training from scratch; answers are gibberish",
         "vocab_match",
         "load the tokenizer from the same checkpoint as the model (and resize embeddings after adding tokens).")
def vocab_mismatch(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """The data is tokenized with another tokenizer (a byte-level BPE of at most 4,096 tokens trained on the course
    corpus)."""
    model, tokenizer = base_model(model_name)
    other = domain_tokenizer(tokenizer.chat_template)
    data = make_examples(other, rows(n_examples))
    return Setup(model, other, data, _recipe(model_name), name="vocab_mismatch")


@_member("fp16 without loss scaling",
         "nothing shows at first; many small gradient entries are stored below fp16's normal range, with fewer bits "
         "or as zero, so updates get noisy and the smallest vanish",
         "fp16_gradients",
         "use a loss scaler (torch.amp.GradScaler, starting at 2**16) with fp16, or train in bf16.")
def fp16_no_loss_scaling(model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """Gradients are stored in fp16 without scaling the loss first (simulated on the CPU: see pipeline.fp16_round)."""
    return _variant("fp16_no_loss_scaling", model_name, n_examples, recipe={"precision": "fp16"})


@functools.lru_cache(maxsize=2)
def domain_tokenizer(chat_template: str | None = None, vocab_size: int = DOMAIN_VOCAB):
    """A byte-level BPE tokenizer trained on the course corpus with the `tokenizers` library: another model's
    tokenizer, as far as SmolLM2 is concerned (same special tokens and chat template, other ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ...data import load_corpus

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(load_corpus()["train"]["text"], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = chat_template
    tokenizer.padding_side = "left"
    return tokenizer


def build(name: str, model_name: str = "smollm2-135m", n_examples: int = N_EXAMPLES) -> Setup:
    """The set-up called ``name``: "healthy" or a member of ZOO, on ``model_name``.

    >>> setup = build("right_padding", "tiny-llama")  # doctest: +SKIP
    """
    if name == "healthy":
        return healthy(model_name, n_examples)
    if name not in ZOO:
        raise LabkitError(f"Unknown zoo member {name!r}: use 'healthy' or one of {', '.join(ZOO)}.")
    return ZOO[name].build(model_name, n_examples)


def table():
    """The zoo as a DataFrame: member, title, symptom, the check that catches it, the fix."""
    import pandas as pd

    return pd.DataFrame([{"member": b.name, "bug": b.title, "symptom": b.symptom, "caught by": b.check, "fix": b.fix}
                         for b in ZOO.values()])
