"""GLCF training loss, eq. (1)-(4) of the paper (docs/model.md, Losses).

``m(A, B)`` = mean over channels, positions and batch of ``(A - B)**2`` (the squared Frobenius norm
normalised by H*W*C and averaged over the batch), summed over the three scales:

* local estimation (2):       sum_s m(E_s, Psi_L(O)_s)
* global correspondence (1):  sum_s m(Phi_G(G)_s, E_s)
* global estimation (3):      sum_s m(Phi_G(G)_s, Psi_G(O)_s); optionally with Phi_G detached
* total (4):                  lambda-weighted sum (lambdas 1, 1, 1 in the authors' code)

The terms are computed in float32 even under bf16 autocast.
"""

from __future__ import annotations

import logging

import torch.nn.functional as F
from torch import Tensor, nn

from glcf.config import LossConfig
from glcf.features import GLCFFeatures

logger = logging.getLogger(__name__)

__all__ = ["GLCFLoss", "scale_sum_mse"]


def scale_sum_mse(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """``sum_s mean((a_s - b_s)**2)`` over matching lists of ``[B, C_s, H_s, W_s]`` maps (float32)."""
    if len(a) != len(b):
        msg = f"GLCFLoss: {len(a)} vs {len(b)} scales"
        raise ValueError(msg)
    return sum(F.mse_loss(x.float(), y.float()) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class GLCFLoss(nn.Module):
    """Weighted sum of the local-estimation, global-correspondence and global-estimation terms.

    Args:
        config: lambdas and the stop-gradient flag (``LossConfig()`` = the authors' code).
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else LossConfig()

    def forward(self, features: GLCFFeatures) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the loss.

        Args:
            features: a GLCFModel forward output.

        Returns:
            ``(total, parts)``; parts has the keys ``local_estimation``, ``global_correspondence``
            and ``global_estimation`` (unweighted, each summed over the scales).
        """
        cfg = self.config
        enc = [e.detach() for e in features.encoder]  # targets never carry gradient
        corr_target = features.global_corr
        if cfg.stop_gradient_global_target:
            corr_target = [g.detach() for g in corr_target]
        parts = {
            "local_estimation": scale_sum_mse(enc, features.local_est),
            "global_correspondence": scale_sum_mse(features.global_corr, enc),
            "global_estimation": scale_sum_mse(corr_target, features.global_est),
        }
        total = (
            cfg.local_estimation * parts["local_estimation"]
            + cfg.global_correspondence * parts["global_correspondence"]
            + cfg.global_estimation * parts["global_estimation"]
        )
        return total, parts
