"""Sizes of a Llama/Mistral-style decoder read from its config alone, and offline configs of well-known models."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
LINEARS = ATTN + MLP
TARGET_SHORTCUTS = {"all-linear": LINEARS, "attention": ATTN, "mlp": MLP}

# Published config.json values (hub pages of each model); enough to count parameters and predict memory offline.
_KNOWN = {
    # id: (architecture, hidden, intermediate, layers, heads, kv heads, vocab, tied, head_dim or None)
    "HuggingFaceTB/SmolLM2-135M": ("llama", 576, 1536, 30, 9, 3, 49152, True, None),
    "HuggingFaceTB/SmolLM2-360M": ("llama", 960, 2560, 32, 15, 5, 49152, True, None),
    "HuggingFaceTB/SmolLM2-1.7B": ("llama", 2048, 8192, 24, 32, 32, 49152, True, None),
    "meta-llama/Llama-3.2-1B": ("llama", 2048, 8192, 16, 32, 8, 128256, True, 64),
    "meta-llama/Llama-3.2-3B": ("llama", 3072, 8192, 28, 24, 8, 128256, True, 128),
    "meta-llama/Llama-3.1-8B": ("llama", 4096, 14336, 32, 32, 8, 128256, False, 128),
    "meta-llama/Llama-2-7b-hf": ("llama", 4096, 11008, 32, 32, 32, 32000, False, None),
    "mistralai/Mistral-7B-v0.3": ("mistral", 4096, 14336, 32, 32, 8, 32768, False, 128),
}
ALIASES = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M", "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
           "llama-3.2-1b": "meta-llama/Llama-3.2-1B", "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
           "mistral-7b": "mistralai/Mistral-7B-v0.3", "llama-2-7b": "meta-llama/Llama-2-7b-hf"}


def _build(name, spec):
    from transformers import LlamaConfig, MistralConfig

    arch, hidden, inter, layers, heads, kv, vocab, tied, head_dim = spec
    cls = LlamaConfig if arch == "llama" else MistralConfig
    cfg = cls(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
              num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=tied)
    if head_dim is not None:
        cfg.head_dim = head_dim
    cfg.name_or_path = name
    return cfg


def known_configs() -> dict:
    """A fresh {model id: transformers config} table of the offline configs (``KNOWN_CONFIGS``)."""
    return {name: _build(name, spec) for name, spec in _KNOWN.items()}


def __getattr__(name: str):
    if name == "KNOWN_CONFIGS":  # built on access: importing the meters stays free of transformers
        return known_configs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_config(model):
    """A transformers config from a config, a model, a labkit preset, a known id or (online) any hub id."""
    if hasattr(model, "config") and not hasattr(model, "hidden_size"):
        model = model.config
    if hasattr(model, "hidden_size"):
        return model
    name = str(model)
    name = ALIASES.get(name.lower(), name)
    if name in _KNOWN:
        return _build(name, _KNOWN[name])
    from .. import models

    if name in models.MODEL_PRESETS:
        preset = models.MODEL_PRESETS[name]
        if preset.tiny_cfg is not None:
            from transformers import LlamaConfig, MistralConfig

            cls = LlamaConfig if preset.arch == "llama" else MistralConfig
            return cls(vocab_size=49152, **preset.tiny_cfg)  # the presets use SmolLM2's 49,152-token vocabulary
    from ..core import offline

    if offline() or "/" not in name:
        raise LabkitError(f"No offline config for {model!r}: use one of {', '.join(_KNOWN)}, a labkit preset, a "
                          "transformers config object, or go online to read any hub id's config.")
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(name, trust_remote_code=False)  # config.json only, no weights


def display_name(model) -> str:
    """A short name for a model id or config, e.g. 'Mistral-7B-v0.3'."""
    if isinstance(model, str):
        return ALIASES.get(model.lower(), model).split("/")[-1]
    path = getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "name_or_path", "")
    return path.split("/")[-1] if path else f"{getattr(model, 'model_type', 'model')} config"


@dataclass(frozen=True)
class Dims:
    """The sizes of a decoder-only transformer that parameter and memory formulas need."""

    hidden: int  # h: width of the residual stream
    inter: int  # I: width of the MLP
    layers: int  # L: decoder layers
    heads: int  # a: query heads
    kv_heads: int  # key/value heads (GQA when fewer than heads)
    head_dim: int  # width of one head
    vocab: int  # V: vocabulary size
    tied: bool  # lm_head shares the embedding matrix
    attn_bias: bool  # q/k/v/o have biases
    mlp_bias: bool  # gate/up/down have biases

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear(self, name: str) -> tuple[int, int, bool]:
        """(in_features, out_features, has_bias) of one per-layer linear."""
        h, q, kv, inter = self.hidden, self.q_dim, self.kv_dim, self.inter
        shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                  "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h), "lm_head": (h, self.vocab)}
        bias = self.attn_bias if name in ATTN else self.mlp_bias if name in MLP else False
        return (*shapes[name], bias)

    def linear_params(self, name: str) -> int:
        fan_in, fan_out, bias = self.linear(name)
        return fan_in * fan_out + (fan_out if bias else 0)

    def components(self) -> dict[str, int]:
        """Parameter count per component (a tied head counts under embeddings only)."""
        per_layer_attn = sum(self.linear_params(n) for n in ATTN)
        per_layer_mlp = sum(self.linear_params(n) for n in MLP)
        return {"embeddings": self.vocab * self.hidden, "attention": self.layers * per_layer_attn,
                "mlp": self.layers * per_layer_mlp, "norms": (2 * self.layers + 1) * self.hidden,
                "head": 0 if self.tied else self.vocab * self.hidden}

    @property
    def total(self) -> int:
        return sum(self.components().values())


def dims(config) -> Dims:
    """Read the sizes of a Llama/Mistral-style config (other decoders with the same fields work too)."""
    config = resolve_config(config)
    needed = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [f for f in needed if getattr(config, f, None) is None]
    if missing:
        raise LabkitError(f"This config lacks {missing}: the meters understand Llama/Mistral-style decoders "
                          "(LlamaConfig, MistralConfig).")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return Dims(hidden=config.hidden_size, inter=config.intermediate_size, layers=config.num_hidden_layers,
                heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads, head_dim=head_dim,
                vocab=config.vocab_size, tied=bool(getattr(config, "tie_word_embeddings", False)),
                attn_bias=bool(getattr(config, "attention_bias", False)),
                mlp_bias=bool(getattr(config, "mlp_bias", False)))


def resolve_targets(target_modules) -> tuple[str, ...]:
    """Linear names from 'all-linear' / 'attention' / 'mlp', one name, or a list of names."""
    if isinstance(target_modules, str):
        if target_modules in TARGET_SHORTCUTS:
            return TARGET_SHORTCUTS[target_modules]
        target_modules = [target_modules]
    names = tuple(dict.fromkeys(target_modules))
    unknown = [n for n in names if n not in LINEARS + ("lm_head",)]
    if unknown or not names:
        raise LabkitError(f"Unknown target modules {unknown or '(none)'}: use names from {', '.join(LINEARS)}, "
                          "'lm_head', or one of 'all-linear', 'attention', 'mlp'.")
    return names


def positive_int(name: str, value, hint: str) -> int:
    """``value`` if it is a whole number > 0, else a LabkitError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LabkitError(f"{name} must be a positive whole number ({hint}), got {value!r}.")
    return value
