"""SUNet-style decoder with patch-expanding up-sampling (paper Sec. IV-B; docs/model.md, Decoders).

Used three times with independent weights: the global correspondence network Phi_G and the local
and global estimation networks Psi_L, Psi_G. From a stride-32 map of width C4:

    up0 -> scale 3 (C3, stride 16)  -> depths[0] Swin blocks
    up1 -> scale 2 (C2, stride 8)   -> depths[1] Swin blocks
    up2 -> scale 1 (C1, stride 4)

The returned tensors are the patch-expand outputs (the stage *inputs*, mirroring the encoder taps),
so widths and resolutions equal E1..E3. The authors' final stage (computed, then discarded) and
their dead modules are not built. Blocks are timm's ``SwinTransformerStage`` (NHWC, no downsample):
the window is clamped to the grid and the shift dropped when the grid is no larger than the window,
as in official Swin; W-MSA and SW-MSA alternate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from timm.models.swin_transformer import SwinTransformerStage
from torch import Tensor, nn

from glcf.layers import PatchExpand, init_trunc_normal

logger = logging.getLogger(__name__)

__all__ = ["SwinDecoder", "heads_for_width"]


def heads_for_width(width: int, head_dim: int) -> int:
    """Largest head count h with ``width % h == 0`` and ``width / h >= head_dim`` (at least 1)."""
    best = 1
    for h in range(1, width // max(head_dim, 1) + 1):
        if width % h == 0 and width // h >= head_dim:
            best = h
    return best


class SwinDecoder(nn.Module):
    """Patch-expanding Swin decoder from a stride-32 map to the three target scales.

    Args:
        in_dim: width C4 of the input map.
        widths: target widths ``(C1, C2, C3)`` (those of taps E1..E3).
        in_size: side of the input map (stride-32 grid, 7 at 224 px).
        depths: Swin blocks after up0 and after up1.
        head_dim: target head width (heads per stage from :func:`heads_for_width`).
        window_size: attention window (clamped to the grid by timm).
        mlp_ratio: MLP hidden width relative to the stage width.
        drop_path_rate: stochastic depth, linearly from 0 to this over all blocks.
    """

    def __init__(
        self,
        in_dim: int,
        widths: Sequence[int],
        in_size: int,
        depths: Sequence[int] = (6, 2),
        head_dim: int = 32,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.up0 = PatchExpand(in_dim, c3)
        self.stage1 = self._stage(c3, 2 * in_size, depths[0], head_dim, window_size, mlp_ratio, dpr[: depths[0]])
        self.up1 = PatchExpand(c3, c2)
        self.stage2 = self._stage(c2, 4 * in_size, depths[1], head_dim, window_size, mlp_ratio, dpr[depths[0] :])
        self.up2 = PatchExpand(c2, c1)
        self.apply(init_trunc_normal)

    @staticmethod
    def _stage(
        dim: int, size: int, depth: int, head_dim: int, window: int, mlp_ratio: float, dpr: list[float]
    ) -> SwinTransformerStage:
        return SwinTransformerStage(
            dim=dim,
            out_dim=dim,
            input_resolution=(size, size),
            depth=depth,
            downsample=False,
            num_heads=heads_for_width(dim, head_dim),
            window_size=window,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path=dpr,
            norm_layer=nn.LayerNorm,
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """Decode a bottleneck map.

        Args:
            x: ``[B, C4, g, g]`` at the stride-32 grid.

        Returns:
            ``[scale1 [B, C1, 8g, 8g], scale2 [B, C2, 4g, 4g], scale3 [B, C3, 2g, 2g]]``, NCHW.
        """
        x = x.permute(0, 2, 3, 1)  # NHWC for timm's Swin blocks
        s3 = self.up0(x)  # [B, 2g, 2g, C3]
        s2 = self.up1(self.stage1(s3))  # [B, 4g, 4g, C2]
        s1 = self.up2(self.stage2(s2))  # [B, 8g, 8g, C1]
        return [s.permute(0, 3, 1, 2).contiguous() for s in (s1, s2, s3)]
