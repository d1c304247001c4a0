"""The normal memories (patch and layout), the calibrated fusion that uses them, and the Gumbel threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glcf import build_glcf, preset
from glcf.checkpoint import load_trainable_state, trainable_state_dict
from glcf.inference import calibrate
from glcf.memory import NormalMemory, greedy_coreset
from glcf.metrics.threshold import calibrate_threshold
from glcf.scoring import AnomalyScorer

CALIBRATED = {"fusion": "calibrated", "memory": True, "layout_memory": True, "image_score": "max"}


def test_greedy_coreset_covers_every_cluster() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=gen) for c in centres])
    chosen = greedy_coreset(points, 4)
    clusters = {int(i) // 50 for i in chosen}
    assert clusters == {0, 1, 2, 3}
    assert torch.equal(greedy_coreset(points, 500), torch.arange(200))  # asking for more keeps all


def _taps(c2: torch.Tensor, c3: torch.Tensor) -> list[torch.Tensor]:
    return [torch.zeros(1), c2, c3, torch.zeros(1)]


def test_layout_memory_flags_a_new_combination_of_normal_halves() -> None:
    """Each half of the test image occurs in a normal image; only their pairing is new."""
    left_a, left_b = torch.zeros(4, 4, 2), torch.ones(4, 4, 2)

    def image(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.cat([left, right], dim=2)[None]  # [1, C, 4, 4]

    normals = [image(left_a, left_a), image(left_b, left_b)]
    memory = NormalMemory(patch_dim=8, layout_dim=4 * 4 * 4, coreset_fraction=1.0)
    memory.fill([_taps(x, x) for x in normals])
    assert memory.filled
    assert float(memory.layout_distance(_taps(normals[0], normals[0]))[0]) < 1e-2
    mixed = image(left_a, left_b)
    assert float(memory.layout_distance(_taps(mixed, mixed))[0]) > 1.0
    # the patch memory has seen every patch of the mixed image except where the halves meet
    patch = memory.patch_distance(_taps(mixed, mixed))[0, 0]
    assert float(patch[:, 0].max()) < 1e-2  # cdist rounding
    assert float(patch[:, -1].max()) < 1e-2


def test_memory_banks_survive_the_trainable_state_round_trip() -> None:
    cfg = preset("tiny", scoring=CALIBRATED)
    model = build_glcf(cfg).eval()
    model.fill_memory([torch.randn(3, 3, 64, 64)])
    state = trainable_state_dict(model)
    assert state["memory.layout_bank"].shape[0] == 3
    fresh = build_glcf(cfg)
    assert not fresh.memory.filled
    load_trainable_state(fresh, state)
    assert torch.equal(fresh.memory.patch_bank, model.memory.patch_bank)
    assert torch.equal(fresh.memory.layout_bank, model.memory.layout_bank)


def test_calibrated_fusion_is_the_maximum_of_the_standardised_parts() -> None:
    torch.manual_seed(0)
    cfg = preset("tiny", scoring=CALIBRATED)
    model = build_glcf(cfg).eval()
    model.fill_memory([torch.randn(4, 3, 64, 64)])
    held_out = list(torch.randn(6, 3, 64, 64))
    stats = calibrate(model, held_out, cfg, progress=False)
    assert set(stats.image) == {"local", "global", "memory", "layout"}
    scorer = AnomalyScorer(cfg.scoring, stats, cfg.image_size)
    with torch.no_grad():
        maps = scorer.maps(model(torch.randn(2, 3, 64, 64)))
        raw = scorer.part_scores(maps)
        out = scorer.score_maps(maps)
    z = {k: (v - stats.image[k][0]) / stats.image[k][1] for k, v in raw.items()}
    torch.testing.assert_close(out.local_score, torch.maximum(z["local"], z["memory"]))
    torch.testing.assert_close(out.global_score, torch.maximum(z["global"], z["layout"]))
    torch.testing.assert_close(out.image_score, torch.maximum(out.local_score, out.global_score))
    # the held-out images' own standardised scores average zero, part by part
    with torch.no_grad():
        own = scorer.part_scores(scorer.maps(model(torch.stack(held_out))))
    for part, value in own.items():
        assert abs(float(((value - stats.image[part][0]) / stats.image[part][1]).mean())) < 1e-4, part


def test_memories_need_the_calibrated_fusion() -> None:
    with pytest.raises(ValueError, match=r"scoring.memory: needs fusion: calibrated"):
        preset("tiny", scoring={"memory": True})
    with pytest.raises(ValueError, match=r"scoring.fusion"):
        preset("tiny", scoring={"fusion": "learned"})


def test_an_empty_memory_is_a_clear_error() -> None:
    cfg = preset("tiny", scoring=CALIBRATED)
    model = build_glcf(cfg)
    with pytest.raises(ValueError, match="normal memory is empty"):
        calibrate(model, list(torch.randn(2, 3, 64, 64)), cfg, progress=False)


def test_gumbel_threshold_holds_the_target_false_alarm_rate_from_24_images() -> None:
    """Over many draws of 24 normal scores, the Gumbel fit's false-alarm rate is near the 5% target;
    the empirical 0.95-quantile of 24 scores is near their maximum and errs the other way."""
    rng = np.random.default_rng(0)
    target = 0.05
    rates = {"gumbel": [], "quantile": []}
    for _ in range(200):
        scores = rng.gumbel(3.0, 0.5, size=24)
        for method in rates:
            t = calibrate_threshold(scores, method, quantile=1 - target)  # type: ignore[arg-type]
            rates[method].append(float(np.exp(-np.exp(-(t.value - 3.0) / 0.5))))  # true CDF at the threshold
    far = {m: 1 - float(np.mean(v)) for m, v in rates.items()}
    assert abs(far["gumbel"] - target) < 0.015, far
    assert abs(far["gumbel"] - target) < abs(far["quantile"] - target), far
