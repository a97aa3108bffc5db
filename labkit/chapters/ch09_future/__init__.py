"""Lab 09 · the future of fine-tuning: mixtures of experts (a tiny Mixtral, SmolLM2 upcycled), retrieval-augmented
fine-tuning with bm25s, continual learning with its remedies, and merging LoRAs with peft."""
