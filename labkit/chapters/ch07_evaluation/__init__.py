"""Lab 07 · evaluation, validation and monitoring: lm-eval on the kit's own tasks, intervals on every score, seeds,
calibration, an LLM judge, drift alerts, and the evaluation panel."""
