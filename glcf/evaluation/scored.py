"""Evaluate a GLCF model on a category's test split: the one path of ``glcf evaluate`` and the pipeline.

:func:`evaluate_scored` predicts the test split with given statistics and threshold and writes the
report (:func:`glcf.evaluation.report.evaluate_predictions`) with the branch scores beside the model's
own; :func:`evaluate_model` first calibrates what is missing on the held-out normal images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glcf.data.types import CategoryData
from glcf.evaluation.report import EvaluationResult, evaluate_predictions
from glcf.metrics.spro import SPRO_LIMITS
from glcf.metrics.threshold import Threshold

__all__ = ["evaluate_model", "evaluate_scored", "extra_scores", "score_name"]

logger = logging.getLogger(__name__)


def score_name(scoring: Any) -> str:
    """What the image score is, for the report (e.g. ``max of the fused calibrated map``)."""
    if scoring.mode != "fused":
        fused = scoring.mode
    elif scoring.fusion == "fixed":
        fused = f"fused a={scoring.alpha:g} b={scoring.beta:g}"
    else:
        fused = "fused calibrated"
    return f"{scoring.image_score} of the {fused} map"


def extra_scores(scoring: Any, pred: Any) -> dict[str, Any]:
    """Scores reported next to the model's own: each branch alone, and the paper's std of the fused map."""
    scores = {"local": pred.local_scores, "global": pred.global_scores}
    if scoring.image_score != "std" and pred.anomaly_maps is not None:
        scores["std"] = pred.anomaly_maps.reshape(len(pred.anomaly_maps), -1).std(axis=1)  # population std
    return scores


def evaluate_scored(
    model: Any,
    data: CategoryData,
    out_dir: str | Path,
    stats: Any,
    threshold: Threshold | float | None,
    *,
    batch_size: int = 16,
    device: str = "auto",
    spro_limits: Sequence[float] = SPRO_LIMITS,
    gallery_size: int = 12,
    plots: bool = True,
    progress: bool = True,
) -> tuple[EvaluationResult, Any]:
    """Predict ``data.test`` with ``stats`` and write the report; returns it and the prediction (test order)."""
    from glcf.data.dataset import ImageDataset
    from glcf.inference import predict
    from glcf.scoring import AnomalyScorer

    scoring = model.config.scoring
    scorer = AnomalyScorer(scoring, stats, model.config.image_size)
    test = ImageDataset(data.test, model.config.image_size, model.mean, model.std)
    pred = predict(model, test, scorer, batch_size=batch_size, device=device, progress=progress, keep_maps=True)
    result = evaluate_predictions(
        data,
        pred.image_scores,
        pred.anomaly_maps,
        out_dir,
        threshold=threshold,
        score_name=score_name(scoring),
        extra_scores=extra_scores(scoring, pred),
        spro_limits=spro_limits,
        plots=plots,
        gallery_size=gallery_size,
    )
    return result, pred


def evaluate_model(
    model: Any,
    data: CategoryData,
    out_dir: str | Path,
    *,
    stats: Any = None,
    threshold: Threshold | float | None = None,
    threshold_method: str = "gumbel",
    quantile: float = 0.99,
    k: float = 3.0,
    batch_size: int = 16,
    device: str = "auto",
    spro_limits: Sequence[float] = SPRO_LIMITS,
    gallery_size: int = 12,
    plots: bool = True,
    progress: bool = True,
) -> EvaluationResult:
    """:func:`evaluate_scored`, calibrating first what is not given, on the held-out normal images only.

    The normalisation statistics (``glcf.inference.calibrate_scored``) when ``stats`` is None, and the
    threshold (``threshold_method``, ``quantile``, ``k`` of :func:`glcf.metrics.calibrate_threshold`)
    from those images' scores when ``threshold`` is None.

    Raises:
        ValueError: calibration is needed and ``data.validation`` is empty.
    """
    if stats is None or threshold is None:
        stats, threshold = _calibrate_missing(
            model, data, stats, threshold, (threshold_method, quantile, k), batch_size, device, progress
        )
    result, _ = evaluate_scored(
        model,
        data,
        out_dir,
        stats,
        threshold,
        batch_size=batch_size,
        device=device,
        spro_limits=spro_limits,
        gallery_size=gallery_size,
        plots=plots,
        progress=progress,
    )
    return result


def _calibrate_missing(
    model: Any,
    data: CategoryData,
    stats: Any,
    threshold: Threshold | float | None,
    method: tuple[str, float, float],
    batch_size: int,
    device: str,
    progress: bool,
) -> tuple[Any, Threshold | float]:
    from glcf.data.dataset import ImageDataset
    from glcf.inference import calibrate_scored, predict
    from glcf.metrics.threshold import calibrate_threshold
    from glcf.scoring import AnomalyScorer

    if not data.validation:
        msg = f"{data.path}: no held-out normal images to calibrate on (empty validation split)"
        raise ValueError(msg)
    scoring = model.config.scoring
    held_out = ImageDataset(data.validation, model.config.image_size, model.mean, model.std)
    normal_scores: np.ndarray | None = None
    if stats is None:
        logger.info("calibrating the statistics on %d held-out images (%s)", len(held_out), data.validation_source)
        stats, normal_scores = calibrate_scored(
            model, held_out, scoring, batch_size=batch_size, device=device, progress=progress
        )
    if threshold is None:
        if normal_scores is None:  # statistics given: score the held-out images with them
            scorer = AnomalyScorer(scoring, stats, model.config.image_size)
            normal = predict(model, held_out, scorer, batch_size=batch_size, device=device, progress=progress)
            normal_scores = normal.image_scores
        name, quantile, k = method
        threshold = calibrate_threshold(normal_scores, name, quantile=quantile, k=k)  # type: ignore[arg-type]
    return stats, threshold
