"""Lab 01a (section 1.1, paradigms): every method under one budget (``compare``), the which-to-pick advisor
(``advisor``) and the graded exercises."""
