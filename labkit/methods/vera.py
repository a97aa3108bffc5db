"""VeRA: one pair of frozen random matrices shared by every layer, scaled by two trainable vectors per layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import check_targets, register_method
from .lora import normalise_targets, positive_whole


@dataclass
class VeraSpec:
    """Settings of VeRA (Kopiczko et al. 2024, "VeRA: Vector-based Random Matrix Adaptation")."""

    rank: int = 256  # r: inner size of the shared random A (r x in) and B (out x r); costs one number per layer each
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])  # names, or "all-linear"
    d_initial: float = 0.1  # start value of the per-rank scaling vector d (b starts at zero)
    projection_prng_key: int = 0  # seed of the shared random A and B: a checkpoint stores only this key

    def __post_init__(self):
        positive_whole("rank", self.rank, 256)
        self.target_modules = normalise_targets(self.target_modules)


def apply_vera(model, cfg: VeraSpec):
    """Wrap ``model`` with VeRA; only the vectors b (out) and d (rank) of each layer train.

    Layers of different shapes share one A and B sized for the largest of them (peft 0.21 slices them per layer).
    """
    from peft import VeraConfig, get_peft_model

    check_targets(model, cfg.target_modules)
    return get_peft_model(model, VeraConfig(r=cfg.rank, target_modules=cfg.target_modules, d_initial=cfg.d_initial,
                                            projection_prng_key=cfg.projection_prng_key,
                                            task_type="CAUSAL_LM"))


register_method(
    "vera", config=VeraSpec, apply=apply_vera,
    summary="VeRA: frozen random low-rank matrices shared by all layers; each layer learns only two scaling vectors",
    adds="a vector d (rank) and a vector b (out features) per target layer; A and B are random, frozen and shared",
    stores="the vectors only, plus the seed that regenerates A and B (the smallest LoRA relative)",
    trainable=(r"\.vera_lambda_[bd]\.default$",),
    title="VeRA", order=110, family="shared_projection", core=False,
    default_lr=1e-2,  # VeRA's paper trains its vectors at 1e-2 and above; moves the loss in lab 03's portrait
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W like LoRA; the rank costs nothing to store, only compute while unmerged",
)
