"""Decision threshold from normal images only, and the classification metrics it gives (docs/evaluation.md).

The threshold is a statistic of *held-out normal* image scores (LOCO ``validation/good``, or the
seeded hold-out of ``train/good``), never of test anomalies:

* ``quantile`` (default, q = 0.99): the q-quantile of the normal scores (numpy's linear
  interpolation). A production line wants a known false-alarm rate on good parts; q = 0.99 aims at
  about 1 % false alarms. With n normal images the estimate cannot resolve rates below ~1/n
  (for n < 100 it lies between the two highest scores): hold out enough normal images.
* ``mean_std``: mean + k * std (population std) of the normal scores, k = 3 by default.
* ``gumbel``: the q-quantile of a Gumbel distribution fitted (maximum likelihood, scipy) to the normal
  scores. Image scores are maxima over a map, and maxima have a Gumbel tail, so the fit extrapolates
  past the highest of 20-30 normal images: a target false-alarm rate of 1 - q holds where the
  empirical quantile can only return (about) the maximum.

An image is called anomalous when its score is **strictly greater** than the threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

from glcf.metrics.subsets import type_subsets

logger = logging.getLogger(__name__)

__all__ = ["Threshold", "calibrate_threshold", "classification_metrics", "classification_metrics_by_type"]

Method = Literal["quantile", "mean_std", "gumbel"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class Threshold:
    """A calibrated image-level decision threshold.

    Attributes:
        value: the threshold; scores ``> value`` are anomalous.
        method: ``quantile`` or ``mean_std``.
        quantile: q for ``quantile``.
        k: k for ``mean_std``.
        n_normal: number of normal scores it was computed from.
        normal_false_alarm_rate: fraction of those normal scores above ``value``.
    """

    value: float
    method: str
    quantile: float | None
    k: float | None
    n_normal: int
    normal_false_alarm_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_threshold(
    normal_scores: Sequence[float], method: Method = "quantile", *, quantile: float = 0.99, k: float = 3.0
) -> Threshold:
    """Threshold from held-out normal image scores.

    Raises:
        ValueError: no score, a non-finite score, or an invalid method or parameter.
    """
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        msg = "calibrate_threshold: no normal scores (hold out some normal images)"
        raise ValueError(msg)
    if not np.all(np.isfinite(scores)):
        msg = f"calibrate_threshold: {int(np.sum(~np.isfinite(scores)))} normal score(s) are not finite"
        raise ValueError(msg)
    if method in ("quantile", "gumbel"):
        if not 0.0 < quantile <= 1.0 or (method == "gumbel" and quantile == 1.0):
            msg = f"quantile must be in (0, 1], got {quantile!r}"
            raise ValueError(msg)
        value = float(np.quantile(scores, quantile)) if method == "quantile" else _gumbel_quantile(scores, quantile)
        q, kk = quantile, None
    elif method == "mean_std":
        if not math.isfinite(k):
            msg = f"k must be finite, got {k!r}"
            raise ValueError(msg)
        value = float(scores.mean() + k * scores.std())
        q, kk = None, k
    else:
        msg = f"method must be one of {', '.join(METHODS)}, got {method!r}"
        raise ValueError(msg)
    if scores.size < 20:
        logger.warning("threshold from only %d normal images: expect a noisy false-alarm rate", scores.size)
    far = float(np.mean(scores > value))
    return Threshold(value, method, q, kk, int(scores.size), far)


def _gumbel_quantile(scores: np.ndarray, q: float) -> float:
    """q-quantile of a Gumbel (right-tailed) fitted to ``scores``; a constant sample gives its value."""
    from scipy.stats import gumbel_r

    if float(scores.std()) == 0.0:
        return float(scores[0])
    loc, scale = gumbel_r.fit(scores)
    return float(gumbel_r.ppf(q, loc=loc, scale=scale))


def classification_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of ``score > threshold`` against ``labels`` (1 = anomalous).

    Precision is 0 when nothing is called anomalous (scikit-learn ``zero_division=0``).
    """
    y = np.asarray(labels, dtype=int)
    pred = (np.asarray(scores, dtype=np.float64) > threshold).astype(int)
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # 2 s: not at every CLI start

    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=1, zero_division=0)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "accuracy": float(np.mean(pred == y)) if y.size else math.nan,
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def classification_metrics_by_type(
    types: Sequence[str], labels: Sequence[int], scores: Sequence[float], threshold: float
) -> dict[str, dict[str, float]]:
    """``classification_metrics`` on all test images (``total``) and on normal + each anomaly type."""
    t = np.asarray(types)
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=np.float64)
    return {name: classification_metrics(y[keep], s[keep], threshold) for name, keep in type_subsets(t, y)}
