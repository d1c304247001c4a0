"""sPRO (MVTec LOCO AD) on hand-made cases whose curves are worked out by hand in the comments,
and against a brute-force evaluation of the definition at every threshold."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from glcf.data.types import DefectSpec
from glcf.metrics import loco_localization, spro_auc, spro_curve

REL_06 = DefectSpec("rel", 255, 0.6, True)
ABS_5 = DefectSpec("abs", 254, 5, False)
REL_1 = DefectSpec("full", 253, 1.0, True)


def _box(shape, cells):
    m = np.zeros(shape, dtype=bool)
    for c in cells:
        m[c] = True
    return m


def hand_case():
    """Good image G and anomalous image A with two overlapping defect PNGs.

    G (2x2)                A (2x3)
      0.95 0.10              0.9  0.8  0.4
      0.50 0.30              0.6  0.2  0.7

    d1 = A's pixels (0,0) (0,1) (1,0) (1,1): scores 0.9 0.8 0.6 0.2, area 4, relative 0.6 -> saturation int(2.4) = 2
    d2 = A's pixels (0,1) (0,2): scores 0.8 0.4, area 2, absolute 5 -> saturation min(5, 2) = 2
    (pixel (0,1) = 0.8 lies in both PNGs and counts for both.)
    Negatives: G's 4 pixels + A's (1,2) = 0.7 outside the union: {0.95, 0.7, 0.5, 0.3, 0.1}, N = 5.

    Positive pixel = score > t. Walking t down:
      t >= 0.95        FP 0  d1 0/2   d2 0/2 -> (0.0, 0.00)
      0.9  <= t < 0.95 FP 1  d1 0     d2 0   -> (0.2, 0.00)
      0.8  <= t < 0.9  FP 1  d1 1/2   d2 0   -> (0.2, 0.25)   y = mean(0.5, 0)
      0.7  <= t < 0.8  FP 1  d1 1     d2 1/2 -> (0.2, 0.75)
      0.6  <= t < 0.7  FP 2  d1 1     d2 1/2 -> (0.4, 0.75)
      0.5  <= t < 0.6  FP 2  d1 3/2->1        -> (0.4, 0.75)   saturated
      0.4  <= t < 0.5  FP 3                   -> (0.6, 0.75)
      0.3  <= t < 0.4  FP 3  d2 1             -> (0.6, 1.00)
      t < 0.1          FP 5                   -> (1.0, 1.00)
    Areas / limit:
      0.05: 0 (the curve is 0 up to FPR 0.2)
      0.3 : 0.1 * 0.75 / 0.3 = 0.25
      0.5 : 0.3 * 0.75 / 0.5 = 0.45
      1.0 : 0.4 * 0.75 + 0.4 * 1 = 0.70
    """
    g = np.array([[0.95, 0.10], [0.50, 0.30]], dtype=np.float32)
    a = np.array([[0.9, 0.8, 0.4], [0.6, 0.2, 0.7]], dtype=np.float32)
    d1 = _box(a.shape, [(0, 0), (0, 1), (1, 0), (1, 1)])
    d2 = _box(a.shape, [(0, 1), (0, 2)])
    return [g, a], [[], [(d1, REL_06), (d2, ABS_5)]]


def test_hand_case_saturation_overlap_and_limits():
    maps, defects = hand_case()
    auc = spro_auc(maps, defects, (0.05, 0.3, 0.5, 1.0))
    assert auc[0.05] == pytest.approx(0.0, abs=1e-12)
    assert auc[0.3] == pytest.approx(0.25, abs=1e-9)
    assert auc[0.5] == pytest.approx(0.45, abs=1e-9)
    assert auc[1.0] == pytest.approx(0.70, abs=1e-9)
    curve = spro_curve(maps, defects)
    # the corners of the hand-made table, in order ((0.4, 0.75) lies on the horizontal run from
    # (0.2, 0.75) to (0.6, 0.75): the exact polyline keeps only the points where the sPRO changes)
    pts = list(dict.fromkeys(zip(np.round(curve.fpr, 9).tolist(), np.round(curve.y, 9).tolist(), strict=True)))
    assert pts == [(0.0, 0.0), (0.2, 0.0), (0.2, 0.25), (0.2, 0.75), (0.6, 0.75), (0.6, 1.0), (1.0, 1.0)]


def test_ties_between_defect_and_normal_pixels_give_a_diagonal():
    """G = [0.5, 0.2]; A = [0.5, 0.9, 0.2] with one defect on A's first two pixels (relative 1.0 -> saturation 2).

    Negatives {0.5, 0.2, 0.2}, N = 3.
      t >= 0.9       -> (0, 0)
      0.5 <= t < 0.9 -> (0, 1/2)          (0.9 is positive)
      0.2 <= t < 0.5 -> (1/3, 1)          the tied 0.5s flip together: a diagonal from (0, 0.5)
      t < 0.2        -> (1, 1)
    Up to 0.05: y(0.05) = 0.5 + 0.5 * 0.05 / (1/3) = 0.575, area = 0.05 * (0.5 + 0.575) / 2 -> / 0.05 = 0.5375
    Up to 1.0 : (1/3) * (0.5 + 1) / 2 + (2/3) * 1 = 0.25 + 0.6667 = 0.916667
    """
    g = np.array([[0.5, 0.2]])
    a = np.array([[0.5, 0.9, 0.2]])
    d = _box(a.shape, [(0, 0), (0, 1)])
    auc = spro_auc([g, a], [[], [(d, REL_1)]], (0.05, 1.0))
    assert auc[0.05] == pytest.approx(0.5375, abs=1e-12)
    assert auc[1.0] == pytest.approx(0.25 + 2 / 3, abs=1e-12)


def test_mean_is_over_defects_not_images():
    """A1 has one defect (missed entirely), A2 has three defects (all found first); no negatives above them.

    G = [0.0, 0.0, 0.0, 0.0]; A1 = [0.1, 0.0] with defect on 0.1; A2 = [0.9, 0.9, 0.9, 0.0] with three
    one-pixel defects. Per-defect mean: at 0.1 <= t < 0.9 the y value is 3/4 (per-image mean would be 1/2).
    All negatives are 0.0: FPR stays 0 until t < 0, so the curve is (0,0) (0,3/4) (0,1) (1,1): every area = 1.
    The y values themselves are checked on the curve.
    """
    g = np.zeros((1, 4))
    a1 = np.array([[0.1, 0.0]])
    a2 = np.array([[0.9, 0.9, 0.9, 0.0]])
    d1 = [(_box(a1.shape, [(0, 0)]), REL_1)]
    d2 = [(_box(a2.shape, [(0, k)]), REL_1) for k in range(3)]
    curve = spro_curve([g, a1, a2], [[], d1, d2])
    assert 0.75 in np.round(curve.y, 12)
    assert 0.5 not in np.round(curve.y, 12)
    res = loco_localization([g, a1, a2], ["good", "logical_anomalies", "logical_anomalies"], [[], d1, d2])
    assert res.n_units == {"logical_anomalies": 4, "total": 4}


def test_zero_saturation_counts_as_saturated(caplog):
    """Relative 0.4 on a 2-pixel defect: int(0.8) = 0 -> counted as sPRO 1 at every threshold (warned).

    With a second, ordinary defect (relative 1.0, area 1, score 0.1, below every negative 0.5): the curve is
    (0, 1/2) ... (1, 1/2) then (1, 1): area up to 0.05 = 0.5 (the official script would give nan there).
    """
    g = np.full((1, 3), 0.5)
    a = np.array([[0.3, 0.3, 0.1, 0.5]])
    rel04 = DefectSpec("tiny", 9, 0.4, True)
    d = [(_box(a.shape, [(0, 0), (0, 1)]), rel04), (_box(a.shape, [(0, 2)]), REL_1)]
    with caplog.at_level(logging.WARNING):
        auc = spro_auc([g, a], [[], d], (0.05,))
    assert auc[0.05] == pytest.approx(0.5)
    assert "saturates at int(0.4 * 2) = 0 pixels" in caplog.text


def _brute_spro(maps, defects, limit):
    """The definition evaluated at every distinct threshold, integrated with a hand-written trapezoid."""
    values = np.unique(np.concatenate([m.ravel() for m in maps]))
    thresholds = np.concatenate([[values[-1] + 1], values[::-1], [values[0] - 1]])
    xs, ys = [], []
    for t in thresholds:
        fp = n = 0
        per_defect = []
        for m, ds in zip(maps, defects, strict=True):
            union = np.zeros(m.shape, bool)
            for mask, spec in ds:
                union |= mask
                sat = spec.saturation_area(int(mask.sum()))
                per_defect.append(min(np.sum(m[mask] > t) / sat, 1.0))
            fp += np.sum(m[~union] > t)
            n += np.sum(~union)
        xs.append(fp / n)
        ys.append(np.mean(per_defect))
    area = 0.0
    for i in range(1, len(xs)):
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < limit:
                y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += (limit - x0) * (y0 + y_lim) / 2
            break
    return area / limit


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    maps, defects = [], []
    for i in range(5):
        m = rng.integers(0, 7, size=(6, 7)).astype(np.float32) / 7  # few levels: many ties
        ds = []
        if i >= 2:
            for k in range(int(rng.integers(1, 4))):
                mask = rng.random(m.shape) < 0.25
                mask[k, k] = True
                rel = bool(rng.integers(0, 2))
                sat = float(rng.choice([0.3, 0.5, 1.0])) if rel else int(rng.integers(1, 8))
                ds.append((mask, DefectSpec(f"d{k}", k + 1, sat, rel)))
        maps.append(m)
        defects.append(ds)
    for limit in (0.05, 0.1, 0.3, 1.0):
        assert spro_auc(maps, defects, (limit,))[limit] == pytest.approx(_brute_spro(maps, defects, limit), abs=1e-12)


def test_per_type_fpr_pools_good_and_that_type_only():
    """A logical image's outside pixels must not enter the structural FPR.

    G = [0.0]; L = [0.9 (defect), 0.8 (outside)]; S = [0.5 (defect), 0.0 (outside)], relative 1.0 each.
    structural: negatives {0.0 (G), 0.0 (S)}: the defect 0.5 is above all -> curve (0,0) (0,1) (1,1): area 1.
    logical: negatives {0.0, 0.8}: defect 0.9 first -> (0, 1): area 1.
    total: negatives {0.0, 0.8, 0.0}: 0.9 -> (0, 1/2); 0.8 -> (1/3, 1/2); 0.5 -> (1/3, 1): area to 1.0 =
    (1/3) * 0.5 + (2/3) * 1 = 5/6. mean = average of logical and structural = 1.
    """
    g = np.array([[0.0]])
    lg = np.array([[0.9, 0.8]])
    st = np.array([[0.5, 0.0]])
    res = loco_localization(
        [g, lg, st],
        ["good", "logical_anomalies", "structural_anomalies"],
        [[], [(_box(lg.shape, [(0, 0)]), REL_1)], [(_box(st.shape, [(0, 0)]), REL_1)]],
        (1.0,),
    )
    assert res.auc["structural_anomalies"][1.0] == pytest.approx(1.0)
    assert res.auc["logical_anomalies"][1.0] == pytest.approx(1.0)
    assert res.auc["total"][1.0] == pytest.approx(5 / 6)
    assert res.auc["mean"][1.0] == pytest.approx(1.0)
    # pixel AUROC: positives {0.9, 0.5}, negatives {0.0, 0.8, 0.0}: 0.9 beats 3, 0.5 beats 2 -> 5/6
    assert res.pixel_auroc == pytest.approx(5 / 6)
