"""Stage ``calibrate``: normalisation statistics and the decision threshold on held-out normal images.

mu and sigma per branch and scale (paper eq. (6); docs/model.md, Normalisation statistics: held-out images, the
same smoothing as at test time) come from the ``validation`` split (LOCO ``validation/good`` or a
seeded hold-out of ``train/good``). The image threshold is a quantile (or mean + k std) of the same
held-out images' scores: no test image is ever used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glcf.config import MEMORY_FILL_KEYS
from pipelines.io import write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.stages.common import StageInputError, dataset, load_prepared

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrateResult:
    """The calibration file and its threshold."""

    calibration: Path
    threshold: float
    n_images: int


def load_model(params: PipelineParams, paths: CategoryPaths) -> Any:
    """The trained model of the category with the scoring settings of ``params`` (not retrained)."""
    from glcf.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(paths.checkpoint)
    model = loaded.model
    for key in MEMORY_FILL_KEYS:  # what the memories hold was decided in training
        trained, wanted = getattr(model.config.scoring, key), getattr(params.glcf.scoring, key)
        if trained != wanted:
            msg = f"{paths.checkpoint}: memories filled with scoring.{key}={trained}, params say {wanted}; re-run train"
            raise StageInputError(msg)
    model.config = model.config.replace(scoring=params.glcf.scoring)
    return model


def run_calibrate(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> CalibrateResult:
    import mlflow

    from glcf.config import config_to_dict
    from glcf.inference import calibrate
    from glcf.metrics import calibrate_threshold
    from pipelines import tracking

    data, manifest = load_prepared(params, paths)
    if not data.validation:
        msg = f"{paths.manifest}: no held-out normal images to calibrate on (validation split is empty)"
        raise StageInputError(msg)
    model = load_model(params, paths)
    held_out = dataset(data.validation, model)
    bs = params.calibrate.batch_size
    calibration = calibrate(model, held_out, params.glcf.scoring, batch_size=bs, progress=progress)
    stats, scores = calibration.stats, calibration.image_scores
    cfg = params.calibrate.threshold
    threshold = calibrate_threshold(scores, cfg.method, quantile=cfg.quantile, k=cfg.k)
    record = {
        "norm_stats": stats.to_dict(),
        "threshold": threshold.to_dict(),
        "scoring": config_to_dict(params.glcf.scoring),
        "held_out": {
            "source": manifest["validation_source"],
            "n_images": len(held_out),
            "score_mean": float(scores.mean()),
            "score_std": float(scores.std()),
            "score_max": float(scores.max()),
        },
    }
    write_json(paths.calibration, record)
    with tracking.category_run(params, paths, stage="calibrate", data_hash=manifest["hashes"]["data"]):
        mlflow.log_dict(record, "calibration/calibration.json")
        prefix = tracking.CALIBRATION_METRICS
        mlflow.log_metrics({f"{prefix}threshold": threshold.value, f"{prefix}n_images": float(len(held_out))})
        tracking.log_flat_metrics(stats.to_dict(), prefix=prefix)
    logger.info("%s: threshold %.4g from %d held-out images", paths.category, threshold.value, len(held_out))
    return CalibrateResult(paths.calibration, threshold.value, len(held_out))
