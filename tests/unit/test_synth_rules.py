"""The generator's anomalies are real: rules hold for normal scenes and break for logical anomalies,
masks cover what an anomaly changed, and the settings are validated field by field."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import ndimage

from glcf.synth import (
    CATEGORIES,
    DEFAULT_CATEGORIES,
    LOGICAL_KINDS,
    STRUCTURAL_KINDS,
    GeneratorConfig,
    SplitCounts,
    make_sample,
)
from glcf.synth.painters import SUBTLE_PAINTERS
from glcf.synth.sample import image_key

NAMES = sorted(CATEGORIES)


@pytest.mark.parametrize("name", NAMES)
def test_rules_hold_for_normal_scenes_and_break_for_logical_anomalies(name: str) -> None:
    category = CATEGORIES[name]
    for i in range(60):
        scene = category.sample_scene(np.random.default_rng(i))
        assert category.check_rules(scene) == [], (name, i)
    for spec in category.defects_of("logical"):
        for i in range(15):
            scene = category.sample_scene(np.random.default_rng(1000 + i))
            regions = category.apply_logical(scene, spec.name, np.random.default_rng(2000 + i))
            assert regions, (spec.name, i)
            assert category.check_rules(scene), f"{name}/{spec.name} #{i} breaks no rule"


@pytest.mark.parametrize("name", NAMES)
def test_masks_cover_exactly_what_the_anomaly_changed(name: str) -> None:
    """Each anomaly against its defect-free twin (same scene, lighting and noise): the image changes
    clearly inside the masks and nowhere outside them (one pixel of anti-aliasing aside)."""
    category = CATEGORIES[name]
    for spec in category.defects:
        split = "test_logical" if spec.group == "logical" else "test_structural"
        for i in range(3):
            key = image_key(name, split, 500 + i)
            bad = make_sample(category, (256, 192), 11, key, spec)
            twin = make_sample(category, (256, 192), 11, key, spec, apply_defect=False)
            assert twin.masks == []
            assert twin.violations == []
            diff = np.abs(np.asarray(bad.image, np.int16) - np.asarray(twin.image, np.int16)).max(axis=2)
            union = np.logical_or.reduce(bad.masks)
            assert all(m.shape == (192, 256) and m.any() for m in bad.masks)
            outside = (diff > 8) & ~ndimage.binary_dilation(union, iterations=1)
            assert outside.sum() <= 5, f"{spec.name}: {outside.sum()} changed pixels outside the masks"
            if spec.painter in SUBTLE_PAINTERS:  # low contrast by design: a clear change on part of the mask
                assert np.percentile(diff[union], 90) > 6, f"{spec.name}: barely any change inside the masks"
            else:
                assert diff[union].mean() > 15, f"{spec.name}: mean change {diff[union].mean():.1f} inside the masks"
            assert (spec.group == "logical") == bool(bad.violations), spec.name


def test_default_categories_cover_every_anomaly_kind() -> None:
    kinds = {d.kind: d.group for name in DEFAULT_CATEGORIES for d in CATEGORIES[name].defects}
    assert {k for k, g in kinds.items() if g == "logical"} == set(LOGICAL_KINDS)
    assert {k for k, g in kinds.items() if g == "structural"} == set(STRUCTURAL_KINDS)
    assert len(DEFAULT_CATEGORIES) >= 3


def test_pixel_values_unique_and_stable_per_category() -> None:
    for category in CATEGORIES.values():
        values = [category.pixel_value(d.name) for d in category.defects]
        assert values == list(range(255, 255 - len(values), -1))


def test_default_config_is_non_square_and_round_trips() -> None:
    cfg = GeneratorConfig()
    assert cfg.image_size == (256, 192)
    assert GeneratorConfig.from_dict(cfg.as_dict()) == cfg
    partial = GeneratorConfig.from_dict({"image_size": "320x240", "categories": "pushpins", "counts": {"train": 5}})
    assert partial.image_size == (320, 240)
    assert partial.categories == ("pushpins",)
    assert partial.counts == SplitCounts(train=5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"colour": 1}, "colour"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"image_size": [10, 10]}, "image_size"),
        ({"image_size": [400, 100]}, "image_size"),
        ({"image_size": "256*192"}, "image_size"),
        ({"image_size": [256, 192, 3]}, "image_size"),
        ({"categories": []}, "categories"),
        ({"categories": ["pushpins", "pushpins"]}, "categories"),
        ({"categories": ["pushpins", "bagels"]}, "categories[1]"),
        ({"counts": {"train": 0}}, "counts.train"),
        ({"counts": {"validation": 0}}, "counts.validation"),
        ({"counts": {"test_good": -1}}, "counts.test_good"),
        ({"counts": {"test_logical": 0, "test_structural": 0}}, "counts.test_logical"),
        ({"counts": {"test_logical": True}}, "counts.test_logical"),
        ({"counts": {"tests": 3}}, "counts.tests"),
        ({"counts": 5}, "counts"),
    ],
)
def test_bad_settings_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field) + ": "):
        GeneratorConfig.from_dict(data)


def test_bad_workers_value(tmp_path) -> None:
    from glcf.synth import generate

    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path, GeneratorConfig(counts=SplitCounts(1, 1, 1, 1, 1)), workers=0)


def test_unknown_defect_names_are_errors() -> None:
    category = CATEGORIES["pushpins"]
    scene = category.sample_scene(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"pushpins: unknown logical defect 'box_scratch'"):
        category.apply_logical(scene, "box_scratch", np.random.default_rng(0))
    with pytest.raises(KeyError, match="unknown defect"):
        category.defect("bent_pin")
