"""One package per lab: the code only that lab uses (its analysis and its graded exercises).

``labs/01a_paradigms.ipynb`` goes with ``labkit/chapters/ch01a_paradigms/``; the grader finds a lab's
``exercises.py`` from the lab id (``labkit.grading.labs``). A chapter may import the shared parts (models, data,
methods, meters, train, plots, widgets, grading, ...) but never another chapter, and no shared part imports a
chapter: code a second lab needs moves down into a shared part, with its tests. ``docs/layers.md`` holds the table
that ``tests/test_layers.py`` enforces.
"""
