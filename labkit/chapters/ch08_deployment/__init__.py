"""Lab 08 · real-world applications and deployment: the fine-tuned SmolLM2 behind `transformers serve`, its latency
anatomy, a bounded load test, many adapters on one base, int8, a tested production checklist, and the serving
panel."""
