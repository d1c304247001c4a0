"""Per-type localisation curves shared by PRO and sPRO, with every test pixel sorted once (docs/evaluation.md).

An image contributes its defect-free pixel scores (negatives), its ground-truth pixel scores (for
pixel AUROC), and *units*: the regions (PRO) or defects (sPRO) whose overlap is averaged. A unit is
``(scores, denominator)``: its pixels each weigh ``1 / (denominator * n_units)`` in the curve of a
group of images; for sPRO ``scores`` are only the defect's ``saturation`` highest scores, which makes
the unit's overlap ``min(TP, saturation) / saturation`` exactly. A unit with denominator 0 (a
relative saturation that truncates to 0 pixels) counts as saturated at every threshold.

Curves per anomaly type pool the good images with that type's images (the LOCO definition); the
``total`` curve pools all test images (the MVTec AD definition).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from glcf.metrics.auroc import pixel_auroc_sorted
from glcf.metrics.curves import Curve, overlap_curve

logger = logging.getLogger(__name__)

__all__ = ["ImagePixels", "LocalizationResult", "localization_by_type"]


@dataclass
class ImagePixels:
    """The pixel scores of one test image, split by its ground truth.

    Attributes:
        anomaly_type: folder name of the image; images with no unit are normal.
        negatives: scores of pixels outside every ground-truth region ``[N_i]``.
        positives: scores of pixels inside the union of the ground truth ``[P_i]``.
        units: ``(scores, denominator)`` per region/defect.
    """

    anomaly_type: str
    negatives: np.ndarray
    positives: np.ndarray
    units: list[tuple[np.ndarray, int]] = field(default_factory=list)


@dataclass(frozen=True)
class LocalizationResult:
    """Areas under the overlap curves, per type, at each FPR limit (normalised by the limit).

    Attributes:
        auc: ``{type | "total" | "mean": {limit: value}}``; ``mean`` averages the logical and
            structural values for LOCO.
        curves: the exact curves by the same keys (without ``mean``).
        pixel_auroc: AUROC over all pixels of all test images.
        n_units: regions/defects per key.
    """

    auc: dict[str, dict[float, float]]
    curves: dict[str, Curve]
    pixel_auroc: float
    n_units: dict[str, int]


def _weighted(units: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, float]:
    n = len(units)
    scores = [s for s, d in units if d > 0]
    weights = [np.full(s.size, 1.0 / (d * n)) for s, d in units if d > 0]
    offset = sum(1 for _, d in units if d == 0) / n
    if not scores:
        return np.empty(0), np.empty(0), offset
    return np.concatenate(scores), np.concatenate(weights), offset


def localization_by_type(
    images: Sequence[ImagePixels], limits: Sequence[float], *, normal_type: str = "good"
) -> LocalizationResult:
    """Overlap curves for every anomaly type and for all test images, plus pixel AUROC.

    Args:
        images: one entry per test image; their ``negatives`` are consumed (emptied) to bound memory.
        limits: FPR integration limits (e.g. 0.3 for PRO, 0.05 for sPRO).
        normal_type: type name of images without ground truth whose negatives join every type's curve.

    Returns:
        The per-type and total results; a type without units is left out.
    """
    groups: dict[str, list[ImagePixels]] = {}
    units: dict[str, list[tuple[np.ndarray, int]]] = {}
    positives: list[np.ndarray] = []
    for im in images:
        key = normal_type if not im.units else im.anomaly_type
        groups.setdefault(key, []).append(im)
        if im.units:
            units.setdefault(key, []).extend(im.units)
            positives.append(im.positives)
    empty = np.empty(0, dtype=np.float32)
    sorted_groups: dict[str, np.ndarray] = {}
    for key, members in groups.items():
        # one array per group, filled image by image; each image's copy is released once merged,
        # so the peak stays near one extra copy of the negatives (these are ``images``' arrays)
        dtype = np.result_type(*(im.negatives.dtype for im in members))
        merged = np.empty(sum(im.negatives.size for im in members), dtype=dtype)
        at = 0
        for im in members:
            merged[at : at + im.negatives.size] = im.negatives
            at += im.negatives.size
            im.negatives = empty
        merged.sort()
        sorted_groups[key] = merged
    curves: dict[str, Curve] = {}
    for key in sorted(units):
        scores, weights, offset = _weighted(units[key])
        negs = [sorted_groups.get(normal_type, empty), sorted_groups[key]]
        curves[key] = overlap_curve(negs, scores, weights, offset=offset)
    all_units = [u for key in sorted(units) for u in units[key]]
    if all_units:
        scores, weights, offset = _weighted(all_units)
        curves["total"] = overlap_curve(list(sorted_groups.values()), scores, weights, offset=offset)
    auc = {key: {float(lim): c.auc(lim) for lim in limits} for key, c in curves.items()}
    if "logical_anomalies" in auc and "structural_anomalies" in auc:
        auc["mean"] = {
            lim: 0.5 * (auc["logical_anomalies"][lim] + auc["structural_anomalies"][lim]) for lim in auc["total"]
        }
    pos = np.concatenate(positives) if positives else empty
    pix = pixel_auroc_sorted(list(sorted_groups.values()), pos) if positives else math.nan
    n_units = {key: len(v) for key, v in units.items()} | {"total": len(all_units)}
    return LocalizationResult(auc=auc, curves=curves, pixel_auroc=pix, n_units=n_units)
