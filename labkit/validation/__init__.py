"""Checks to run before a long fine-tuning job: the sanity checks and the pre-flight pipeline (``checks``,
``lk.preflight``) on a small, typed fine-tuning project whose every choice can be set (``pipeline``).
Lab 10 breeds the bugs these checks catch (``labkit.chapters.ch10_debugging``)."""

from .checks import CHECKS, CheckResult, PreflightReport, preflight
from .pipeline import Recipe, Setup

__all__ = ["CHECKS", "CheckResult", "PreflightReport", "Recipe", "Setup", "preflight"]
