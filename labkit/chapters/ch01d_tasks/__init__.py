"""Lab 01d (sections 1.4-1.7: task formulations, data characteristics, losses and metrics): the three formulations
of one problem (``formulations``), what the data looks like (``datastats``), the losses written out (``losses``),
metrics and the planted pairs they rank wrong (``scoring``), the formulation panel (``panel``) and the graded
exercises."""
