"""Image AUROC (scikit-learn) and exact pixel AUROC over all test pixels (docs/evaluation.md).

Image AUROC follows the MVTec LOCO table format: all test images, good vs each anomaly type, and
``mean`` = the average of the logical and structural values (not a pooled AUROC). It is
scikit-learn's tie-aware ROC AUC; the official LOCO script's own ROC code mishandles tied scores
(equal image scores are not merged into one ROC point), so with ties the two can differ; with
continuous scores they agree.

Pixel AUROC is the Mann-Whitney statistic ``P(pos > neg) + 0.5 P(pos == neg)``, which is exactly
scikit-learn's tie-aware ``roc_auc_score``; it is computed here from sorted scores because the
pixel count of a test set (1e8 and more at the original resolution) is beyond what
``roc_auc_score`` handles in reasonable time and memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from glcf.metrics.curves import count_at_least
from glcf.metrics.subsets import type_subsets

logger = logging.getLogger(__name__)

__all__ = ["image_auroc", "image_auroc_by_type", "pixel_auroc", "pixel_auroc_sorted"]


def image_auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """scikit-learn ROC AUC of image scores; ``nan`` (with a warning) when one class is missing."""
    labels = np.asarray(labels)
    if labels.size == 0 or np.unique(labels).size < 2:
        logger.warning("image AUROC undefined: need both normal and anomalous images, got labels %s", np.unique(labels))
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def image_auroc_by_type(types: Sequence[str], labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    """AUROC of all test images (``total``) and of the normal images vs each anomaly type.

    For LOCO type names, ``mean`` is added: the average of ``logical_anomalies`` and
    ``structural_anomalies`` (when both are present).

    Args:
        types: anomaly type of each test image (its folder name).
        labels: 0 normal / 1 anomalous per image.
        scores: image scores (higher = more anomalous).
    """
    types_a = np.asarray(types)
    labels_a = np.asarray(labels)
    scores_a = np.asarray(scores, dtype=np.float64)
    if not (len(types_a) == len(labels_a) == len(scores_a)):
        msg = f"types, labels and scores differ in length: {len(types_a)}, {len(labels_a)}, {len(scores_a)}"
        raise ValueError(msg)
    out = {name: image_auroc(labels_a[keep], scores_a[keep]) for name, keep in type_subsets(types_a, labels_a)}
    if "logical_anomalies" in out and "structural_anomalies" in out:
        out["mean"] = 0.5 * (out["logical_anomalies"] + out["structural_anomalies"])
    return out


def pixel_auroc_sorted(negatives_sorted: Sequence[np.ndarray], positives: np.ndarray) -> float:
    """Exact, tie-aware AUROC from ascending-sorted negative score groups and the positive scores."""
    n_neg = sum(int(g.size) for g in negatives_sorted)
    if n_neg == 0 or positives.size == 0:
        logger.warning("pixel AUROC undefined: %d negative and %d positive pixels", n_neg, positives.size)
        return math.nan
    pos = np.sort(positives)
    # negatives strictly below each positive, and tied with it
    at_least = count_at_least(negatives_sorted, pos, strict=False)
    below = n_neg - at_least
    tied = at_least - count_at_least(negatives_sorted, pos, strict=True)
    wins = below.sum(dtype=np.float64) + 0.5 * tied.sum(dtype=np.float64)
    return float(wins / (float(n_neg) * float(pos.size)))


def pixel_auroc(anomaly_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> float:
    """Pixel AUROC over all pixels of all images.

    Args:
        anomaly_maps: one ``[H, W]`` float map per image, at the size of its mask.
        masks: one ``[H, W]`` bool ground truth per image (``None`` for a good image).
    """
    if len(anomaly_maps) != len(masks):
        msg = f"{len(anomaly_maps)} maps but {len(masks)} masks"
        raise ValueError(msg)
    neg, pos = [], []
    for i, (m, gt) in enumerate(zip(anomaly_maps, masks, strict=True)):
        if gt is None:
            neg.append(np.ravel(m))
            continue
        if gt.shape != m.shape:
            msg = f"image {i}: map shape {m.shape} differs from mask shape {gt.shape}"
            raise ValueError(msg)
        neg.append(m[~gt])
        pos.append(m[gt])
    negatives = np.sort(np.concatenate(neg)) if neg else np.empty(0)
    return pixel_auroc_sorted([negatives], np.concatenate(pos) if pos else np.empty(0))
