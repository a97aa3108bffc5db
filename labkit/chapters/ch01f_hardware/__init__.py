"""Lab 01f · hardware, reproducibility and experiment tracking, safety and alignment basics: this machine measured
and placed on a roofline, runs that repeat bit for bit and restore from their record, refusal and over-refusal
before and after a benign fine-tune, canary exposure, a few steps of DPO with TRL, and the reproducibility panel."""
