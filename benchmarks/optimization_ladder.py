"""Lab 02's optimization ladder outside the notebook: each lever's tokens/s as a ratio against the plain step, all
measured in the same run (the ratio is what carries from machine to machine, not the tokens/s).

    python benchmarks/optimization_ladder.py                       # SmolLM2-135M, batch 2 x 128, 6 steps per rung
    python benchmarks/optimization_ladder.py --model tiny-llama --seq-len 32 --steps 2 --compile-backend aot_eager

Each rung is the plain step (fp32, eager attention, full fine-tuning, AdamW) with one lever switched on; a lever
that cannot run here prints the error it raised. Time it with nothing else running on the machine.
"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per rung (after one warm-up step)")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--levers", nargs="*", default=None, help="rungs to run (default: all)")
    args = parser.parse_args(argv)

    import labkit as lk
    from labkit.chapters.ch02_performance import ladder

    model, tokenizer = lk.load_model(args.model)
    texts = lk.load_corpus()["train"]["text"]
    batches = ladder.make_batches(tokenizer, texts, batch_size=args.batch_size, seq_len=args.seq_len,
                                  num_batches=args.steps + 1)
    table = ladder.run_ladder(model, batches, levers=args.levers or tuple(ladder.LEVERS), num_steps=args.steps,
                              compile_backend=args.compile_backend, progress=False)
    print(f"{args.model}, batch {args.batch_size} x {args.seq_len}, {args.steps} timed steps per rung")
    print(f"{'lever':14s} {'tokens/s':>10s} {'x plain':>8s} {'live GiB':>9s} {'pred GiB':>9s} {'loss - plain':>13s}")
    for lever, row in table.iterrows():
        if not row["ran"]:
            print(f"{lever:14s} could not run here: {row['error']}")
            continue
        print(f"{lever:14s} {row['tokens_per_s']:10.1f} {row['speedup']:8.2f} {row['live_peak_gib']:9.3f} "
              f"{row['predicted_gib']:9.3f} {row['loss_change']:+13.4f}")


if __name__ == "__main__":
    main()
