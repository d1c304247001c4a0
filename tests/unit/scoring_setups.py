"""Scoring setups the unit tests share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from glcf import build_glcf, preset
from glcf.inference import calibrate
from glcf.inference.scoring import AnomalyScorer
from glcf.model.stats import NormStats

#: The calibrated fusion with all three memories (the default's scoring on the tiny preset).
CALIBRATED = {
    "fusion": "calibrated",
    "memory": True,
    "position_memory": True,
    "layout_memory": True,
    "image_score": "max",
}


def calibrated_tiny(**scoring: Any) -> tuple[Any, list[torch.Tensor], NormStats, AnomalyScorer]:
    """A seeded tiny model with :data:`CALIBRATED` (plus ``scoring``): its memory filled from 4 random
    images, calibrated on 6 others; returns the model, those 6 held-out images, the statistics, the scorer."""
    torch.manual_seed(0)
    cfg = preset("tiny", scoring={**CALIBRATED, **scoring})
    model = build_glcf(cfg).eval()
    model.fill_memory([torch.randn(4, 3, 64, 64)])
    held_out = list(torch.randn(6, 3, 64, 64))
    stats = calibrate(model, held_out, cfg, progress=False).stats
    return model, held_out, stats, AnomalyScorer(cfg.scoring, stats, cfg.image_size)


def standardised(stats: NormStats, raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each part's image score standardised by its held-out mean and std (what the calibrated fusion does)."""
    return {k: (v - stats.image[k][0]) / stats.image[k][1] for k, v in raw.items()}
