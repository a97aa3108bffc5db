"""Lab 01c (section 1.3, transfer learning): what each layer knows (``probes``), the freeze-depth ladder
(``ladder``) and the graded exercises."""
