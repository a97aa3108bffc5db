"""Lab 02: performance and resource optimization (where the bytes and the seconds of a training step go)."""
