"""SUNet-style decoder: shapes, patch expanding, heads, windows, drop path, init, parameter count."""

from __future__ import annotations

import pytest
import torch
from timm.layers import DropPath

from glcf.decoder import SwinDecoder, heads_for_width
from glcf.layers import PatchExpand


@pytest.fixture(scope="module")
def paper_decoder() -> SwinDecoder:
    torch.manual_seed(0)
    return SwinDecoder(768, (96, 192, 384), in_size=7, depths=(6, 2), head_dim=32, window_size=7, drop_path_rate=0.1)


def test_paper_shapes(paper_decoder: SwinDecoder) -> None:
    out = paper_decoder(torch.randn(2, 768, 7, 7))
    assert [tuple(t.shape) for t in out] == [(2, 96, 56, 56), (2, 192, 28, 28), (2, 384, 14, 14)]


def test_paper_parameter_count(paper_decoder: SwinDecoder) -> None:
    """Hand count (docs/model.md, Parameter counts: "about 13.1 M"), from the layer definitions:

    up0 768*1536 + LN 2*384 = 1,180,416; Swin block at 384 (12 heads, window 7):
    LN 768 + qkv 384*1152+1152 + proj 384*384+384 + bias table 13*13*12 + LN 768 + MLP 384*1536+1536
    + 1536*384+384 = 1,776,492, times 6; up1 384*768 + 2*192 = 295,296; block at 192 (6 heads): 445,878,
    times 2; up2 192*384 + 2*96 = 73,920.
    """
    expected = 1_180_416 + 6 * 1_776_492 + 295_296 + 2 * 445_878 + 73_920
    assert sum(p.numel() for p in paper_decoder.parameters()) == expected == 13_100_340


def test_heads_per_stage(paper_decoder: SwinDecoder) -> None:
    assert [heads_for_width(w, 32) for w in (384, 192, 96, 112, 40, 24, 320)] == [12, 6, 3, 2, 1, 1, 10]
    assert heads_for_width(24, 8) == 3
    assert heads_for_width(7, 100) == 1
    assert paper_decoder.stage1.blocks[0].attn.num_heads == 12
    assert paper_decoder.stage2.blocks[0].attn.num_heads == 6


def test_windows_shift_alternate_and_clamp(paper_decoder: SwinDecoder) -> None:
    shifts = [b.shift_size for b in paper_decoder.stage1.blocks]
    assert shifts == [(0, 0), (3, 3)] * 3  # W-MSA / SW-MSA alternating, shift = window // 2
    assert all(b.window_size == (7, 7) for b in paper_decoder.stage1.blocks)
    small = SwinDecoder(32, (8, 16, 24), in_size=2, depths=(2, 2), head_dim=8, window_size=7)
    first = small.stage1.blocks  # grid 4 < window 7: window clamped to the grid, no shift (official Swin)
    assert [b.window_size for b in first] == [(4, 4), (4, 4)]
    assert [b.shift_size for b in first] == [(0, 0), (0, 0)]
    out = small(torch.randn(1, 32, 2, 2))
    assert [tuple(t.shape) for t in out] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 24, 4, 4)]


def test_drop_path_linear_over_all_blocks(paper_decoder: SwinDecoder) -> None:
    blocks = [*paper_decoder.stage1.blocks, *paper_decoder.stage2.blocks]
    rates = [b.drop_path1.drop_prob if isinstance(b.drop_path1, DropPath) else 0.0 for b in blocks]
    assert rates == pytest.approx([0.1 * i / 7 for i in range(8)])


def test_init_truncated_normal(paper_decoder: SwinDecoder) -> None:
    linears = [m for m in paper_decoder.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.detach().flatten() for m in linears])
    assert weights.std() == pytest.approx(0.02, rel=0.05)
    assert weights.abs().max() <= 2.0 + 1e-6  # trunc_normal_ cuts at +-2 (absolute)
    assert all(m.bias is None or torch.count_nonzero(m.bias) == 0 for m in linears)
    assert paper_decoder.up0.expand.bias is None


def test_patch_expand_rearrangement() -> None:
    torch.manual_seed(1)
    pe = PatchExpand(6, 3)
    x = torch.randn(2, 2, 3, 6)
    out = pe(x)
    assert out.shape == (2, 4, 6, 3)
    y = pe.expand(x)  # [B, H, W, 4 * C_out], channels ordered (p1, p2, c) as in SUNet
    for i in range(2):
        for j in range(3):
            for p1 in range(2):
                for p2 in range(2):
                    chunk = y[:, i, j, (2 * p1 + p2) * 3 : (2 * p1 + p2 + 1) * 3]
                    ref = torch.nn.functional.layer_norm(chunk, (3,), pe.norm.weight, pe.norm.bias, 1e-5)
                    torch.testing.assert_close(out[:, 2 * i + p1, 2 * j + p2], ref)


def test_scale3_is_per_token() -> None:
    """Scale 3 is a per-token map of the input: one changed token changes only its 2x2 cell."""
    decoder = SwinDecoder(64, (8, 16, 32), in_size=7, depths=(2, 1), head_dim=8).eval()
    x = torch.randn(1, 64, 7, 7)
    y = x.clone()
    y[0, :, 3, 4] += 1.0
    with torch.no_grad():
        out_x, out_y = decoder(x), decoder(y)
    assert (out_x[1] != out_y[1]).sum() > 4 * 16  # scale 2 passes through attention: the change spreads
    diff = (out_x[2] - out_y[2]).abs().sum(1)[0] > 0
    expected = torch.zeros(14, 14, dtype=torch.bool)
    expected[6:8, 8:10] = True
    assert torch.equal(diff, expected)
