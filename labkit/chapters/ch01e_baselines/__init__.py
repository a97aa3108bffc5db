"""Lab 01e (sections 1.8-1.12: baselines, data splits, instruction tuning vs SFT, overfitting, convergence): the
baselines and the kit's few-shot prompts (``baselines``), splits that lie and the derived template ids (``splits``),
single-task SFT against an instruction mix with a held-out family (``instruct``), curves, early stopping, the
memorisation probe, the range test and time to quality (``dynamics``), the training-dynamics panel (``panel``) and
the graded exercises."""
