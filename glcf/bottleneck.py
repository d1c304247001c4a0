"""Semantic bottleneck: MS-PEM and the semantic aggregation module SAM (paper Sec. III-B).

MS-PEM tokenises taps E2, E3, E4 to one ``g x g`` grid with non-overlapping strided convolutions
(patch sizes 4p, 2p, p; timm ``PatchEmbed``), sums the three token sets and adds the fixed MAE
sin-cos position encoding.

SAM layouts (docs/model.md, Bottleneck; ``W_e`` shared D->D Linear, ``H`` shared D->C4 head, one output
LayerNorm per decoder stream (docs/model.md, Fixes), ``A``/``B`` semantic tokens):

=======  ==========================  ====================================  ==========================
layout   encoder input               global stream G                       local stream O
=======  ==========================  ====================================  ==========================
ps       [T0; A]                     H(N_g(Dec_g(W_e Zs)))                 H(N_l(Dec_l(W_e Zp)))
pss      [T0; A]                     H(N_g(Dec_g([W_e Zs; B])))[L:]        H(N_l(Dec_l(W_e Zp)))
pgs      [T0; a] (one token, no PE)  H(N_g(Dec_g([W_e Zg; B])))[1:]        H(N_l(Dec_l(W_e Zp)))
plain    T0 ("w/o SAM" ablation)     G = O                                 H(N_l(Dec_l(W_e Z)))
=======  ==========================  ====================================  ==========================

``Z = LN(Enc(input))`` and ``Zp``/``Zs``/``Zg`` are its patch / semantic / global positions. Blocks
are timm ViT ``Block`` (pre-norm, qkv bias, no dropout, LayerNorm eps 1e-5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from glcf.layers import init_xavier, mae_sincos_pos_embed_2d

logger = logging.getLogger(__name__)

__all__ = ["SAM_LAYOUTS", "MSPatchEmbed", "SemanticAggregation"]

SAM_LAYOUTS = ("ps", "pss", "pgs", "plain")


class MSPatchEmbed(nn.Module):
    """Multi-scale patch embedding: one strided conv per tap, token sets summed, fixed PE added.

    Args:
        in_channels: widths of the taps it reads (E2, E3, E4; or E4 only for "w/o MS-PEM").
        tap_sizes: spatial sides of those taps.
        patch_sizes: kernel = stride per tap; every ``tap_size / patch_size`` must equal ``grid``.
        dim: token width D.
    """

    def __init__(
        self, in_channels: Sequence[int], tap_sizes: Sequence[int], patch_sizes: Sequence[int], dim: int
    ) -> None:
        super().__init__()
        grids = {s // p for s, p in zip(tap_sizes, patch_sizes, strict=True)}
        if len(grids) != 1 or any(s % p for s, p in zip(tap_sizes, patch_sizes, strict=True)):
            msg = f"bottleneck.patch_sizes {tuple(patch_sizes)} do not tile taps of sides {tuple(tap_sizes)} alike"
            raise ValueError(msg)
        self.grid = grids.pop()
        self.embeds = nn.ModuleList(
            PatchEmbed(img_size=s, patch_size=p, in_chans=c, embed_dim=dim, norm_layer=None, flatten=True)
            for c, s, p in zip(in_channels, tap_sizes, patch_sizes, strict=True)
        )
        self.register_buffer("pos_embed", mae_sincos_pos_embed_2d(dim, self.grid)[None], persistent=False)
        for embed in self.embeds:  # MAE: Xavier-uniform on the flattened (out, in*k*k) weight, zero bias
            w = embed.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(embed.proj.bias)

    def forward(self, taps: Sequence[Tensor]) -> Tensor:
        """``[E_k: [B, C_k, H_k, W_k]] -> T0 [B, L, D]`` with L = grid**2 in row-major order."""
        tokens = sum(embed(t) for embed, t in zip(self.embeds, taps, strict=True))
        return tokens + self.pos_embed  # type: ignore[return-value]


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.Sequential:
    return nn.Sequential(
        *[Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(depth)]
    )


class SemanticAggregation(nn.Module):
    """SAM: latent encoder, shared re-embedding, global and local latent decoders, shared head.

    Args:
        dim: token width D.
        depth: blocks of the encoder and of each decoder.
        encoder_heads: heads of the encoder blocks.
        decoder_heads: heads of the decoder blocks.
        mlp_ratio: MLP hidden width relative to D.
        grid: side g of the token grid (L = g * g).
        out_dim: width C4 of the deepest tap (what the decoders expect).
        out_patch: tokens are un-patchified to ``out_patch x out_patch`` cells (1 when g is the
            stride-32 grid, as in the paper).
        layout: ``pss``, ``ps``, ``pgs`` or ``plain`` (the "w/o SAM" ablation).
        semantic_tokens: ``shared`` (1 x D learnable + fixed PE, the authors' code) or ``full``
            (L x D learnable + fixed PE).
        token_init_std: std of the normal init of the semantic tokens (0 = zeros, the code).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        encoder_heads: int,
        decoder_heads: int,
        mlp_ratio: float,
        grid: int,
        out_dim: int,
        out_patch: int = 1,
        layout: str = "pss",
        semantic_tokens: str = "shared",
        token_init_std: float = 0.0,
    ) -> None:
        super().__init__()
        if layout not in SAM_LAYOUTS:
            msg = f"bottleneck.layout: must be one of {', '.join(SAM_LAYOUTS)}, got {layout!r}"
            raise ValueError(msg)
        if semantic_tokens not in ("shared", "full"):
            msg = f"bottleneck.semantic_tokens: must be shared or full, got {semantic_tokens!r}"
            raise ValueError(msg)
        self.layout, self.grid, self.out_dim, self.out_patch = layout, grid, out_dim, out_patch
        num = grid * grid
        self.register_buffer("pos_embed", mae_sincos_pos_embed_2d(dim, grid)[None], persistent=False)
        self.encoder_blocks = _blocks(dim, depth, encoder_heads, mlp_ratio)
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-5)
        self.decoder_embed = nn.Linear(dim, dim)  # W_e, shared by both streams
        self.local_decoder = _blocks(dim, depth, decoder_heads, mlp_ratio)
        self.local_norm = nn.LayerNorm(dim, eps=1e-5)
        if layout != "plain":
            self.global_decoder = _blocks(dim, depth, decoder_heads, mlp_ratio)
            self.global_norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Linear(dim, out_dim * out_patch * out_patch)  # H, shared by both streams
        spatial = num if semantic_tokens == "full" else 1
        if layout in ("ps", "pss"):
            self.token_a = nn.Parameter(torch.zeros(1, spatial, dim))  # A = a + PE
        elif layout == "pgs":
            self.token_a = nn.Parameter(torch.zeros(1, 1, dim))  # one global token, no PE
        if layout in ("pss", "pgs"):
            self.token_b = nn.Parameter(torch.zeros(1, spatial, dim))  # B = b + PE
        self.apply(init_xavier)
        for name in ("token_a", "token_b"):
            token = getattr(self, name, None)
            if token is not None and token_init_std > 0:
                nn.init.normal_(token, std=token_init_std)

    def _semantic(self, token: Tensor, batch: int) -> Tensor:
        return (token + self.pos_embed).expand(batch, -1, -1)  # [B, L, D]

    def _to_map(self, tokens: Tensor) -> Tensor:
        """Head + un-patchify: ``[B, L, D] -> [B, C4, g * p, g * p]``."""
        B, g, p = tokens.shape[0], self.grid, self.out_patch
        x = self.head(tokens).view(B, g, g, p, p, self.out_dim)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, self.out_dim, g * p, g * p)

    def forward(self, t0: Tensor) -> tuple[Tensor, Tensor]:
        """Aggregate patch tokens into the global and the original patch representation.

        Args:
            t0: MS-PEM tokens ``[B, L, D]`` (PE included).

        Returns:
            ``(G, O)``, each ``[B, C4, g * p, g * p]`` (``G is O`` for the ``plain`` layout).
        """
        B, L, _ = t0.shape
        if self.layout == "pgs":
            x = torch.cat([t0, self.token_a.expand(B, -1, -1)], dim=1)  # [B, L + 1, D]
        elif self.layout == "plain":
            x = t0
        else:
            x = torch.cat([t0, self._semantic(self.token_a, B)], dim=1)  # [B, 2L, D]
        z = self.encoder_norm(self.encoder_blocks(x))
        zp, zs = z[:, :L], z[:, L:]
        local = self.local_norm(self.local_decoder(self.decoder_embed(zp)))  # [B, L, D]
        o_map = self._to_map(local)
        if self.layout == "plain":
            return o_map, o_map
        if self.layout == "ps":
            glob = self.global_decoder(self.decoder_embed(zs))
        else:  # pss: L semantic outputs + B; pgs: one global token + B; keep the outputs at B
            y = torch.cat([self.decoder_embed(zs), self._semantic(self.token_b, B)], dim=1)
            glob = self.global_decoder(y)[:, zs.shape[1] :]
        return self._to_map(self.global_norm(glob)), o_map
