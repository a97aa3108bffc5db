"""Predicted vs measured peak training memory on the CPU: full fine-tuning, LoRA and QLoRA.

Each configuration runs in a fresh Python process (peaks cannot leak between runs). The child imports
everything and loads the model once to warm caches, deletes it, then measures from that baseline: loading
the model, applying the method, building the optimizer and a few training steps (batch 4 x 128 random
tokens). The prediction comes from ``lk.meters.predict_memory`` on the model's config alone.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/memory_accuracy.py [--steps 4] [--only tiny-llama]

The last line is ``max_abs_error_pct: X`` (goal: X <= 15 on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
# (model preset, method, optimizer, gradient checkpointing)
CONFIGS = [
    ("smollm2-135m", "full", "adamw", False),
    ("smollm2-135m", "lora", "adamw", False),
    ("smollm2-135m", "qlora", "adamw", False),
    ("smollm2-135m", "lora", "adamw", True),
    ("tiny-llama", "full", "adamw", False),
    ("tiny-llama", "lora", "adamw", False),
    ("tiny-llama", "qlora", "adamw", False),
    ("tiny-llama", "full", "sgd", False),
    ("tiny-llama", "full", "adamw8bit", False),
    ("tiny-llama", "lora", "adamw", True),
]
BATCH_SIZE, SEQ_LEN = 4, 128


def _method_kwargs(method: str) -> dict:
    return {"rank": 8, "alpha": 16.0, "target_modules": QKVO} if method in ("lora", "qlora") else {}


def _load(name: str, quantization):
    """A labkit preset, or "micro": a 2-layer, 64-wide Llama with a 1,000-token vocabulary (calibration)."""
    import labkit as lk

    if name != "micro":
        return lk.load_model(name, quantization=quantization, device="cpu")[0]
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=1000))


def run_one(name: str, method: str, optimizer: str, ckpt: bool, steps: int) -> dict:
    """Measure one configuration in this process and return the numbers as a dict."""
    import gc

    import torch

    import labkit as lk
    from labkit import meters
    from labkit.units import MIB

    meters.pin_glibc_allocator()  # from the start, so the warm-up's frees go back to the OS too
    quantization = "nf4" if method == "qlora" else None
    # Warm-up, not measured: imports, caches and the autograd engine's first start.
    warm = lk.apply_method(_load(name, quantization), method, **_method_kwargs(method))
    ids = torch.randint(0, warm.config.vocab_size, (1, 8))
    warm(input_ids=ids, labels=ids).loss.backward()
    del warm, ids
    gc.collect()
    step_s = []
    with meters.measure_peak_memory("cpu") as peak:
        model = _load(name, quantization)  # load_model copies 4-bit models' unquantized weights out of the file map
        model = lk.apply_method(model, method, **_method_kwargs(method))
        if ckpt:
            model.config.use_cache = False
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=1e-4)
        elif optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=1e-4)
        else:
            import bitsandbytes as bnb

            opt = bnb.optim.AdamW8bit(params, lr=1e-4)
        torch.manual_seed(0)
        for _ in range(steps):
            ids = torch.randint(0, model.config.vocab_size, (BATCH_SIZE, SEQ_LEN))
            start = time.perf_counter()
            loss = model(input_ids=ids, labels=ids).loss  # as labkit.train does: the logits are not kept
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step_s.append(time.perf_counter() - start)
    kw = {k: v for k, v in _method_kwargs(method).items() if k != "alpha"}
    est = meters.predict_memory(model.config, method, dtype="fp32", optimizer=optimizer, batch_size=BATCH_SIZE,
                                seq_len=SEQ_LEN, grad_checkpointing=ckpt, device="cpu", **kw)
    return {"model": name, "method": method, "optimizer": optimizer, "ckpt": ckpt,
            "trainable": sum(p.numel() for p in params), "predicted_mib": est.total / MIB,
            "measured_mib": peak.peak_bytes / MIB, "phase": est.phase, "s_per_step": sum(step_s[1:]) / (steps - 1),
            **{f"pred_{k}_mib": v / MIB for k, v in est.as_frame()["bytes"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="training steps per configuration (>= 2)")
    parser.add_argument("--only", default=None, help="run only this model preset")
    parser.add_argument("--calibrate", action="store_true", help="measure the fixed CPU overhead on a micro model")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: a JSON config
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the peak settles from the second step on)")
    if args.one:
        print("RESULT " + json.dumps(run_one(*json.loads(args.one), steps=args.steps)))
        return

    import pandas as pd

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    configs = [("micro", m, "adamw", False) for m in ("full", "lora")] * 3 if args.calibrate else CONFIGS
    for config in configs:
        if args.only and config[0] != args.only:
            continue
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--one", json.dumps(config)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"{config} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
        print(f"  measured {config}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    table["error_pct"] = 100 * (table["predicted_mib"] - table["measured_mib"]) / table["measured_mib"]
    cols = ["model", "method", "optimizer", "ckpt", "trainable", "predicted_mib", "measured_mib", "error_pct",
            "phase", "s_per_step"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        parts = ["model", "method", "optimizer", "ckpt"] + [c for c in table if c.startswith("pred_")]
        print("\nPredicted breakdown (MiB):")
        print(table[parts].to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    if args.calibrate:
        rest = table["measured_mib"] - table["predicted_mib"] + table["pred_overhead_mib"]
        print(f"measured minus predicted tensors (MiB): {', '.join(f'{v:.1f}' for v in rest)}")
    print(f"max_abs_error_pct: {table['error_pct'].abs().max():.1f}")


if __name__ == "__main__":
    main()
