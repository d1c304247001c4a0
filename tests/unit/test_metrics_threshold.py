"""Threshold calibrated on normal scores only; precision / recall / F1 at that threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from glcf.metrics import calibrate_threshold, classification_metrics, classification_metrics_by_type


def test_quantile_threshold_linear_interpolation():
    # sorted normal scores 1..5: the 0.9 quantile sits at position 0.9 * 4 = 3.6 -> 4 + 0.6 * (5 - 4) = 4.6
    thr = calibrate_threshold([5, 1, 4, 2, 3], quantile=0.9)
    assert thr.value == pytest.approx(4.6)
    assert thr.method == "quantile"
    assert thr.n_normal == 5
    assert thr.normal_false_alarm_rate == pytest.approx(0.2)  # only 5 > 4.6


def test_mean_std_threshold():
    # mean 3, population std sqrt(2): 3 + 2 * 1.414214 = 5.828427
    thr = calibrate_threshold([1, 2, 3, 4, 5], "mean_std", k=2.0)
    assert thr.value == pytest.approx(3 + 2 * np.sqrt(2))
    assert thr.normal_false_alarm_rate == 0.0


@pytest.mark.parametrize(
    ("scores", "kwargs", "message"),
    [
        ([], {}, "no normal scores"),
        ([1.0, float("nan")], {}, "not finite"),
        ([1.0], {"quantile": 1.5}, "quantile must be in"),
        ([1.0], {"method": "median"}, "method must be"),
    ],
)
def test_threshold_errors(scores, kwargs, message):
    with pytest.raises(ValueError, match=message):
        calibrate_threshold(scores, **kwargs)


def test_classification_hand_values_and_sklearn():
    """labels [0, 0, 1, 1, 1], scores [0.1, 0.6, 0.4, 0.7, 0.9], threshold 0.5 -> predictions [0, 1, 0, 1, 1].

    TP 2, FP 1, FN 1, TN 1: precision 2/3, recall 2/3, F1 2/3, accuracy 3/5.
    """
    labels, scores = [0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.7, 0.9]
    out = classification_metrics(labels, scores, 0.5)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["accuracy"] == pytest.approx(0.6)
    assert (out["tp"], out["fp"], out["tn"], out["fn"]) == (2, 1, 1, 1)
    p, r, f, _ = precision_recall_fscore_support(labels, [0, 1, 0, 1, 1], average="binary")
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((p, r, f))


def test_score_equal_to_threshold_is_normal():
    out = classification_metrics([0, 1], [0.5, 0.5], 0.5)
    assert (out["tp"], out["fp"]) == (0, 0)
    assert out["precision"] == 0.0


def test_per_type_metrics_pool_normals_with_each_type():
    types = ["good", "good", "logical_anomalies", "structural_anomalies", "structural_anomalies"]
    out = classification_metrics_by_type(types, [0, 0, 1, 1, 1], [0.1, 0.6, 0.9, 0.2, 0.8], 0.5)
    # logical: preds good [0, 1], logical [1] -> TP 1, FP 1: precision 1/2, recall 1
    assert out["logical_anomalies"]["precision"] == pytest.approx(0.5)
    assert out["logical_anomalies"]["recall"] == pytest.approx(1.0)
    # structural: TP 1 (0.8), FN 1 (0.2), FP 1 -> precision 1/2, recall 1/2
    assert out["structural_anomalies"]["recall"] == pytest.approx(0.5)
    assert out["total"]["tp"] == 2
