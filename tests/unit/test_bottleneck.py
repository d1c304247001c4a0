"""MS-PEM and SAM: position encoding vs MAE's numpy formula, layouts, shapes, parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block

from glcf.bottleneck import MSPatchEmbed, SemanticAggregation
from glcf.layers import mae_sincos_pos_embed_2d


def mae_numpy_pos_embed(embed_dim: int, grid_size: int, cls_token: bool = False) -> np.ndarray:
    """MAE's util/pos_embed.py recipe, re-typed in numpy (meshgrid with w first, sin then cos)."""

    def one_d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


@pytest.mark.parametrize(("dim", "grid"), [(240, 7), (32, 2), (64, 5)])
def test_position_encoding_matches_mae(dim: int, grid: int) -> None:
    ours = mae_sincos_pos_embed_2d(dim, grid).numpy()
    reference = mae_numpy_pos_embed(dim, grid, cls_token=True)[1:]  # the code adds rows 1..L only
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_position_encoding_column_first_quirk() -> None:
    pe = mae_sincos_pos_embed_2d(240, 7)
    # token 1 = (row 0, col 1): first half (column) changes, second half (row) equals token 0's
    assert not torch.allclose(pe[1, :120], pe[0, :120])
    torch.testing.assert_close(pe[1, 120:], pe[0, 120:])
    # token 7 = (row 1, col 0): the reverse
    torch.testing.assert_close(pe[7, :120], pe[0, :120])
    assert pe[0, 0] == 0.0  # sin(0)
    assert pe[0, 60] == 1.0  # cos(0), channel 60 = first cosine of the column half
    with pytest.raises(ValueError, match="multiple of 4"):
        mae_sincos_pos_embed_2d(30, 7)


def test_ms_pem_paper_counts_and_shapes() -> None:
    pem = MSPatchEmbed((192, 384, 768), (28, 14, 7), (4, 2, 1), 240)
    # hand counts (docs/model.md, Parameter counts): 192*4*4*240+240, 384*2*2*240+240, 768*240+240
    assert [sum(p.numel() for p in e.parameters()) for e in pem.embeds] == [737_520, 368_880, 184_560]
    taps = [torch.randn(2, 192, 28, 28), torch.randn(2, 384, 14, 14), torch.randn(2, 768, 7, 7)]
    t0 = pem(taps)
    assert t0.shape == (2, 49, 240)
    assert not pem.pos_embed.requires_grad
    for e in pem.embeds:
        w = e.proj.weight
        fan_out, fan_in = w.shape[0], w[0].numel()
        assert w.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5  # Xavier-uniform bound on the flattened view
        assert w.std() > 0.5 * (2 / (fan_in + fan_out)) ** 0.5
        assert torch.count_nonzero(e.proj.bias) == 0


def test_ms_pem_sums_tokens_row_major() -> None:
    pem = MSPatchEmbed((4, 4), (8, 4), (2, 1), 8)
    a, b = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)
    t0 = pem([a, b])
    conv_a = pem.embeds[0].proj(a).flatten(2).transpose(1, 2)
    conv_b = pem.embeds[1].proj(b).flatten(2).transpose(1, 2)
    torch.testing.assert_close(t0, conv_a + conv_b + mae_sincos_pos_embed_2d(8, 4)[None])
    with pytest.raises(ValueError, match="patch_sizes"):
        MSPatchEmbed((4, 4), (8, 4), (4, 1), 8)


def test_vit_block_count_at_d240() -> None:
    block = Block(240, 12, mlp_ratio=4.0, qkv_bias=True, norm_layer=torch.nn.LayerNorm)
    assert sum(p.numel() for p in block.parameters()) == 694_320  # docs/model.md, Parameter counts
    assert block.norm1.eps == 1e-5


def sam(layout: str, **kw: object) -> SemanticAggregation:
    args = {"dim": 32, "depth": 1, "encoder_heads": 2, "decoder_heads": 4, "mlp_ratio": 2.0, "grid": 3, "out_dim": 20}
    return SemanticAggregation(**{**args, **kw}, layout=layout)  # type: ignore[arg-type]


def _lengths(model: SemanticAggregation) -> dict[str, int]:
    seen: dict[str, int] = {}
    model.encoder_blocks.register_forward_hook(lambda m, i, o: seen.__setitem__("encoder", i[0].shape[1]))
    if hasattr(model, "global_decoder"):
        model.global_decoder.register_forward_hook(lambda m, i, o: seen.__setitem__("global", i[0].shape[1]))
    model.local_decoder.register_forward_hook(lambda m, i, o: seen.__setitem__("local", i[0].shape[1]))
    return seen


@pytest.mark.parametrize(
    ("layout", "encoder_len", "global_len"),
    [("pss", 18, 18), ("ps", 18, 9), ("pgs", 10, 10), ("plain", 9, None)],
)
def test_sam_layout_token_flow(layout: str, encoder_len: int, global_len: int | None) -> None:
    """docs/model.md, Bottleneck (SAM layouts) with L = 9: encoder / global-decoder sequence lengths of each layout."""
    model = sam(layout)
    seen = _lengths(model)
    g, o = model(torch.randn(2, 9, 32))
    assert g.shape == o.shape == (2, 20, 3, 3)
    assert seen["encoder"] == encoder_len
    assert seen["local"] == 9
    assert seen.get("global") == global_len
    if layout == "plain":
        assert g is o


def test_sam_parameter_counts_and_tokens() -> None:
    d, L = 240, 49
    paper = SemanticAggregation(d, 6, 12, 16, 4.0, grid=7, out_dim=768, layout="pss")
    # 18 blocks + encoder LN + W_e + 2 output LNs + head 240->768 + tokens a, b (docs/model.md)
    expected = 18 * 694_320 + 480 + 57_840 + 2 * 480 + 185_088 + 2 * 240
    assert sum(p.numel() for p in paper.parameters()) == expected == 12_742_608
    assert paper.token_a.shape == paper.token_b.shape == (1, 1, d)
    assert torch.count_nonzero(paper.token_a) == 0  # the code's zero init
    full = SemanticAggregation(d, 1, 12, 16, 4.0, grid=7, out_dim=768, layout="pss", semantic_tokens="full")
    assert full.token_a.shape == full.token_b.shape == (1, L, d)
    pgs = SemanticAggregation(d, 1, 12, 16, 4.0, grid=7, out_dim=768, layout="pgs", semantic_tokens="full")
    assert pgs.token_a.shape == (1, 1, d)  # one global token whatever the setting
    assert pgs.token_b.shape == (1, L, d)
    noisy = sam("pss", token_init_std=0.02)
    assert 0.005 < float(noisy.token_a.detach().std()) < 0.06
    assert not hasattr(sam("plain"), "token_a")
    assert isinstance(paper.head, torch.nn.Linear)
    assert torch.count_nonzero(paper.head.bias) == 0


def test_sam_unpatchify_when_token_grid_is_coarser() -> None:
    model = sam("pss", grid=2, out_patch=2)
    g, o = model(torch.randn(1, 4, 32))
    assert g.shape == o.shape == (1, 20, 4, 4)
    # token (0, 1) fills only the 2x2 cell at rows 0-1, columns 2-3
    tokens = torch.zeros(1, 4, 32)
    tokens[0, 1] = torch.randn(32)
    out = model._to_map(tokens) - model._to_map(torch.zeros(1, 4, 32))
    changed = out.abs().sum(1)[0] > 0
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0:2, 2:4] = True
    assert torch.equal(changed, expected)
