"""Small building blocks that timm does not provide in the exact form this model needs.

* :func:`mae_sincos_pos_embed_2d`: the MAE 2-D sin-cos position table (docs/model.md, MS-PEM). timm's
  ``build_sincos2d_pos_embed`` orders the channels sin(x), sin(y), cos(x), cos(y); MAE (and the
  authors' code) uses [sin(col), cos(col), sin(row), cos(row)], so the MAE recipe is written here.
* :class:`PatchExpand`: the Swin-Unet / SUNet patch-expanding up-sampling (docs/model.md, Decoders); timm
  has patch *merging* only.
* init helpers for the two initialisation schemes of the model (MAE-style Xavier in the bottleneck,
  truncated normal in the decoders).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["PatchExpand", "init_trunc_normal", "init_xavier", "mae_sincos_pos_embed_2d"]


def _sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """``[N] -> [N, dim]``: dim/2 sines then dim/2 cosines of ``pos * 10000**(-k / (dim/2))``."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def mae_sincos_pos_embed_2d(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sin-cos position encoding of MAE for a ``grid x grid`` token map.

    The first ``dim/2`` channels encode the column index, the last ``dim/2`` the row index (MAE's
    meshgrid quirk); tokens are in row-major order (index = row * grid + col). MAE's extra zero row
    for an unused CLS token is not built.

    Args:
        dim: embedding width D (a multiple of 4).
        grid: side of the token grid.

    Returns:
        ``[grid * grid, dim]`` float32 table.
    """
    if dim % 4:
        msg = f"bottleneck.dim: the 2-D sin-cos position encoding needs a multiple of 4, got {dim}"
        raise ValueError(msg)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    emb = torch.cat([_sincos_1d(dim // 2, cols.flatten()), _sincos_1d(dim // 2, rows.flatten())], dim=1)
    return emb.to(torch.float32)


class PatchExpand(nn.Module):
    """Patch expanding x2 (SUNet): bias-free Linear C_in -> 4 * C_out, 2x2 rearrange, LayerNorm(C_out).

    Args:
        in_dim: input channels.
        out_dim: output channels per up-sampled token.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.expand = nn.Linear(in_dim, 4 * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, H, W, C_in] -> [B, 2H, 2W, C_out]`` (channels-last, as timm's Swin blocks)."""
        B, H, W, _ = x.shape
        x = self.expand(x)  # [B, H, W, 4 C_out], channel order (p1 p2 c)
        x = x.view(B, H, W, 2, 2, self.out_dim).permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * H, 2 * W, self.out_dim)
        return self.norm(x)


def init_xavier(module: nn.Module) -> None:
    """MAE init for ``module.apply``: Linear Xavier-uniform / bias 0, LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """Swin init for ``module.apply``: Linear truncated-normal(std) / bias 0, LayerNorm 1 / 0,
    relative-position bias tables truncated-normal(std)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    table = getattr(module, "relative_position_bias_table", None)
    if isinstance(table, nn.Parameter):
        nn.init.trunc_normal_(table, std=std)
