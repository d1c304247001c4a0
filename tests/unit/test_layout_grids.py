"""The layout memory's grids: one per encoder tap with ``scoring.layout_multiscale``, one stacked grid without."""

from __future__ import annotations

from pathlib import Path

import torch
from scoring_setups import CALIBRATED, calibrated_tiny, standardised

from glcf import build_glcf, preset
from glcf.model.checkpoint import load_checkpoint, save_checkpoint


def test_each_layout_grid_is_a_part_of_its_own() -> None:
    """``layout_multiscale``: the stride-8 and the stride-16 layout grids are standardised apart, and
    the global branch counts the larger; with it off there is one layout part, as before."""
    model, _, stats, scorer = calibrated_tiny(layout_multiscale=True)
    assert set(stats.image) == {"local", "global", "memory", "position", "layout", "layout_coarse"}
    with torch.no_grad():
        features = model(torch.randn(2, 3, 64, 64))
        out = scorer(features)
        raw = scorer.part_scores(scorer.maps(features))
    z = standardised(stats, raw)
    assert features.layout_distance.shape == (2, 2)
    torch.testing.assert_close(raw["layout"], features.layout_distance[:, 0])
    torch.testing.assert_close(raw["layout_coarse"], features.layout_distance[:, 1])
    expected = torch.maximum(torch.maximum(z["global"], z["layout"]), z["layout_coarse"])
    torch.testing.assert_close(out.global_score, expected)
    assert model.memory.layout_bank.shape[1] == 40 * 8 * 8 + 112 * 4 * 4  # both grids of lite0's taps, side by side
    assert model.memory.cell_scale.shape == (8 * 8 + 4 * 4,)


def test_a_checkpoint_from_before_the_multiscale_layout_keeps_its_single_grid(tmp_path: Path) -> None:
    """A stored config without ``layout_multiscale`` (older checkpoints) means the one stacked grid."""
    cfg = preset("tiny", scoring={**CALIBRATED, "layout_multiscale": False})
    model = build_glcf(cfg).eval()
    model.fill_memory([torch.randn(3, 3, 64, 64)])
    path = save_checkpoint(tmp_path / "old.pt", model, epoch=1)
    data = torch.load(path, weights_only=False)
    del data["config"]["scoring"]["layout_multiscale"]  # as written before the key existed
    torch.save(data, path)
    loaded = load_checkpoint(path).model.eval()
    assert loaded.config.scoring.layout_multiscale is False
    assert loaded.memory.layout_taps == ((1, 2),)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).layout_distance, model(x).layout_distance)
