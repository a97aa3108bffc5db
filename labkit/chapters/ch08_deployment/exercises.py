"""Lab 08 exercises: the KV cache's bytes per token, the roofline decode speed, the concurrency that meets a p95
target on a measured curve, and merge or keep adapters for a deployment."""

from __future__ import annotations

from ...grading import Args, Exercise, expect_function

# ---- q1: KV-cache bytes per token -----------------------------------------------------------------------------------


def _kv_bytes(layers, heads, kv_heads, head_dim, dtype_bytes):
    return 2 * layers * kv_heads * head_dim * dtype_bytes


KV_CASES = [Args(30, 9, 3, 64, 4), Args(32, 32, 8, 128, 2), Args(2, 4, 2, 16, 4), Args(80, 64, 8, 128, 2)]

q1 = Exercise(
    "q1", lab="lab08", title="KV-cache bytes per token",
    checker=expect_function(_kv_bytes, KV_CASES, mistakes=[
        (lambda L, h, kv, d, b: L * kv * d * b, "the cache keeps two tensors per layer: keys and values."),
        (lambda L, h, kv, d, b: 2 * L * h * d * b, ("with grouped-query attention only the key/value heads are "
                                                    "cached: use kv_heads, not the query heads.")),
        (lambda L, h, kv, d, b: 2 * L * kv * d * b * 8, "dtype_bytes is already in bytes: no factor of 8."),
        (lambda L, h, kv, d, b: 2 * kv * d * b, "every layer keeps its own cache: multiply by the layers."),
    ]),
    hints=("Per token and per layer the cache stores one key and one value vector for each key/value head.",
           "One vector is head_dim numbers of dtype_bytes bytes each.",
           "2 (K and V) x layers x kv_heads x head_dim x dtype_bytes."),
    solution_code="def my_kv_bytes(layers, heads, kv_heads, head_dim, dtype_bytes):\n"
                  "    return 2 * layers * kv_heads * head_dim * dtype_bytes",
)

# ---- q2: the roofline decode speed ----------------------------------------------------------------------------------


def _roofline(n_params, dtype_bytes, bandwidth_gbs):
    return bandwidth_gbs * 1e9 / (n_params * dtype_bytes)


ROOF_CASES = [Args(134.5e6, 4, 20.0), Args(8e9, 2, 3350.0), Args(1e9, 1, 100.0), Args(7e9, 0.5, 900.0)]

q2 = Exercise(
    "q2", lab="lab08", title="Roofline decode tokens/s",
    checker=expect_function(_roofline, ROOF_CASES, rel_tol=1e-6, mistakes=[
        (lambda n, b, bw: bw / (n * b), "bandwidth is in GB/s: multiply by 1e9 to get bytes per second."),
        (lambda n, b, bw: bw * 1e9 / n, "each parameter is dtype_bytes bytes: divide by the bytes, not the count."),
        (lambda n, b, bw: bw * 1e9 / (n * b * 8), "dtype_bytes is already in bytes: no factor of 8."),
        (lambda n, b, bw: bw * 1e9 / (2 * n * b), ("a decode step reads each weight once; 2·N is its FLOPs, which "
                                                   "is the compute roof, not the memory one.")),
    ]),
    hints=("At batch 1 every new token reads all the weights once from memory.",
           "Bytes per token = parameters x bytes per parameter.",
           "tokens/s = (bandwidth in bytes/s) / (bytes per token); GB/s x 1e9 = bytes/s."),
    solution_code="def my_roofline(n_params, dtype_bytes, bandwidth_gbs):\n"
                  "    return bandwidth_gbs * 1e9 / (n_params * dtype_bytes)",
)

# ---- q3: the concurrency that meets a p95 target --------------------------------------------------------------------


def _meets(levels, p95_s, target_s):
    ok = [c for c, p in zip(levels, p95_s) if p <= target_s]
    return max(ok) if ok else None


P95_CASES = [Args([1, 2, 4, 8], [0.3, 0.5, 0.9, 1.8], 1.0), Args([1, 2, 4, 8], [0.3, 0.5, 0.9, 1.8], 0.2),
             Args([1, 2, 4, 8, 16], [0.2, 0.25, 0.4, 0.7, 1.5], 2.0),
             Args([1, 2, 4, 8], [0.2, 0.3, 0.6, 0.9], 0.9), Args([1, 4, 8], [1.1, 1.2, 3.0], 1.2)]

q3 = Exercise(
    "q3", lab="lab08", title="The concurrency that meets a p95 target",
    checker=expect_function(_meets, P95_CASES, mistakes=[
        (lambda lv, p, t: min([c for c, x in zip(lv, p) if x <= t], default=None),
         "many levels may meet the target: serve as many requests at once as you can, so take the highest."),
        (lambda lv, p, t: max([c for c, x in zip(lv, p) if x < t], default=None),
         "a p95 exactly at the target meets it: use <=."),
        (lambda lv, p, t: max([c for c, x in zip(lv, p) if x <= t], default=lv[0]),
         "when no level meets the target, no concurrency does: return None."),
    ]),
    hints=("A level meets the target when its p95 latency is at most target_s.",
           "Among the levels that meet it, the highest concurrency gives the most throughput.",
           "If none meets it, return None."),
    solution_code="def my_concurrency(levels, p95_s, target_s):\n"
                  "    ok = [c for c, p in zip(levels, p95_s) if p <= target_s]\n"
                  "    return max(ok) if ok else None",
)

# ---- q4: merge or keep adapters ------------------------------------------------------------------------------------


def _deploy(n_tasks, model_gib, memory_gib, mixed_batches):
    if n_tasks == 1:
        return "merged"
    if n_tasks * model_gib > memory_gib or mixed_batches:
        return "adapters"
    return "merged"


DEPLOY_CASES = [Args(1, 16.0, 80.0, False), Args(1, 16.0, 80.0, True), Args(6, 16.0, 80.0, False),
                Args(3, 16.0, 80.0, True), Args(3, 16.0, 80.0, False), Args(40, 0.5, 24.0, False)]

q4 = Exercise(
    "q4", lab="lab08", title="Merge, or keep the adapters separate?",
    checker=expect_function(_deploy, DEPLOY_CASES, mistakes=[
        (lambda n, m, mem, mix: "adapters", ("with a single task there is nothing to switch: merge it and skip the "
                                            "adapter arithmetic.")),
        (lambda n, m, mem, mix: "merged" if n == 1 or not mix else "adapters",
         "count the memory: N merged copies take N times the model."),
        (lambda n, m, mem, mix: "merged" if n == 1 or n * m <= mem else "adapters",
         "a batch that mixes tasks needs the adapters (adapter_names): merged weights serve one task each."),
    ]),
    hints=("One task: a merged model is the fastest, and there is nothing to switch.",
           "Several tasks: N merged models take N times the memory; adapters take one base plus small adapters.",
           "If the merged copies do not fit, or one batch mixes tasks, keep the adapters; otherwise merge."),
    solution_code="def my_deployment(n_tasks, model_gib, memory_gib, mixed_batches):\n"
                  "    if n_tasks == 1:\n"
                  "        return 'merged'\n"
                  "    if n_tasks * model_gib > memory_gib or mixed_batches:\n"
                  "        return 'adapters'\n"
                  "    return 'merged'",
)
