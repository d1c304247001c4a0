"""The metrics of the field, exactly (docs/evaluation.md): image and pixel AUROC, PRO, sPRO, thresholds.

Everything here works on numpy arrays (no torch), so that any model's maps can be scored.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> module. Loaded on first use (PEP 562): ``pipelines.params`` reads the threshold methods at
#: every stage start, and scikit-learn's import alone takes about 2 s.
_EXPORTS = {
    "image_auroc": "auroc",
    "image_auroc_by_type": "auroc",
    "pixel_auroc": "auroc",
    "Curve": "curves",
    "area_under_curve": "curves",
    "LocalizationResult": "localization",
    "evaluate_loco_maps": "loco_eval",
    "find_map_file": "maps",
    "read_anomaly_map": "maps",
    "resize_map": "maps",
    "PRO_LIMIT": "pro",
    "mvtec_localization": "pro",
    "pro_auc": "pro",
    "pro_curve": "pro",
    "SPRO_LIMITS": "spro",
    "loco_localization": "spro",
    "spro_auc": "spro",
    "spro_curve": "spro",
    "type_subsets": "subsets",
    "Threshold": "threshold",
    "calibrate_threshold": "threshold",
    "classification_metrics": "threshold",
    "classification_metrics_by_type": "threshold",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        msg = f"module 'glcf.metrics' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"glcf.metrics.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
