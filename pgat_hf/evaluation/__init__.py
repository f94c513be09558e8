"""Evaluation: the per-prompt robustness protocol, metrics, paired statistics and plots.
Imports `data` and `models`."""
