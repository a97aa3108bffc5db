"""Linear probe: a frozen backbone and a new linear classification head on pooled hidden states."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import freeze, register_method

POOLINGS = ("mean", "last")


@dataclass
class LinearProbeSpec:
    """Settings of a linear probe."""

    labels: list[str]  # class names in a fixed order; the head has one output per label
    pooling: str = "mean"  # "mean" over real tokens, or the "last" real token's hidden state
    layer: int = -1  # which layer's output feeds the head (-1: the final, normalised one)

    def __post_init__(self):
        self.labels = [str(label) for label in self.labels]
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise LabkitError("labels must list at least two distinct class names, e.g. "
                              "labels=sorted(set(data['train']['label'])).")
        if self.pooling not in POOLINGS:
            raise LabkitError(f"Unknown pooling {self.pooling!r}: use 'mean' or 'last'.")


def _classifier_class():
    import torch
    from torch import nn
    from transformers.modeling_outputs import SequenceClassifierOutput

    class SequenceClassifier(nn.Module):
        """A causal LM's decoder, pooled, followed by a linear head; ``labels`` name the outputs."""

        def __init__(self, backbone, labels: list[str], pooling: str = "mean", layer: int = -1):
            super().__init__()
            self.backbone = backbone
            self.labels = list(labels)
            self.label2id = {label: i for i, label in enumerate(self.labels)}
            self.pooling, self.layer = pooling, layer
            ref = backbone.get_input_embeddings().weight
            self.head = nn.Linear(backbone.config.hidden_size, len(self.labels), device=ref.device)
            num_layers = backbone.config.num_hidden_layers
            if not -1 <= layer < num_layers:
                raise LabkitError(f"layer must be -1 (last) or 0..{num_layers - 1}, got {layer}.")

        @property
        def config(self):
            return self.backbone.config

        @property
        def device(self):
            return self.head.weight.device

        def activation_checkpointing_enable(self, **_):
            from ..models import set_checkpointing

            set_checkpointing(self.backbone, True)

        def activation_checkpointing_disable(self):
            from ..models import set_checkpointing

            set_checkpointing(self.backbone, False)

        def _decoder(self):
            base = self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone
            return base.get_decoder()

        def forward(self, input_ids, attention_mask=None, labels=None, **_):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            frozen = not any(p.requires_grad for p in self.backbone.parameters())
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                out = self._decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                      output_hidden_states=self.layer != -1)
            hidden = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer + 1]
            mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
            if self.pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:  # last real token, whichever side the padding is on
                positions = torch.arange(hidden.shape[1], device=hidden.device)
                last = (attention_mask * positions).argmax(1)
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            logits = self.head(pooled.to(self.head.weight.dtype))
            loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return SequenceClassifier


def add_classifier_head(model, labels: list[str], *, pooling: str = "mean", layer: int = -1):
    """Put a new trainable linear head on ``model`` (trainability of the rest is left as it is).

    >>> clf = add_classifier_head(model, labels=["billing", "refund"])  # doctest: +SKIP
    """
    spec = LinearProbeSpec(labels=labels, pooling=pooling, layer=layer)
    return _classifier_class()(model, spec.labels, spec.pooling, spec.layer)


def is_classifier(model) -> bool:
    """True for models built by add_classifier_head / the linear_probe method."""
    return hasattr(model, "label2id") and hasattr(model, "head")


def apply_linear_probe(model, cfg: LinearProbeSpec):
    """Freeze ``model`` and add a trainable linear head for ``len(cfg.labels)`` classes."""
    freeze(model)
    return _classifier_class()(model, cfg.labels, cfg.pooling, cfg.layer)


register_method(
    "linear_probe", config=LinearProbeSpec, apply=apply_linear_probe,
    summary="linear probe: the whole model is frozen; a new linear head reads its pooled hidden state",
    adds="one linear layer (hidden x num_labels weights + num_labels biases) on top of the frozen model",
    stores="the head only (a few kB)",
    trainable=(r"^head\.(weight|bias)$",),
    title="linear probe", order=100, family="head",
    default_lr=3e-3,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob=None, takes_targets=False, mergeable=False, adds_latency=False,
    note="a new classification head replaces text output; the backbone is untouched",
)
