"""GLCFConfig: validation errors name the dotted field, presets, dict round trip."""

from __future__ import annotations

import json
import re

import pytest

from glcf.config import GLCFConfig, ScoringConfig, TrainConfig, config_from_dict, config_to_dict
from glcf.presets import preset


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"image_size": 100}, "image_size"),
        ({"image_size": "224"}, "image_size"),
        ({"bottleneck": {"layout": "psp"}}, "bottleneck.layout"),
        ({"bottleneck": {"dim": 240, "encoder_heads": 7}}, "bottleneck.encoder_heads"),
        ({"bottleneck": {"depth": 0}}, "bottleneck.depth"),
        ({"bottleneck": {"patch_sizes": [4, 2]}}, "bottleneck.patch_sizes"),
        ({"bottleneck": {"patch_sizes": [4, 4, 1]}}, "bottleneck.patch_sizes"),
        ({"bottleneck": {"semantic_tokens": "many"}}, "bottleneck.semantic_tokens"),
        ({"bottleneck": {"token_init_std": -0.1}}, "bottleneck.token_init_std"),
        ({"decoder": {"drop_path_rate": 1.5}}, "decoder.drop_path_rate"),
        ({"decoder": {"window_size": 0}}, "decoder.window_size"),
        ({"encoder": {"weights": "internet"}}, "encoder.weights"),
        ({"encoder": {"weights": "file:"}}, "encoder.weights"),
        ({"encoder": {"name": "swin_tiny_patch4_window7_224"}, "image_size": 256}, "image_size"),
        ({"encoder": {"name": "swin_tiny_patch4_window7_224"}, "image_size": 224}, "scoring.layout_zoom"),
        ({"scoring": {"layout_zoom": 0.5}}, "scoring.layout_zoom"),
        ({"train": {"seed": -1}}, "train.seed"),
        ({"loss": {"global_estimation": -1.0}}, "loss.global_estimation"),
        ({"loss": {"stop_gradient_global_target": "yes"}}, "loss.stop_gradient_global_target"),
        ({"ablation": {"sam": 0}}, "ablation.sam"),
        ({"decoder": {"unknown_key": 1}}, "decoder.unknown_key"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_values_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        config_from_dict(data, base=preset("default"))


def test_the_zoomed_layout_input_is_a_multiple_of_32() -> None:
    assert preset("default").zoomed_size == 224  # 160 px x 1.4
    assert preset("default", image_size=128).zoomed_size == 192  # 179.2 px, rounded
    assert preset("tiny").zoomed_size == preset("paper").zoomed_size - 160 == 64  # no zoom


def test_presets_hold_the_paper_numbers() -> None:
    paper = preset("paper")
    assert paper.encoder.name == "swin_tiny_patch4_window7_224"
    assert (paper.image_size, paper.bottleneck.dim, paper.bottleneck.depth) == (224, 240, 6)
    assert (paper.bottleneck.encoder_heads, paper.bottleneck.decoder_heads) == (12, 16)
    assert paper.bottleneck.layout == "pss"
    assert paper.bottleneck.patch_sizes == (4, 2, 1)
    assert paper.token_grid == 7
    default = preset("default")
    assert (default.encoder.name, default.encoder.weights) == ("tf_efficientnet_lite0", "offline-package")
    tiny = preset("tiny")
    assert tiny.encoder.weights == "none"
    assert tiny.token_grid == 2
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


@pytest.mark.parametrize("name", ["paper", "default", "tiny"])
def test_dict_round_trip(name: str) -> None:
    cfg = preset(name)
    data = json.loads(json.dumps(config_to_dict(cfg)))  # through JSON: tuples become lists
    assert config_from_dict(data) == cfg
    assert isinstance(config_from_dict(data), GLCFConfig)


def test_overrides_merge_nested() -> None:
    cfg = preset("tiny", bottleneck={"layout": "pgs"}, loss={"global_estimation": 0.5})
    assert cfg.bottleneck.layout == "pgs"
    assert cfg.bottleneck.dim == preset("tiny").bottleneck.dim
    assert cfg.loss.global_estimation == 0.5
    assert cfg.replace(image_size=128).image_size == 128


@pytest.mark.parametrize(
    ("part", "needle"),
    [
        ({"scoring": ScoringConfig(fusion="nope")}, "scoring.fusion: must be one of fixed, calibrated; got 'nope'"),
        ({"train": TrainConfig(amp="fp8")}, "train.amp: must be one of auto, bf16, off; got 'fp8'"),
    ],
)
def test_choices_come_from_the_annotations_also_when_built_directly(part: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        GLCFConfig(**part)
