"""Lab 06 exercises: ZeRO bytes per rank, the ring all-reduce's traffic, the alpha-beta time of an all-reduce, and
the stage and offload that fit 70B on 8 x 80 GB."""

from __future__ import annotations

from ...grading import Args, Exercise, expect_function, expect_value
from .paper import zero_bytes

# ---- q1: model-state bytes per rank ----------------------------------------------------------------------------------


def _zero_total(n_params, world, stage):
    return zero_bytes(n_params, world, stage)["total"]


ZERO_CASES = [Args(7.5e9, 64, 0), Args(7.5e9, 64, 1), Args(7.5e9, 64, 2), Args(7.5e9, 64, 3), Args(1e9, 8, 2),
              Args(70e9, 16, 3), Args(135e6, 2, 1)]

q1 = Exercise(
    "q1", lab="lab06", title="Model-state bytes per rank under ZeRO-0/1/2/3",
    checker=expect_function(_zero_total, ZERO_CASES, rel_tol=1e-6, mistakes=[
        (lambda p, n, s: 16 * p / n, "only ZeRO-3 divides everything by N: stages 0-2 keep some states whole."),
        (lambda p, n, s: 2 * p / (n if s >= 3 else 1) + 2 * p / (n if s >= 2 else 1) + 8 * p / (n if s >= 1 else 1),
         "mixed-precision Adam keeps K = 12 bytes per parameter (fp32 copy, momentum, variance), not 8."),
        (lambda p, n, s: 2 * p / (n if s >= 3 else 1) + 2 * p + 12 * p / (n if s >= 1 else 1),
         "ZeRO-2 and ZeRO-3 partition the gradients too."),
    ]),
    hints=("Per parameter: 2 bytes (fp16 weights) + 2 bytes (fp16 gradients) + K = 12 bytes (optimizer).",
           "Stage 1 divides the optimizer part by N, stage 2 also the gradients, stage 3 also the weights.",
           "total = 2Ψ/(N if stage >= 3) + 2Ψ/(N if stage >= 2) + 12Ψ/(N if stage >= 1)."),
    solution_code="def my_zero_bytes(n_params, world, stage):\n"
                  "    params = 2 * n_params / (world if stage >= 3 else 1)\n"
                  "    grads = 2 * n_params / (world if stage >= 2 else 1)\n"
                  "    optim = 12 * n_params / (world if stage >= 1 else 1)\n"
                  "    return params + grads + optim",
)

# ---- q2: ring all-reduce bytes sent per rank -------------------------------------------------------------------------


def _ring(n_bytes, world):
    return 2 * (world - 1) / world * n_bytes


RING_CASES = [Args(1e9, 2), Args(1e9, 8), Args(14e9, 1024), Args(4096, 4), Args(1e6, 1)]

q2 = Exercise(
    "q2", lab="lab06", title="The ring all-reduce: bytes each rank sends",
    checker=expect_function(_ring, RING_CASES, rel_tol=1e-9, mistakes=[
        (lambda b, n: 2 * b, "close for many ranks, but each rank keeps its own 1/N chunk: 2(N-1)/N, not 2."),
        (lambda b, n: (n - 1) / n * b, "that is one phase only: a ring all-reduce is a reduce-scatter AND an all-gather."),
        (lambda b, n: 2 * (n - 1) * b, "each of the 2(N-1) ring steps sends one chunk of n/N bytes, not the whole message."),
    ]),
    hints=("The message is cut into N chunks; each ring step sends one chunk to the next rank.",
           "Reduce-scatter takes N-1 steps, all-gather another N-1.",
           "bytes sent = 2(N-1) steps x n/N bytes."),
    solution_code="def my_ring_bytes(n_bytes, world):\n    return 2 * (world - 1) / world * n_bytes",
)

# ---- q3: the alpha-beta time of an all-reduce -----------------------------------------------------------------------


def _allreduce_time(n_bytes, world, alpha_s, bandwidth):
    return 2 * (world - 1) * alpha_s + _ring(n_bytes, world) / bandwidth


TIME_CASES = [Args(1e9, 8, 5e-6, 50e9), Args(14e9, 1024, 5e-6, 50e9), Args(4096, 2, 1e-4, 1e9),
              Args(1e6, 64, 3e-5, 12.5e9)]

q3 = Exercise(
    "q3", lab="lab06", title="How long does an all-reduce take? (alpha-beta model)",
    checker=expect_function(_allreduce_time, TIME_CASES, rel_tol=1e-6, mistakes=[
        (lambda b, n, a, bw: a + _ring(b, n) / bw, "every one of the 2(N-1) ring steps pays the latency alpha."),
        (lambda b, n, a, bw: 2 * (n - 1) * a + b / bw, "the bytes on the wire are 2(N-1)/N · n, not n."),
        (lambda b, n, a, bw: 2 * (n - 1) * a, "the bandwidth term is missing: bytes sent / bandwidth."),
    ]),
    hints=("time = latency part + bandwidth part.", "Latency: 2(N-1) steps, each costing alpha seconds.",
           "Bandwidth: 2(N-1)/N · n bytes sent, at `bandwidth` bytes per second."),
    solution_code="def my_allreduce_time(n_bytes, world, alpha_s, bandwidth):\n"
                  "    return 2 * (world - 1) * alpha_s + 2 * (world - 1) / world * n_bytes / bandwidth",
)

# ---- q4: fit 70B on 8 x 80 GB ----------------------------------------------------------------------------------------


q4 = Exercise(
    "q4", lab="lab06", title="70B on 8 x 80 GB: the lowest stage, with the least offload, that fits",
    checker=expect_value((3, "optimizer"), mistakes=[
        ((3, "none"), "ZeRO-3 alone still needs 16 bytes x 70B / 8 per GPU: check it against 80 GB."),
        ((2, "optimizer"), "at stage 2 every GPU still holds all fp16 weights (2 bytes x 70B)."),
        ((3, "optimizer+params"), "that fits, but moves more to the CPU than needed: try offloading less."),
        ((1, "optimizer"), "at stage 1 every GPU holds all fp16 weights and gradients."),
    ]),
    hints=("Use plan_cluster(Cluster(n_params=70e9, gpus=8, stage=..., offload=...)).fits for each choice.",
           "Try stages from 0 up, and for each the offloads in order none, optimizer, optimizer+params.",
           "Answer as a tuple (stage, offload), e.g. (1, 'none')."),
    solution_code="choice = next((s, o) for s in (0, 1, 2, 3) for o in OFFLOADS\n"
                  "              if (s == 3 or o != 'optimizer+params')\n"
                  "              and plan_cluster(Cluster(n_params=70e9, gpus=8, stage=s, offload=o)).fits)",
)
