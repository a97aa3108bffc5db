"""Lab 11 · cost modeling, budgeting and operational efficiency: the run ledger read back, MFU measured, a project
budget, fine-tune vs rent, scaling laws in miniature, energy, and the budget panel."""
