"""Lab 03 (chapter 3: parameter-efficient fine-tuning methods, the LoRA family and its rivals): the sweeps over
rank and scale, placement, and initialisation/optimiser (``sweeps``), what the update learned (``spectrum``), the
family portrait with peft's published reference points (``portrait``), the figures (``figures``), the LoRA designer
panel (``panel``) and the graded exercises."""
