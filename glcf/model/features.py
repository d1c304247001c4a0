"""The tensors a GLCF forward pass returns (shared by the model, the loss and the scoring)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class GLCFFeatures(NamedTuple):
    """Outputs of one forward pass; the first four entries are lists of three NCHW tensors, scales 1..3.

    Scale s has stride 2**(s+1) (4, 8, 16) and the channel width of encoder tap s. The type is the
    same in train and eval mode.

    Attributes:
        encoder: frozen encoder taps E1..E3 (targets; no gradient).
        global_corr: Phi_G(G), the global correspondence network on the global semantic representation.
        local_est: Psi_L(O), the local estimation network on the original patch representation.
        global_est: Psi_G(O), the global estimation network on the original patch representation.
        patch_distance: ``[B, 1, h, w]`` distance of each stride-8 patch to the normal patch memory,
            or None (training, or no memory filled).
        layout_distance: ``[B, G]`` distance of each image's layout to the normal layout memory (a column
            per layout grid, finest first; one column with ``layout_match: whole``), or None.
        position_distance: ``[B, 1, h, w]`` Mahalanobis distance of each stride-4 patch to the normal
            Gaussian of its position, or None.
    """

    encoder: list[Tensor]
    global_corr: list[Tensor]
    local_est: list[Tensor]
    global_est: list[Tensor]
    patch_distance: Tensor | None = None
    layout_distance: Tensor | None = None
    position_distance: Tensor | None = None

    @property
    def scales(self) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """The four per-scale lists (encoder, global_corr, local_est, global_est)."""
        return self.encoder, self.global_corr, self.local_est, self.global_est
