"""Lab 04 (chapter 4: data efficiency and curation): a raw set with planted defects cleaned stage by stage and
scored against the ground truth (``cleaning``), a first look at it (``look``), training runs scored by answer
(``runs``), selectors and data-budget curves (``selection``), noisy labels and active learning on the intents
(``intents``), the curation panel (``panel``) and the graded exercises."""
