"""Evaluation: every metric of the field on a category's test split, written as a report.

:mod:`~glcf.evaluation.report` computes and writes the metrics from any model's scores and maps
(GLCF's or a peer's); :mod:`~glcf.evaluation.scored` scores a GLCF model and reports it (``glcf
evaluate`` and the pipeline's evaluate stage); :mod:`~glcf.evaluation.plots` draws the PNGs.
"""

from __future__ import annotations

from glcf.evaluation.report import EvaluationResult, evaluate_predictions
from glcf.evaluation.scored import evaluate_model, evaluate_scored

__all__ = ["EvaluationResult", "evaluate_model", "evaluate_predictions", "evaluate_scored"]
