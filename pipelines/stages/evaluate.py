"""Stage ``evaluate``: every metric of the field on the test split, plots and per-image scores.

Writes ``reports/<category>/headline.json`` (the DVC metrics: a dozen headline figures),
``metrics.json`` (every figure), ``per_image.csv``, PNG plots (DVC image plots) and one ROC table per
anomaly type under ``roc/``, and logs all of it to the category's MLflow run.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io import read_json, write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.stages.common import load_prepared, numeric_summary

logger = logging.getLogger(__name__)


#: The headline of an evaluation (``headline.json``, the DVC metrics, ``glcf report``, the Prefect artifact):
#: short name -> ``metrics.json`` summary key; short, so that ``dvc metrics show`` fits one line per category.
#: ``threshold`` comes from calibration.
HEADLINE = {
    "auroc": "image_auroc_total",
    "logical": "image_auroc_logical_anomalies",
    "structural": "image_auroc_structural_anomalies",
    "local": "image_auroc_local_total",
    "global": "image_auroc_global_total",
    "pixel_auroc": "pixel_auroc",
    "spro_0.05": "spro_0.05_mean",
    "pro_0.3": "pro_0.3_total",  # MVTec AD layouts (LOCO ones have sPRO)
    "f1": "f1_total",
    "fpr_good": "false_alarm_rate_good",
    "fpr_target": "false_alarm_target",
}


def headline(summary: dict[str, float], threshold: float) -> dict[str, float]:
    """The headline figures the evaluation has (a layout without masks has no pixel figures)."""
    return {short: summary[key] for short, key in HEADLINE.items() if key in summary} | {"threshold": threshold}


@dataclass(frozen=True)
class EvaluateResult:
    """The metrics file and the flat summary that the registry and the gate use."""

    metrics_path: Path
    summary: dict[str, float]


def write_roc_tables(out_dir: Path, types: list[str], labels: list[int], scores: np.ndarray) -> None:
    """``roc/<type>.csv`` (fpr, tpr, threshold): good images vs each anomaly type, and ``total``."""
    from sklearn.metrics import roc_curve

    from glcf.metrics import type_subsets

    y = np.asarray(labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, keep in type_subsets(types, y):
        if len(set(y[keep])) < 2:
            continue
        fpr, tpr, thr = roc_curve(y[keep], scores[keep])
        with (out_dir / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["fpr", "tpr", "threshold"])
            writer.writerows(zip(fpr.round(6), tpr.round(6), np.where(np.isfinite(thr), thr, 1e30), strict=True))


def evaluate_category(
    params: PipelineParams,
    data: Any,
    model: Any,
    stats: Any,
    threshold: Any,
    out_dir: Path,
    *,
    progress: bool,
    plots: bool,
) -> Any:
    """Predict the test split and write the evaluation report (shared with the promotion review)."""
    from glcf.evaluation import evaluate_scored

    return evaluate_scored(
        model,
        data,
        out_dir,
        stats,
        threshold,
        batch_size=params.evaluate.batch_size,
        device=params.glcf.train.device,
        spro_limits=params.evaluate.max_fpr_limits,
        gallery_size=params.evaluate.gallery_size,
        plots=plots,
        progress=progress,
    )


def run_evaluate(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> EvaluateResult:
    import mlflow

    from glcf.metrics import Threshold
    from glcf.model.stats import NormStats
    from pipelines import tracking
    from pipelines.stages.calibrate import load_model

    data, manifest = load_prepared(params, paths)
    model = load_model(params, paths)
    calibration = read_json(paths.calibration, "calibration (run the calibrate stage first)")
    stats = NormStats.from_dict(calibration["norm_stats"])
    threshold = Threshold(**calibration["threshold"])
    result, pred = evaluate_category(
        params, data, model, stats, threshold, paths.report_dir, progress=progress, plots=True
    )
    metrics = dict(result.metrics)
    metrics["test_split_hash"] = manifest["hashes"]["test"]
    write_json(paths.metrics, metrics)
    types = [s.anomaly_type for s in data.test]
    write_roc_tables(paths.roc, types, [s.label for s in data.test], pred.image_scores)
    summary = numeric_summary(metrics)
    with tracking.category_run(params, paths, stage="evaluate", data_hash=manifest["hashes"]["data"]):
        tracking.log_flat_metrics(summary)
        mlflow.log_artifact(str(paths.metrics), "evaluation")
        mlflow.log_artifact(str(result.csv_path), "evaluation")
        tracking.log_dir(paths.plots, "evaluation/plots")
        tracking.log_dir(paths.roc, "evaluation/roc")
        mlflow.set_tag("glcf.test_split_hash", manifest["hashes"]["test"])
    figures = headline(summary, threshold.value)
    write_json(paths.headline, figures)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if k in ("auroc", "logical", "structural", "fpr_good"))
    logger.info("%s: %s -> %s", paths.category, shown, paths.report_dir.relative_to(paths.root))
    return EvaluateResult(paths.metrics, summary)
