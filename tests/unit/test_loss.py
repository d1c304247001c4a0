"""GLCFLoss, eq. (1)-(4): values against numpy, lambda weighting, stop-gradient flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glcf.config import LossConfig
from glcf.features import GLCFFeatures
from glcf.loss import GLCFLoss

WIDTHS, SIZES = (4, 6, 8), (8, 4, 2)


def maps(seed: int, batch: int = 3, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, s, s, generator=g).requires_grad_(requires_grad)
        for c, s in zip(WIDTHS, SIZES, strict=True)
    ]


def np_m(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """m(A, B) = 1/(B H W C) sum (A - B)^2, summed over the scales (paper eq. (1)-(4))."""
    total = 0.0
    for x, y in zip(a, b, strict=True):
        d = x.detach().numpy().astype(np.float64) - y.detach().numpy().astype(np.float64)
        bsz, c, h, w = d.shape
        total += float((d**2).sum() / (bsz * c * h * w))
    return total


def test_zero_for_identical_features() -> None:
    e = maps(0)
    total, parts = GLCFLoss()(GLCFFeatures(e, e, e, e))
    assert float(total) == 0.0
    assert set(parts) == {"local_estimation", "global_correspondence", "global_estimation"}
    assert all(float(v) == 0.0 for v in parts.values())


def test_values_match_the_formula() -> None:
    e, gc, le, ge = maps(0), maps(1), maps(2), maps(3)
    total, parts = GLCFLoss()(GLCFFeatures(e, gc, le, ge))
    assert float(parts["local_estimation"]) == pytest.approx(np_m(e, le), rel=1e-5)
    assert float(parts["global_correspondence"]) == pytest.approx(np_m(gc, e), rel=1e-5)
    assert float(parts["global_estimation"]) == pytest.approx(np_m(gc, ge), rel=1e-5)
    assert float(total) == pytest.approx(np_m(e, le) + np_m(gc, e) + np_m(gc, ge), rel=1e-5)
    assert float(total) > 0


def test_lambda_weighting() -> None:
    e, gc, le, ge = maps(0), maps(1), maps(2), maps(3)
    cfg = LossConfig(local_estimation=2.0, global_correspondence=0.5, global_estimation=0.0)
    total, parts = GLCFLoss(cfg)(GLCFFeatures(e, gc, le, ge))
    assert float(total) == pytest.approx(2.0 * np_m(e, le) + 0.5 * np_m(gc, e), rel=1e-5)
    assert float(parts["global_estimation"]) == pytest.approx(np_m(gc, ge), rel=1e-5)  # parts are unweighted


@pytest.mark.parametrize("stop", [False, True])
def test_stop_gradient_on_global_target(stop: bool) -> None:
    e, gc, le, ge = maps(0), maps(1, requires_grad=True), maps(2), maps(3, requires_grad=True)
    cfg = LossConfig(
        local_estimation=0.0, global_correspondence=0.0, global_estimation=1.0, stop_gradient_global_target=stop
    )
    total, _ = GLCFLoss(cfg)(GLCFFeatures(e, gc, le, ge))
    total.backward()
    assert all(t.grad is not None and torch.count_nonzero(t.grad) > 0 for t in ge)  # Psi_G always learns
    if stop:  # only the lambda-0 correspondence term touches Phi_G: exactly zero gradient
        assert all(t.grad is None or torch.count_nonzero(t.grad) == 0 for t in gc)
    else:  # the authors' code: eq. (3) also pulls Phi_G towards Psi_G; d/dA mean((A-B)^2) = 2(A-B)/N
        for a, b in zip(gc, ge, strict=True):
            torch.testing.assert_close(a.grad, 2 * (a - b).detach() / a.numel())


def test_encoder_targets_get_no_gradient() -> None:
    e, gc, le, ge = maps(0, requires_grad=True), maps(1, requires_grad=True), maps(2), maps(3)
    total, _ = GLCFLoss()(GLCFFeatures(e, gc, le, ge))
    total.backward()
    assert all(t.grad is None for t in e)


def test_bf16_inputs_are_reduced_in_float32() -> None:
    e, le = [t.bfloat16() for t in maps(0)], [t.bfloat16() for t in maps(2)]
    total, parts = GLCFLoss()(GLCFFeatures(e, e, le, e))
    assert total.dtype == torch.float32
    assert float(parts["local_estimation"]) == pytest.approx(np_m([t.float() for t in e], [t.float() for t in le]))
