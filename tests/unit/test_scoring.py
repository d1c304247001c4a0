"""Scoring (eq. 5-7), smoothing, normalisation statistics: checked against scipy / numpy references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, zoom

from glcf.config import ScoringConfig
from glcf.inference.scoring import AnomalyScorer, image_scores, per_scale_maps
from glcf.inference.smoothing import gaussian_blur, scaled_sigma
from glcf.model.features import GLCFFeatures
from glcf.model.stats import NormStats, compute_norm_stats

RNG = np.random.default_rng(1234)


def random_features(batch: int = 2, size: int = 64, widths: tuple[int, ...] = (8, 12, 16)) -> GLCFFeatures:
    g = torch.Generator().manual_seed(0)

    def taps() -> list[torch.Tensor]:
        return [
            torch.randn(batch, c, size // 2 ** (s + 2), size // 2 ** (s + 2), generator=g) for s, c in enumerate(widths)
        ]

    return GLCFFeatures(encoder=taps(), global_corr=taps(), local_est=taps(), global_est=taps())


def random_stats(size: int = 64, cfg: ScoringConfig | None = None) -> NormStats:
    cfg = cfg or ScoringConfig()
    return NormStats(
        local_mean=tuple(RNG.uniform(0, 2, 3).tolist()),
        local_std=tuple(RNG.uniform(0.1, 1, 3).tolist()),
        global_mean=tuple(RNG.uniform(0, 2, 3).tolist()),
        global_std=tuple(RNG.uniform(0.1, 1, 3).tolist()),
        num_images=5,
        image_size=size,
        sigma=cfg.sigma,
        map_source=cfg.map_source,
    )


# --------------------------------------------------------------------------------------------
# Gaussian smoothing == scipy.ndimage.gaussian_filter(truncate=4, mode="reflect")


@pytest.mark.parametrize(
    ("h", "w", "sigma"), [(64, 64, scaled_sigma(4, 64)), (224, 224, 4.0), (5, 7, 3.0), (30, 17, 0.6), (1, 9, 2.0)]
)
@pytest.mark.parametrize("exporting", [False, True])
def test_gaussian_blur_equals_scipy(
    monkeypatch: pytest.MonkeyPatch, h: int, w: int, sigma: float, exporting: bool
) -> None:
    """In process (padding + separable convolution) and as torch exports it (a matrix product per axis)."""
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: exporting)
    maps = RNG.random((2, 3, h, w))
    ref = np.stack([[gaussian_filter(m, sigma, truncate=4.0, mode="reflect") for m in row] for row in maps])
    out64 = gaussian_blur(torch.from_numpy(maps), sigma).numpy()
    out32 = gaussian_blur(torch.from_numpy(maps).float(), sigma).numpy()
    np.testing.assert_allclose(out64, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out32, ref, rtol=0, atol=1e-6)
    assert out32.dtype == np.float32


def test_gaussian_blur_zero_sigma_is_identity_and_bad_sigma_raises() -> None:
    x = torch.rand(2, 8, 8)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, -1.0)
    with pytest.raises(ValueError, match="floating"):
        gaussian_blur(torch.ones(4, 4, dtype=torch.int64), 1.0)


# --------------------------------------------------------------------------------------------
# per-scale maps (eq. 5)


def _np_error_map(a: torch.Tensor, b: torch.Tensor, size: int, sigma: float) -> np.ndarray:
    """Independent numpy/scipy reference: channel mean, corner-aligned bilinear zoom, scipy Gaussian."""
    d = ((a.double().numpy() - b.double().numpy()) ** 2).mean(axis=1)  # [B, h, w]
    up = np.stack([zoom(m, size / m.shape[0], order=1) for m in d])  # grid_mode=False == align_corners=True
    return np.stack([gaussian_filter(m, sigma, truncate=4.0, mode="reflect") for m in up])


@pytest.mark.parametrize("map_source", ["estimation", "correspondence"])
def test_per_scale_maps_match_numpy_reference(map_source: str) -> None:
    cfg = ScoringConfig(map_source=map_source)
    feats = random_features(batch=3, size=64)
    maps = per_scale_maps(feats, 64, cfg)
    assert set(maps) == {"local", "global"}
    sigma = 4 * 64 / 224
    for s in range(3):
        ref_local = _np_error_map(feats.encoder[s], feats.local_est[s], 64, sigma)
        if map_source == "estimation":
            ref_global = _np_error_map(feats.global_corr[s], feats.global_est[s], 64, sigma)
        else:
            ref_global = _np_error_map(feats.encoder[s], feats.global_corr[s], 64, sigma)
        np.testing.assert_allclose(maps["local"][:, s].numpy(), ref_local, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(maps["global"][:, s].numpy(), ref_global, rtol=1e-5, atol=1e-6)
    for m in maps.values():
        assert m.shape == (3, 3, 64, 64)
        assert m.dtype == torch.float32
        assert torch.isfinite(m).all()
        assert (m >= 0).all()


def test_per_scale_maps_are_size_generic_and_reject_ragged_features() -> None:
    feats = random_features(batch=1, size=96, widths=(4, 4, 4))
    maps = per_scale_maps(feats, 96, ScoringConfig(sigma=0.0))
    assert maps["local"].shape == (1, 3, 96, 96)
    bad = feats._replace(global_est=feats.global_est[:2])
    with pytest.raises(ValueError, match="number of scales"):
        per_scale_maps(bad, 96, ScoringConfig())


# --------------------------------------------------------------------------------------------
# z-scores, fusion (eq. 6-7) and image scores


@pytest.mark.parametrize(
    ("mode", "alpha", "beta"), [("fused", 5.0, 1.0), ("fused", 0.0, 1.0), ("local", 1.0, 1.0), ("global", 1.0, 1.0)]
)
def test_fusion_matches_numpy_eq6_eq7(mode: str, alpha: float, beta: float) -> None:
    cfg = ScoringConfig(mode=mode, alpha=alpha, beta=beta, scale_weights=(1.0, 3.0, 6.0))
    stats = random_stats(32, cfg)
    d_l = RNG.random((4, 3, 32, 32)).astype(np.float32)
    d_g = RNG.random((4, 3, 32, 32)).astype(np.float32)
    out = AnomalyScorer(cfg, stats, 32).score_maps({"local": torch.from_numpy(d_l), "global": torch.from_numpy(d_g)})

    w = np.array([1.0, 3.0, 6.0])
    a_l = sum(w[s] * (d_l[:, s] - stats.local_mean[s]) / stats.local_std[s] for s in range(3))
    a_g = sum(w[s] * (d_g[:, s] - stats.global_mean[s]) / stats.global_std[s] for s in range(3))
    expected = {"fused": alpha * a_l + beta * a_g, "local": a_l, "global": a_g}[mode]
    np.testing.assert_allclose(out.local_map.numpy(), a_l, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.global_map.numpy(), a_g, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.anomaly_map.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.image_score.numpy(), expected.reshape(4, -1).std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out.local_score.numpy(), a_l.reshape(4, -1).std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out.global_score.numpy(), a_g.reshape(4, -1).std(axis=1), rtol=1e-5)


def test_image_scores_std_max_topk() -> None:
    maps = RNG.normal(size=(3, 10, 10)).astype(np.float32)
    flat = maps.reshape(3, -1)
    t = torch.from_numpy(maps)
    np.testing.assert_allclose(image_scores(t, "std").numpy(), flat.std(axis=1, ddof=0), rtol=1e-6)
    np.testing.assert_allclose(image_scores(t, "max").numpy(), flat.max(axis=1))
    top5 = np.sort(flat, axis=1)[:, -5:].mean(axis=1)  # ceil(0.05 * 100) = 5 pixels
    np.testing.assert_allclose(image_scores(t, "topk_mean", 0.05).numpy(), top5, rtol=1e-6)
    top1 = image_scores(t, "topk_mean", 1e-6).numpy()  # at least one pixel
    np.testing.assert_allclose(top1, flat.max(axis=1))
    with pytest.raises(ValueError, match="method"):
        image_scores(t, "median")


def test_scorer_end_to_end_map_has_image_size_and_is_finite() -> None:
    cfg = ScoringConfig(image_score="topk_mean", top_k_fraction=0.02)
    feats = random_features(batch=2, size=64)
    scorer = AnomalyScorer(cfg, random_stats(64, cfg), 64)
    out = scorer(feats)
    assert out.anomaly_map.shape == (2, 64, 64)
    assert out.image_score.shape == (2,)
    assert torch.isfinite(out.anomaly_map).all()
    assert torch.isfinite(out.image_score).all()
    k = math.ceil(0.02 * 64 * 64)
    expected = out.anomaly_map.flatten(1).sort(dim=1).values[:, -k:].mean(dim=1)
    torch.testing.assert_close(out.image_score, expected)


def test_scorer_refuses_stats_made_differently() -> None:
    cfg = ScoringConfig()
    stats = random_stats(64, cfg)
    with pytest.raises(ValueError, match="sigma"):
        AnomalyScorer(ScoringConfig(sigma=2.0), stats, 64)
    with pytest.raises(ValueError, match="image_size"):
        AnomalyScorer(cfg, stats, 128)
    with pytest.raises(ValueError, match="map_source"):
        AnomalyScorer(ScoringConfig(map_source="correspondence"), stats, 64)


# --------------------------------------------------------------------------------------------
# resizing back to the original image size


# --------------------------------------------------------------------------------------------
# normalisation statistics


def test_compute_norm_stats_matches_numpy_definition_and_is_streaming() -> None:
    cfg = ScoringConfig()
    local = RNG.random((7, 3, 16, 16)) * np.array([1, 2, 3])[None, :, None, None]
    glob = RNG.random((7, 3, 16, 16)) + 5
    batches = [
        {"local": torch.from_numpy(local[i:j]).float(), "global": torch.from_numpy(glob[i:j]).float()}
        for i, j in [(0, 3), (3, 4), (4, 7)]
    ]
    stats = compute_norm_stats(batches, cfg)
    np.testing.assert_allclose(stats.local_mean, local.mean(axis=(2, 3)).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.local_std, local.std(axis=(2, 3)).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.global_mean, glob.mean(axis=(2, 3)).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.global_std, glob.std(axis=(2, 3)).mean(axis=0), rtol=1e-5)
    assert (stats.num_images, stats.image_size, stats.sigma) == (7, 16, 4.0)
    with pytest.raises(ValueError, match="no images"):
        compute_norm_stats([], cfg)


def test_norm_stats_round_trip_and_validation() -> None:
    stats = random_stats(64)
    again = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats

    good = stats.to_dict()
    bad_nan = json.loads(json.dumps(good))
    bad_nan["global"]["mean"][1] = float("nan")
    with pytest.raises(ValueError, match=r"global_mean\[1\]"):
        NormStats.from_dict(bad_nan)
    bad_std = json.loads(json.dumps(good))
    bad_std["local"]["std"][2] = 0.0
    with pytest.raises(ValueError, match=r"local_std\[2\].*> 0"):
        NormStats.from_dict(bad_std)
    with pytest.raises(ValueError, match="unknown key"):
        NormStats.from_dict({**good, "extra": 1})
    with pytest.raises(ValueError, match="num_images: missing"):
        NormStats.from_dict({k: v for k, v in good.items() if k != "num_images"})
    short = json.loads(json.dumps(good))
    short["local"]["std"] = [1.0]
    with pytest.raises(ValueError, match="local_std: has 1 scales"):
        NormStats.from_dict(short)
    # a constant map has zero spatial std: refused with a clear message
    const = {"local": torch.ones(2, 3, 8, 8), "global": torch.rand(2, 3, 8, 8)}
    with pytest.raises(ValueError, match="constant map"):
        compute_norm_stats([const], ScoringConfig())


# --------------------------------------------------------------------------------------------
# calibration and prediction with a real (tiny) model


class _DictImages(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": i % 2, "index": i}


def test_calibrate_and_predict_with_the_tiny_model() -> None:
    from glcf.inference import calibrate, predict
    from glcf.model import build_glcf
    from glcf.presets import preset

    torch.manual_seed(0)
    model = build_glcf(preset("tiny"))
    cfg = model.config.scoring
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(5))

    stats = calibrate(model, list(images), model.config, batch_size=3, device="cpu", progress=False).stats
    assert model.training  # the previous mode is restored
    # independent reference: one image at a time, numpy definition (docs/model.md, Normalisation statistics)
    model.eval()
    with torch.no_grad():
        per_image = [per_scale_maps(model(images[i : i + 1]), 64, cfg) for i in range(5)]
    for branch in ("local", "global"):
        m = torch.cat([p[branch] for p in per_image]).double().numpy()  # [5, 3, 64, 64]
        np.testing.assert_allclose(getattr(stats, f"{branch}_mean"), m.mean(axis=(2, 3)).mean(0), rtol=1e-4)
        np.testing.assert_allclose(getattr(stats, f"{branch}_std"), m.std(axis=(2, 3)).mean(0), rtol=1e-4)
    assert (stats.num_images, stats.image_size) == (5, 64)

    scorer = AnomalyScorer(ScoringConfig(mode="local"), stats, 64)
    result = predict(model, _DictImages(images), scorer, batch_size=2, device="cpu", progress=False, keep_maps=True)
    assert result.anomaly_maps is not None
    assert result.anomaly_maps.shape == (5, 64, 64)
    assert result.anomaly_maps.dtype == np.float32
    assert result.image_scores.dtype == np.float32
    np.testing.assert_array_equal(result.labels, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(result.indices, np.arange(5))
    # on the calibration images themselves each z-scored scale has mean 0, so the local map averages to 0
    assert abs(result.anomaly_maps.mean()) < 1e-3 * np.abs(result.anomaly_maps).mean()
    np.testing.assert_allclose(result.image_scores, result.anomaly_maps.reshape(5, -1).std(axis=1), rtol=1e-4)
    np.testing.assert_allclose(result.image_scores, result.local_scores)
    assert predict(model, list(images), scorer, device="cpu", progress=False).anomaly_maps is None
    with pytest.raises(ValueError, match="empty"):
        calibrate(model, [], device="cpu", progress=False)


def test_calibration_scores_equal_a_second_predict_pass() -> None:
    """One pass gives the statistics and exactly the scores a second ``predict`` pass gives (fixed fusion)."""
    from glcf.inference import calibrate, predict
    from glcf.model import build_glcf
    from glcf.presets import preset

    torch.manual_seed(0)
    model = build_glcf(preset("tiny"))
    images = list(torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(6)))
    calibration = calibrate(model, images, batch_size=2, device="cpu", progress=False)
    stats, scores = calibration.stats, calibration.image_scores
    scorer = AnomalyScorer(model.config.scoring, stats, 64)
    expected = predict(model, images, scorer, batch_size=2, device="cpu", progress=False).image_scores
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, expected)
