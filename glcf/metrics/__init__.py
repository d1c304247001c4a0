"""The metrics of the field, exactly (metrics.md): image and pixel AUROC, PRO, sPRO, thresholds.

Everything here works on numpy arrays (no torch), so that any model's maps can be scored.
"""

from __future__ import annotations

from glcf.metrics.auroc import image_auroc, image_auroc_by_type, pixel_auroc
from glcf.metrics.curves import Curve, area_under_curve
from glcf.metrics.localization import LocalizationResult
from glcf.metrics.loco_eval import evaluate_loco_maps
from glcf.metrics.maps import find_map_file, read_anomaly_map, resize_map
from glcf.metrics.pro import PRO_LIMIT, mvtec_localization, pro_auc, pro_curve
from glcf.metrics.spro import SPRO_LIMITS, loco_localization, spro_auc, spro_curve
from glcf.metrics.subsets import type_subsets
from glcf.metrics.threshold import (
    Threshold,
    calibrate_threshold,
    classification_metrics,
    classification_metrics_by_type,
)

__all__ = [
    "PRO_LIMIT",
    "SPRO_LIMITS",
    "Curve",
    "LocalizationResult",
    "Threshold",
    "area_under_curve",
    "calibrate_threshold",
    "classification_metrics",
    "classification_metrics_by_type",
    "evaluate_loco_maps",
    "find_map_file",
    "image_auroc",
    "image_auroc_by_type",
    "loco_localization",
    "mvtec_localization",
    "pixel_auroc",
    "pro_auc",
    "pro_curve",
    "read_anomaly_map",
    "resize_map",
    "spro_auc",
    "spro_curve",
    "type_subsets",
]
