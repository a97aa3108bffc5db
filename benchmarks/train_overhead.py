"""How much lk.train costs over a minimal PyTorch loop (and over transformers.Trainer) on the same LoRA run.

All three train the same LoRA adapter (reset to the same start) in one process, on packed rows of exactly
``--seq-len`` tokens (no padding, so every step is batch x seq_len tokens in all three), with the same optimizer
(torch's AdamW, single-tensor on the CPU; Trainer is told ``optim="adamw_torch"``, as its own default is the fused
AdamW), gradient clipping at 1.0 and a constant learning rate. Each is timed from its first step to its last; the
three run in a rotating order in every round and the best of ``--rounds`` is kept (the machine may be shared: one
run alone is noise). Each run starts from the same C heap: lk.train trims glibc's cache of freed blocks
(malloc_trim) before its first step so that its resident peak starts from live memory, and its first step then
pays the page faults of getting that memory back (about 0.3 s of a 13 s run of SmolLM2 here). So the benchmark
trims before the plain loop and Trainer too, as a fresh process would start them; ``--warm-heap`` skips that and
lets them reuse the cache the previous run left. Prints ``throughput_ratio: X`` (kit / plain; the goal is
X >= 0.95), the ratio against Trainer (goal >= 1.0), the median over the rounds of the kit's ratio to each within
its round, Trainer with its default fused AdamW for reference, what ``live_memory=True`` costs (one profiled step)
with the resident and live peaks, and finally what ``exact_memory=True`` costs (it changes the C allocator for the
rest of the process).

    python benchmarks/train_overhead.py                 # smollm2-135m, batch 4 x 128, 6 steps, 3 rounds
    python benchmarks/train_overhead.py --model tiny-llama --steps 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-trainer", action="store_true", help="skip the transformers.Trainer comparison")
    parser.add_argument("--warm-heap", action="store_true",
                        help="let the plain loop and Trainer reuse the C heap's cache (lk.train trims it either way)")
    args = parser.parse_args()

    import datasets
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from labkit import apply_method, load_model
    from labkit.batches import Batcher, collate, tokenize
    from labkit.data import load_corpus
    from labkit.training import train

    lr, steps, bs = 2e-4, args.steps, args.batch_size
    model, tokenizer = load_model(args.model)
    model = apply_method(model, "lora", rank=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    params = [p for p in model.parameters() if p.requires_grad]
    start_state = [p.detach().clone() for p in params]
    texts = load_corpus()["train"]["text"][:300]
    examples = tokenize(texts, tokenizer, "causal_lm", seq_len=args.seq_len)
    data = datasets.Dataset.from_list(examples)
    pad_id = tokenizer.pad_token_id
    tokens_per_step = bs * args.seq_len

    from labkit.meters import measure

    def reset():
        with torch.no_grad():
            for p, p0 in zip(params, start_state):
                p.copy_(p0)
        if not args.warm_heap:
            measure._trim_glibc_heap()  # the start lk.train gives itself (measure_peak_memory), for all three

    kit_runs = []

    def run_kit(exact_memory: bool = False, live_memory: bool = False) -> float:
        reset()
        result = train(model, tokenizer, data, objective="causal_lm", num_steps=steps, batch_size=bs,
                       seq_len=args.seq_len, lr=lr, progress=False, live_plot=False, exact_memory=exact_memory,
                       live_memory=live_memory)
        kit_runs.append(result)
        return result.tokens_per_s

    def run_plain() -> float:
        reset()
        torch.manual_seed(0)
        it = iter(Batcher(examples, bs, pad_id, seed=0))
        batches = [next(it) for _ in range(steps)]
        opt = torch.optim.AdamW(params, lr=lr)
        model.train()
        start = time.perf_counter()
        for batch in batches:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss.item()
        return steps * tokens_per_step / (time.perf_counter() - start)

    def run_trainer(optim: str | None) -> float:
        from transformers import Trainer, TrainerCallback, TrainingArguments

        class Clock(TrainerCallback):
            def on_train_begin(self, *a, **k):
                self.start = time.perf_counter()

            def on_train_end(self, *a, **k):
                self.end = time.perf_counter()

        reset()
        clock = Clock()
        with tempfile.TemporaryDirectory() as out:
            targs = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=bs,
                                      learning_rate=lr, lr_scheduler_type="constant", max_grad_norm=1.0,
                                      save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                                      logging_strategy="no", dataloader_num_workers=0, seed=0,
                                      **({"optim": optim} if optim else {}))
            trainer = Trainer(model=model, args=targs, train_dataset=data, callbacks=[clock],
                              data_collator=lambda rows: collate(rows, pad_id))
            trainer.train()
        return steps * tokens_per_step / (clock.end - clock.start)

    print(f"{args.model}, LoRA r=8 q/k/v/o, batch {bs} x {args.seq_len}, {steps} steps, "
          f"{args.rounds} rounds, {torch.get_num_threads()} threads, "
          f"{'warm C heap for plain and Trainer' if args.warm_heap else 'every run from a trimmed C heap'}")

    if getattr(measure, "_PINNED", False):
        print("note: the allocator was already pinned (exact memory mode) before the benchmark started")
    run_plain()  # warm-up: first-call allocations and kernel choices
    runs = {"kit": (run_kit, []), "plain": (run_plain, [])}
    if not args.no_trainer:
        runs["trainer"] = (lambda: run_trainer("adamw_torch"), [])
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            runs[name][1].append(runs[name][0]())
        print(f"round {r + 1}: " + ", ".join(f"{n} {runs[n][1][-1]:.0f}" for n in names) + " tokens/s")
    best = {n: max(v) for n, (_, v) in runs.items()}
    for name, value in best.items():
        print(f"{name}_tokens_per_s: {value:.1f}")
    print(f"throughput_ratio: {best['kit'] / best['plain']:.3f}")
    if not args.no_trainer:
        print(f"throughput_ratio_vs_trainer: {best['kit'] / best['trainer']:.3f}")
    # Paired: a busy spell on a shared machine slows every run of one round alike, so the ratio within each round,
    # and its median over the rounds, is steadier than the ratio of each contender's best round.
    for other in names[1:]:
        paired = statistics.median(k / o for k, o in zip(runs["kit"][1], runs[other][1]))
        print(f"median_round_ratio_vs_{other}: {paired:.3f}  (kit / {other} within each round)")
    if not args.no_trainer:
        fused = run_trainer(None)
        print(f"trainer_fused_adamw_tokens_per_s: {fused:.1f}  (Trainer's default optimizer, one run, for reference)")
    fastest = max(kit_runs, key=lambda r: r.tokens_per_s)
    live = run_kit(live_memory=True)
    print(f"live_memory_ratio: {live / best['kit']:.3f}  (kit with live_memory=True, one profiled step / kit default)")
    print(f"kit peaks above the start: {fastest.peak_mem_gib:.3f} GiB resident, {kit_runs[-1].live_peak_mem_gib:.3f} "
          "GiB live tensors (live_memory=True)")
    # Last, because it lasts for the rest of the process: exact_memory=True returns freed memory to the OS.
    exact = run_kit(exact_memory=True)
    print(f"exact_memory_tokens_per_s: {exact:.1f}")
    print(f"exact_memory_ratio: {exact / best['kit']:.3f}  (kit with exact_memory=True / kit default)")

if __name__ == "__main__":
    main()
