"""encoder.tap_norm: CNN taps normalised over channels at each position (config, model, training effect)."""

from __future__ import annotations

import pytest
import torch

from glcf.model import build_glcf, channel_layer_norm
from glcf.presets import preset


def rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


def test_presets_and_validation() -> None:
    assert preset("default").encoder.tap_norm == "layernorm"  # CNN taps of the CPU default
    assert preset("paper").encoder.tap_norm == "none"  # Swin taps are LayerNorm outputs already
    assert preset("tiny").encoder.tap_norm == "none"
    with pytest.raises(ValueError, match=r"^encoder\.tap_norm: must be one of none, layernorm; got 'batch'"):
        preset("tiny", encoder={"tap_norm": "batch"})


def test_channel_layer_norm_by_hand() -> None:
    t = torch.randn(2, 5, 3, 4) * 7.0 + 3.0
    out = channel_layer_norm(t)
    mean = t.mean(dim=1, keepdim=True)
    var = ((t - mean) ** 2).mean(dim=1, keepdim=True)  # population variance, as LayerNorm
    torch.testing.assert_close(out, (t - mean) / torch.sqrt(var + 1e-5))
    assert out.shape == t.shape


def test_encode_normalises_only_when_asked() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    plain = build_glcf(preset("tiny")).eval()
    normed = build_glcf(preset("tiny", encoder={"tap_norm": "layernorm"})).eval()
    normed.encoder.load_state_dict(plain.encoder.state_dict())
    raw = plain.encoder(x)
    for got, want in zip(plain.encode(x), raw, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, want in zip(normed.encode(x), raw, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got.mean(dim=1), torch.zeros_like(got[:, 0]), rtol=0, atol=1e-5)
        torch.testing.assert_close(got.var(dim=1, correction=0), torch.ones_like(got[:, 0]), rtol=0, atol=1e-3)
    feats = normed(x)
    for got, want in zip(feats.encoder, normed.encode(x)[:3], strict=True):
        torch.testing.assert_close(got, want)  # the loss targets are the normalised taps


def test_normalised_taps_match_the_decoder_output_scale() -> None:
    """Why the default needs it: pretrained lite0 taps are far above the decoders' LayerNorm output scale."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    cfg = preset("tiny", encoder={"weights": "offline-package"})
    raw_model = build_glcf(cfg).eval()
    normed_model = build_glcf(cfg.replace(encoder={"tap_norm": "layernorm"})).eval()
    with torch.no_grad():
        raw = raw_model.encode(x)[:3]
        normed = normed_model.encode(x)[:3]
        decoded = raw_model(x).local_est  # untrained decoder: LayerNorm outputs, gain 1
    for r, n, d in zip(raw, normed, decoded, strict=True):
        assert rms(r) > 3.0 * rms(d)
        assert 0.5 * rms(d) < rms(n) < 2.0 * rms(d)
