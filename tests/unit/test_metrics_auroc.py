"""Image AUROC per type (LOCO table format) and exact pixel AUROC, against hand values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from glcf.metrics import image_auroc, image_auroc_by_type, pixel_auroc


def test_image_auroc_by_type_hand_values():
    """good {0.1, 0.4}; logical {0.35, 0.8}; structural {0.2}.

    good vs logical: 0.35 beats 0.1 only, 0.8 beats both -> 3/4. good vs structural: 0.2 beats 0.1 -> 1/2.
    mean = 0.625. total: 0.35 -> 1, 0.8 -> 2, 0.2 -> 1 of 2 negatives -> 4/6.
    """
    types = ["good", "good", "logical_anomalies", "logical_anomalies", "structural_anomalies"]
    labels = [0, 0, 1, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8, 0.2]
    out = image_auroc_by_type(types, labels, scores)
    assert out == pytest.approx({"total": 4 / 6, "logical_anomalies": 0.75, "structural_anomalies": 0.5, "mean": 0.625})
    assert out["total"] == pytest.approx(roc_auc_score(labels, scores))


def test_image_auroc_ties_count_half():
    # one positive tied with one of two negatives: (1 + 0.5) / 2
    assert image_auroc([0, 0, 1], [0.2, 0.5, 0.5]) == pytest.approx(0.75)


def test_image_auroc_undefined_with_one_class():
    assert math.isnan(image_auroc([0, 0], [0.1, 0.2]))


@pytest.mark.parametrize("seed", range(4))
def test_pixel_auroc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, 5, size=(9, 11)).astype(np.float32) for _ in range(5)]
    masks = [None, None] + [rng.random((9, 11)) < 0.2 for _ in range(3)]
    y = np.concatenate([(g if g is not None else np.zeros((9, 11), bool)).ravel() for g in masks])
    s = np.concatenate([m.ravel() for m in maps])
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_pixel_auroc_hand_value():
    # negatives {0, 1}, positives {1, 2}: 1 ties one and beats one -> 1.5; 2 beats both -> 2; (3.5) / 4
    assert pixel_auroc([np.array([[0.0, 1.0, 1.0, 2.0]])], [np.array([[False, False, True, True]])]) == 0.875
