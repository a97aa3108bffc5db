"""Lab 10 (chapter 10, practical verification and debugging): the bug zoo (``zoo``), sanity checks that train
(``sanity``), equivalence tests (``equivalence``), the validation suite (``suite``), the debugging panel (``panel``)
and the graded exercises. The checks and the pre-flight pipeline they meet live in the shared ``labkit.validation``."""
