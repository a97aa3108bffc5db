"""Bottleneck adapters (Houlsby / Pfeiffer): a small down-up MLP with a residual, inserted in each layer.

The AdapterHub ``adapters`` library pins an older transformers, so this is a small module of our own:
each adapter is a child module of the block it follows and a forward hook applies it to the block's output.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import freeze, register_method

STYLES = {"houlsby": ("self_attn", "mlp"), "pfeiffer": ("mlp",)}  # which blocks of a decoder layer get one
ACTIVATIONS = ("relu", "gelu", "silu")


@dataclass
class AdapterSpec:
    """Settings of bottleneck adapters."""

    bottleneck: int = 64  # inner size of the adapter (hidden -> bottleneck -> hidden)
    style: str = "houlsby"  # "houlsby": after attention and after the MLP; "pfeiffer": after the MLP only
    activation: str = "relu"  # nonlinearity between the down and up projections

    def __post_init__(self):
        if not isinstance(self.bottleneck, int) or isinstance(self.bottleneck, bool) or self.bottleneck <= 0:
            raise LabkitError(f"bottleneck must be a positive whole number (try 64), got {self.bottleneck!r}.")
        if self.style not in STYLES:
            raise LabkitError(f"Unknown adapter style {self.style!r}: use 'houlsby' or 'pfeiffer'.")
        if self.activation not in ACTIVATIONS:
            raise LabkitError(f"Unknown activation {self.activation!r}: use one of {', '.join(ACTIVATIONS)}.")


def _bottleneck_class():
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        """x + up(act(down(x))); ``up`` starts at zero so the adapted model starts equal to the base."""

        def __init__(self, hidden_size: int, bottleneck: int, activation: str, dtype=torch.float32):
            super().__init__()
            self.down = nn.Linear(hidden_size, bottleneck, dtype=dtype)
            self.act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[activation]()
            self.up = nn.Linear(bottleneck, hidden_size, dtype=dtype)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, x):
            return x + self.up(self.act(self.down(x.to(self.down.weight.dtype)))).to(x.dtype)

    return Bottleneck


def _adapter_hook(module, args, output):
    if isinstance(output, tuple):  # attention returns (hidden, weights)
        return (module.adapter(output[0]), *output[1:])
    return module.adapter(output)


def decoder_layers(model):
    """The list of decoder layers of a Llama/Mistral-style model."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise LabkitError("Bottleneck adapters need a decoder with model.model.layers (Llama, Mistral, SmolLM2); "
                          "this model has a different layout.")
    return layers


def apply_adapter(model, cfg: AdapterSpec):
    """Freeze ``model`` and insert a trainable bottleneck adapter after the chosen blocks of every layer."""
    import torch

    bottleneck_cls = _bottleneck_class()
    layers = decoder_layers(model)
    freeze(model)
    hidden = model.config.hidden_size
    ref = next(p for p in model.parameters())
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    for layer in layers:
        for block_name in STYLES[cfg.style]:
            block = getattr(layer, block_name)
            block.adapter = bottleneck_cls(hidden, cfg.bottleneck, cfg.activation, dtype=dtype).to(ref.device)
            block.register_forward_hook(_adapter_hook)
    return model


register_method(
    "adapter", config=AdapterSpec, apply=apply_adapter,
    summary="bottleneck adapters (Houlsby 2019 / Pfeiffer 2021): a small MLP with a residual after chosen blocks",
    adds="per adapted block: down (hidden x b + b) and up (b x hidden + hidden), up starts at zero; Houlsby adapts "
         "attention and MLP outputs, Pfeiffer only the MLP; they add a little latency at inference (not mergeable)",
    stores="the adapter weights only",
    trainable=(r"\.adapter\.(down|up)\.(weight|bias)$",),
    title="adapters", order=40, family="bottleneck",
    default_lr=1e-3,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="bottleneck", takes_targets=False, mergeable=False, adds_latency=True,
    note="not mergeable: the adapters run after their blocks at every inference",
)
