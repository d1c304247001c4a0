"""Area under a curve up to an FPR limit, with the y value at the limit interpolated."""

from __future__ import annotations

import numpy as np
import pytest

from glcf.metrics import area_under_curve


def test_limit_between_points_is_interpolated():
    # (0,0)-(0.2,0.4)-(0.4,0.4): up to 0.1, y(0.1) = 0.2 -> area 0.1 * 0.2 / 2 = 0.01
    x, y = np.array([0.0, 0.2, 0.4, 1.0]), np.array([0.0, 0.4, 0.4, 1.0])
    assert area_under_curve(x, y, 0.1) == pytest.approx(0.01)
    # up to 0.3: 0.2 * 0.4 / 2 + 0.1 * 0.4 = 0.08
    assert area_under_curve(x, y, 0.3) == pytest.approx(0.08)
    # whole: 0.04 + 0.08 + 0.6 * 0.7 = 0.54
    assert area_under_curve(x, y, 1.0) == pytest.approx(0.54)


def test_vertical_steps_use_the_last_point_at_an_fpr():
    # (0,0)-(0.1,0)-(0.1,1)-(1,1): the jump at 0.1 counts fully after it
    x, y = np.array([0.0, 0.1, 0.1, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])
    assert area_under_curve(x, y, 0.1) == pytest.approx(0.0)
    assert area_under_curve(x, y, 0.2) == pytest.approx(0.1)


def test_bad_inputs():
    with pytest.raises(ValueError, match="limit"):
        area_under_curve(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        area_under_curve(np.array([0.0, 0.5, 0.4, 1.0]), np.zeros(4), 0.3)
