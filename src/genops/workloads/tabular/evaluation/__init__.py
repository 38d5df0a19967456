"""Fidelity, utility and privacy of synthetic data, and the evaluation report."""

from genops.workloads.tabular.evaluation.report import Evaluation, evaluate, render_html

__all__ = ["Evaluation", "evaluate", "render_html"]
