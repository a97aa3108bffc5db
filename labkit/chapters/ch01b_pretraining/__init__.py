"""Lab 01b (section 1.2, pretraining vs fine-tuning): training objectives (``objectives``), the cost planner
(``planner``) and the graded exercises."""
