"""The calibrate stage refuses a checkpoint whose memories were filled differently from what params say."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf import build_glcf
from glcf.model.checkpoint import save_checkpoint
from pipelines.params import load_params
from pipelines.stages.calibrate import load_model
from pipelines.stages.common import StageInputError

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkpoint_filled_with_other_memory_keys_is_refused(tmp_path: Path) -> None:
    base = {"model.encoder.weights": "none", "model.image_size": 64}
    trained = load_params(ROOT / "params.yaml", {**base, "model.scoring.layout_multiscale": False})
    paths = trained.category_paths(trained.data.categories[0], tmp_path)
    save_checkpoint(paths.checkpoint, build_glcf(trained.glcf), epoch=1)

    rescored = load_params(ROOT / "params.yaml", {**base, "model.scoring.image_score": "std"})
    with pytest.raises(StageInputError, match=r"model\.pt: memories filled with scoring\.layout_multiscale=False"):
        load_model(rescored, paths)
    same_fill = load_params(
        ROOT / "params.yaml", {**base, "model.scoring.layout_multiscale": False, "model.scoring.image_score": "std"}
    )
    assert load_model(same_fill, paths).config.scoring.image_score == "std"  # a scoring-only change is taken
