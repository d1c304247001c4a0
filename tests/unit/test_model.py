"""GLCFModel: shapes for every layout and ablation, the paper configuration, gradient flow."""

from __future__ import annotations

import pytest
import torch

from glcf.features import GLCFFeatures
from glcf.loss import GLCFLoss
from glcf.model import GLCFModel, build_glcf
from glcf.presets import preset

TINY_SHAPES = [(2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4)]  # tf_efficientnet_lite0 taps at 64 px


def shapes(tensors: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tensors]


@pytest.mark.parametrize("layout", ["pss", "ps", "pgs"])
@pytest.mark.parametrize(
    "ablation",
    [{}, {"semantic_bottleneck": False}, {"ms_pem": False}, {"sam": False}],
    ids=["full", "no_sb", "no_mspem", "no_sam"],
)
def test_tiny_shapes_every_layout_and_ablation(layout: str, ablation: dict) -> None:
    cfg = preset("tiny", bottleneck={"layout": layout}, ablation=ablation)
    model = build_glcf(cfg)
    feats = model(torch.randn(2, 3, 64, 64))
    assert isinstance(feats, GLCFFeatures)
    for branch in feats.scales:
        assert shapes(branch) == TINY_SHAPES
    taps = model.encode(torch.randn(2, 3, 64, 64))
    g, o = model.represent(taps)
    assert g.shape == o.shape == (2, 320, 2, 2)
    if ablation.get("semantic_bottleneck") is False:
        assert model.ms_pem is None
        assert model.sam is None
        assert g is taps[3]
        assert o is taps[3]
    if ablation.get("ms_pem") is False:
        assert len(model.ms_pem.embeds) == 1
        assert model.pem_taps == (3,)
    if ablation.get("sam") is False:
        assert g is o
        assert not hasattr(model.sam, "global_decoder")


def test_coarser_token_grid_is_unpatchified() -> None:
    cfg = preset("tiny", image_size=128, bottleneck={"patch_sizes": [8, 4, 2]})
    assert cfg.token_grid == 2
    model = build_glcf(cfg)
    assert model.sam.pos_embed.shape == (1, 4, 32)
    feats = model(torch.randn(1, 3, 128, 128))
    assert shapes(feats.global_corr) == [(1, 24, 32, 32), (1, 40, 16, 16), (1, 112, 8, 8)]


def test_same_type_in_train_and_eval() -> None:
    model = build_glcf(preset("tiny"))
    x = torch.randn(1, 3, 64, 64)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out) is GLCFFeatures
    assert model.mean == (0.5, 0.5, 0.5)
    assert model.std == (0.5, 0.5, 0.5)
    assert model.config == preset("tiny")


@pytest.mark.parametrize("layout", ["pss", "ps", "pgs"])
def test_gradients_reach_every_trainable_parameter(layout: str) -> None:
    torch.manual_seed(0)
    model = build_glcf(preset("tiny", bottleneck={"layout": layout}))
    loss, _ = GLCFLoss()(model(torch.randn(2, 3, 64, 64)))
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert p.grad is None, name
        else:
            assert p.grad is not None, name
            assert torch.count_nonzero(p.grad) > 0, name


def test_optimizer_step_leaves_encoder_unchanged() -> None:
    torch.manual_seed(0)
    model = build_glcf(preset("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    loss, _ = GLCFLoss()(model(torch.randn(2, 3, 64, 64)))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("local_estimation.") for k in changed)


@pytest.fixture(scope="module")
def paper() -> GLCFModel:
    torch.manual_seed(0)
    return build_glcf(preset("paper", encoder={"weights": "none"}))


def count(module: torch.nn.Module | None) -> int:
    assert module is not None
    return sum(p.numel() for p in module.parameters())


def test_paper_shapes(paper: GLCFModel) -> None:
    with torch.no_grad():
        feats = paper.eval()(torch.randn(1, 3, 224, 224))
    expected = [(1, 96, 56, 56), (1, 192, 28, 28), (1, 384, 14, 14)]  # docs/model.md, Parameter counts
    for branch in feats.scales:
        assert shapes(branch) == expected


def test_paper_parameter_counts(paper: GLCFModel) -> None:
    """Hand counts of docs/model.md: MS-PEM convs, bottleneck about 14.0 M, decoders about 13.1 M each."""
    assert paper.ms_pem is not None
    assert [count(e) for e in paper.ms_pem.embeds] == [737_520, 368_880, 184_560]
    bottleneck = count(paper.ms_pem) + count(paper.sam)
    assert bottleneck == pytest.approx(14.0e6, abs=0.05e6)
    for decoder in (paper.global_correspondence, paper.local_estimation, paper.global_estimation):
        assert count(decoder) == pytest.approx(13.1e6, abs=0.05e6)
    trainable = sum(p.numel() for p in paper.trainable_parameters())
    assert trainable == bottleneck + 3 * count(paper.local_estimation)
    assert all(not p.requires_grad for p in paper.encoder.parameters())
