"""Lab 00 (setup): the exercises only; the lab itself uses the shared parts."""
