"""Lab 06 · scaling and distributed fine-tuning: DDP, DeepSpeed ZeRO-1/2/3, FSDP2 and ZeroRedundancyOptimizer run for
real on 2 processes through their launchers, the ZeRO paper's memory formulas checked against per-rank shard sizes,
gloo collectives fitted with the alpha-beta model, and a paper model of step time and memory up to 1,024 GPUs."""
