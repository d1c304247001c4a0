"""PRO (MVTec AD) on a hand-worked case (8-connected regions) and against a brute-force evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label as sk_label

from glcf.metrics import mvtec_localization, pro_auc, pro_curve

HAND_MAP = np.array(
    [
        [0.9, 0.1, 0.25, 0.7],
        [0.3, 0.2, 0.0, 0.5],
        [0.0, 0.6, 0.0, 0.8],
    ]
)
HAND_MASK = np.zeros((3, 4), dtype=bool)
HAND_MASK[0, 0] = HAND_MASK[1, 1] = True  # R1: diagonal neighbours -> one 8-connected region {0.9, 0.2}
HAND_MASK[1, 3] = HAND_MASK[2, 3] = True  # R2: {0.5, 0.8}


def test_hand_case_eight_connectivity():
    """Negatives {0.1, 0.25, 0.7, 0.3, 0.0, 0.0, 0.6, 0.0}, N = 8; two regions.

    Walking the scores down (positive = score >= s):
      0.9 (R1 1/2)      -> (0,    0.25)
      0.8 (R2 1/2)      -> (0,    0.50)
      0.7, 0.6 (neg)    -> (0.25, 0.50)
      0.5 (R2 full)     -> (0.25, 0.75)
      0.3, 0.25 (neg)   -> (0.50, 0.75)
      0.2 (R1 full)     -> (0.50, 1.00)
    PRO up to 0.3: 0.25 * 0.5 + 0.05 * 0.75 = 0.1625 -> / 0.3 = 0.541667
    (with 4-connectivity R1 would be two regions and the value 0.527778)
    """
    assert pro_auc([HAND_MAP], [HAND_MASK]) == pytest.approx(0.1625 / 0.3, abs=1e-12)
    c = pro_curve([HAND_MAP], [HAND_MASK])
    assert c.auc(1.0) == pytest.approx(0.25 * 0.5 + 0.25 * 0.75 + 0.5 * 1.0, abs=1e-12)


def test_good_images_add_negatives_only():
    """Adding a good image of 8 pixels all at 0.95 shifts every FPR step: N = 16, first 8 negatives at the top.

    The curve is 0 until FPR 0.5, so PRO up to 0.3 is 0 and per type equals total.
    """
    good = np.full((2, 4), 0.95)
    res = mvtec_localization([good, HAND_MAP], ["good", "crack"], [None, HAND_MASK], (0.3,))
    assert res.auc["total"][0.3] == pytest.approx(0.0, abs=1e-12)
    assert res.auc["crack"][0.3] == pytest.approx(0.0, abs=1e-12)
    assert res.n_units == {"crack": 2, "total": 2}


def _brute_pro(maps, masks, limit):
    regions = []
    for i, gt in enumerate(masks):
        lab = sk_label(gt, connectivity=2)
        regions += [(i, lab == k) for k in range(1, lab.max() + 1)]
    values = np.unique(np.concatenate([m.ravel() for m in maps]))
    xs, ys = [0.0], [0.0]
    for t in values[::-1]:
        fp = sum(np.sum(m[~g] >= t) for m, g in zip(maps, masks, strict=True))
        n = sum(np.sum(~g) for g in masks)
        xs.append(fp / n)
        ys.append(np.mean([np.mean(maps[i][r] >= t) for i, r in regions]))
    area = 0.0
    for i in range(1, len(xs)):
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < limit:
                area += (limit - x0) * (y0 + y0 + (y1 - y0) * (limit - x0) / (x1 - x0)) / 2
            break
    return area / limit


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, 9, size=(7, 8)) / 9.0 for _ in range(4)]
    masks = [np.zeros((7, 8), bool)] + [rng.random((7, 8)) < 0.3 for _ in range(3)]
    for limit in (0.1, 0.3, 1.0):
        assert pro_auc(maps, masks, limit) == pytest.approx(_brute_pro(maps, masks, limit), abs=1e-12)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="mask shape"):
        pro_auc([np.zeros((3, 3))], [np.ones((3, 4), bool)])
