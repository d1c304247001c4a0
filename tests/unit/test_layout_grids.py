"""The layout memory's grids: one per encoder tap with ``scoring.layout_multiscale``, one stacked grid without;
the stride-8 grid at the zoomed input (``scoring.layout_zoom``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scoring_setups import CALIBRATED, calibrated_tiny, standardised
from tensor_images import DictImages, random_images

from glcf import build_glcf, preset
from glcf.model.checkpoint import load_checkpoint, save_checkpoint
from glcf.training.engine import fit


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


def test_the_stride8_grid_reads_the_zoomed_input() -> None:
    """``layout_zoom``: the stride-8 grid's cells come from the input up-sampled (64 px x 1.5 = 96 px:
    12 x 12 cells), the stride-16 grid's from the input as it is; forward scores exactly that."""
    model, *_ = calibrated_tiny(layout_multiscale=True, layout_zoom=1.5)
    plain, *_ = calibrated_tiny(layout_multiscale=True)  # the same seed: the same weights and images
    assert model.config.zoomed_size == 96
    assert model.memory_reads_images
    assert model.memory.layout_bank.shape[1] == 40 * 12 * 12 + 112 * 4 * 4
    assert model.memory.cell_scale.shape == (12 * 12 + 4 * 4,)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        zoomed = model.encoder(F.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False))
        expected = model.memory.layout_distance(model.encoder(x), "relation", zoomed)
        got, unzoomed = model(x).layout_distance, plain(x).layout_distance
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got[:, 1], unzoomed[:, 1])  # the coarse grid: no zoom
    assert not torch.allclose(got[:, 0], unzoomed[:, 0])


def test_a_zoomed_layout_memory_is_not_filled_from_cached_taps() -> None:
    model = build_glcf(preset("tiny", scoring={**CALIBRATED, "layout_multiscale": True, "layout_zoom": 1.5})).eval()
    taps = model.encoder(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"scoring.layout_zoom=1.5: the layout memory reads images"):
        model.fill_memory([taps])


def test_training_on_cached_taps_fills_a_zoomed_memory_from_the_images() -> None:
    """``fit`` trains on the encoder's cached taps and fills the memories from the images themselves:
    the same banks as a fill from the images."""
    scoring = {**CALIBRATED, "layout_multiscale": True, "layout_zoom": 1.5}
    torch.manual_seed(0)
    model = build_glcf(preset("tiny", scoring=scoring, train={"epochs": 1, "batch_size": 2, "cache_features": True}))
    data = random_images(4, 1)
    fit(model, DictImages(data), progress=False)
    banks = {k: v.clone() for k, v in model.memory.state_dict().items()}
    model.eval().fill_memory([data[:2], data[2:]])
    for name, bank in model.memory.state_dict().items():
        torch.testing.assert_close(bank, banks[name], msg=name)
