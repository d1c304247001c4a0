"""Frozen encoder: tap shapes, Swin stage-input taps recomputed from timm's modules, freezing."""

from __future__ import annotations

import pytest
import timm
import torch

from glcf.model import build_glcf
from glcf.model.encoder import PyramidEncoder, SwinStageInputEncoder, build_encoder
from glcf.model.weights import create_backbone
from glcf.presets import preset
from glcf.training.loss import GLCFLoss

SWIN = "swin_tiny_patch4_window7_224"


@pytest.fixture(scope="module")
def swin() -> SwinStageInputEncoder:
    torch.manual_seed(0)
    enc = build_encoder(SWIN, "none", 224)
    assert isinstance(enc, SwinStageInputEncoder)
    return enc


def test_swin_tap_shapes(swin: SwinStageInputEncoder) -> None:
    taps = swin(torch.randn(2, 3, 224, 224))
    assert [tuple(t.shape) for t in taps] == [(2, 96, 56, 56), (2, 192, 28, 28), (2, 384, 14, 14), (2, 768, 7, 7)]
    assert swin.channels == (96, 192, 384, 768)
    assert all(t.is_contiguous() for t in taps)
    first = swin(torch.randn(2, 3, 224, 224), depth=2)
    assert [tuple(t.shape) for t in first] == [(2, 96, 56, 56), (2, 192, 28, 28)]


def test_swin_taps_are_stage_inputs_recomputed_by_hooks(swin: SwinStageInputEncoder) -> None:
    """docs/model.md, Encoder: E1 = patch embedding, E2..E4 = outputs of the downsample (patch merging) of stages 2..4.

    Recomputed on an unpruned timm Swin-T with the same weights by hooking timm's own forward pass.
    """
    full = timm.create_model(SWIN).eval()
    missing, unexpected = full.load_state_dict(swin.backbone.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith(("layers.3.blocks.", "norm.", "head.")) for k in missing)  # only the unused tail
    seen: dict[str, torch.Tensor] = {}
    hooks = [full.patch_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("E1", o))]
    for s in (1, 2, 3):
        hooks.append(
            full.layers[s].downsample.register_forward_hook(lambda m, i, o, s=s: seen.__setitem__(f"E{s + 1}", o))
        )
    post_block: list[torch.Tensor] = []
    hooks.append(full.layers[0].register_forward_hook(lambda m, i, o: post_block.append(o)))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        full(x)
    for h in hooks:
        h.remove()
    taps = swin(x)
    for k in range(4):
        expected = seen[f"E{k + 1}"].permute(0, 3, 1, 2)  # timm is NHWC
        torch.testing.assert_close(taps[k], expected, rtol=0, atol=0)
    # the features_only-style tensor (stage-1 output, after its blocks) is a different tensor than E1
    assert not torch.allclose(taps[0], post_block[0].permute(0, 3, 1, 2), atol=1e-3)


def test_cnn_taps_match_the_classifier_blocks() -> None:
    enc = build_encoder("tf_efficientnet_lite0", "offline-package", 224)
    assert isinstance(enc, PyramidEncoder)
    assert enc.channels == (24, 40, 112, 320)
    assert enc.mean == (0.5, 0.5, 0.5)
    classifier = create_backbone("tf_efficientnet_lite0", "offline-package")
    seen: list[torch.Tensor] = []
    hooks = [classifier.blocks[i].register_forward_hook(lambda m, i, o: seen.append(o)) for i in (1, 2, 4, 6)]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        classifier(x)
    for h in hooks:
        h.remove()
    taps = enc(x)
    assert [tuple(t.shape) for t in taps] == [(2, 24, 56, 56), (2, 40, 28, 28), (2, 112, 14, 14), (2, 320, 7, 7)]
    for tap, ref in zip(taps, seen, strict=True):
        torch.testing.assert_close(tap, ref)
    _assert_first_taps_stop_early(enc, enc.backbone.blocks[-1], x, taps)


def _assert_first_taps_stop_early(enc: PyramidEncoder, deepest: torch.nn.Module, x: torch.Tensor, taps: list) -> None:
    """``enc(x, depth=k)``: the first ``k`` taps, bit for bit, without running ``deepest`` (the last tap's module)."""
    ran: list[bool] = []
    hook = deepest.register_forward_hook(lambda m, i, o: ran.append(True))
    for depth in (1, 2, 3):
        first = enc(x, depth=depth)
        assert len(first) == depth
        assert not ran
        for tap, ref in zip(first, taps, strict=False):
            torch.testing.assert_close(tap, ref, rtol=0, atol=0)
    hook.remove()


def test_other_cnn_pyramids_and_rejection() -> None:
    enc = build_encoder("resnet18", "none", 64)
    assert enc.channels == (64, 128, 256, 512)
    x = torch.randn(1, 3, 64, 64)
    taps = enc(x)
    assert [t.shape[-1] for t in taps] == [16, 8, 4, 2]
    _assert_first_taps_stop_early(enc, dict(enc.backbone.items())["layer4"], x, taps)  # timm's FeatureListNet
    with pytest.raises(ValueError, match="stride 4"):
        build_encoder("vit_tiny_patch16_224", "none", 224)  # one stride-16 map only


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_glcf(preset("tiny"))


def test_encoder_frozen_no_gradient(tiny_model: torch.nn.Module) -> None:
    model = tiny_model
    assert all(not p.requires_grad for p in model.encoder.parameters())
    model.zero_grad(set_to_none=True)
    feats = model(torch.randn(2, 3, 64, 64))
    assert all(not t.requires_grad for t in feats.encoder)
    loss, _ = GLCFLoss()(feats)
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())


def test_encoder_stays_in_eval_after_train(tiny_model: torch.nn.Module) -> None:
    model = tiny_model
    model.train()
    assert model.training
    assert model.local_estimation.training
    assert not model.encoder.training
    assert all(not m.training for m in model.encoder.modules())  # BatchNorm / DropPath inside too
    model.encoder.train(True)
    assert not model.encoder.training
    x = torch.randn(2, 3, 64, 64)
    running = [b.running_mean.clone() for b in model.encoder.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    model(x)
    after = [b.running_mean for b in model.encoder.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(running, after, strict=True))  # no BN statistics drift


def test_encoder_not_in_trainable_parameters(tiny_model: torch.nn.Module) -> None:
    model = tiny_model
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not trainable & {id(p) for p in model.encoder.parameters()}
    others = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    assert trainable == {id(p) for p in others}
    assert len(others) > 0
