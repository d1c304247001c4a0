"""The relational categories: deterministic, their logical anomalies break only a relation between
parts far apart (every part stays normal on its own), their subtle structural defects are faint but
marked, and ``defect_types.json`` flags every defect from its ``DefectSpec``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glcf.synth import CATEGORIES, DEFAULT_CATEGORIES, GeneratorConfig, SplitCounts, generate, make_sample
from glcf.synth.painters import PAINTERS, SUBTLE_PAINTERS
from glcf.synth.sample import image_key

RELATIONAL = ("bead_box", "jam_jars")
FAR = 150.0  # design units between the two sides of a relation (more than half the image width)


def small_config(names: tuple[str, ...]) -> GeneratorConfig:
    logical = max(len(CATEGORIES[n].defects_of("logical")) for n in names)
    structural = max(len(CATEGORIES[n].defects_of("structural")) for n in names)
    counts = SplitCounts(train=1, validation=1, test_good=1, test_logical=logical, test_structural=structural)
    return GeneratorConfig(seed=3, image_size=(160, 120), categories=names, counts=counts)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("relational") / "data"
    generate(root, small_config(RELATIONAL), progress=False)
    return root


def normal_sides(name: str, n: int = 80) -> dict[str, list]:
    category = CATEGORIES[name]
    seen: dict[str, list] = {}
    for i in range(n):
        for key, pair in category.sides(category.sample_scene(np.random.default_rng(i))).items():
            seen.setdefault(key, []).extend(pair)
    return seen


def test_relational_categories_are_registered_and_generated_by_default() -> None:
    assert tuple(CATEGORIES) == DEFAULT_CATEGORIES  # glcf generate without --categories: every category
    for name in RELATIONAL:
        assert name in CATEGORIES
        category = CATEGORIES[name]
        logical = category.defects_of("logical")
        assert 2 <= len(logical) <= 3
        assert all(d.relational for d in logical)
        structural = category.defects_of("structural")
        assert not any(d.relational for d in structural)
        assert any(d.painter in SUBTLE_PAINTERS for d in structural)
        assert all((d.painter or d.kind) in PAINTERS for d in structural)
    used = {d.painter for name in RELATIONAL for d in CATEGORIES[name].defects}
    assert set(SUBTLE_PAINTERS) <= used


def test_same_seed_same_bytes_and_nonempty_masks(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, small_config(RELATIONAL), progress=False)
    assert files_of(dataset) == files_of(again)
    for name in RELATIONAL:
        pngs = sorted((dataset / name / "ground_truth").rglob("*.png"))
        anomalies = sum(1 for _ in (dataset / name / "test").glob("*_anomalies/*.png"))
        assert len({p.parent for p in pngs}) == anomalies
        for png in pngs:
            assert np.asarray(Image.open(png)).any(), png


def test_defect_types_list_every_defect_with_its_flags(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path / "old", small_config(("juice_bottle", "pushpins")), progress=False)
    for root, names in ((dataset, RELATIONAL), (tmp_path / "old", ("juice_bottle", "pushpins"))):
        for name in names:
            config = json.loads((root / name / "defects_config.json").read_text(encoding="utf-8"))
            types = json.loads((root / name / "defect_types.json").read_text(encoding="utf-8"))
            assert [t["defect_name"] for t in types] == [c["defect_name"] for c in config]
            for entry in types:
                spec = CATEGORIES[name].defect(entry["defect_name"])
                assert set(entry) == {"defect_name", "group", "kind", "relational", "description"}
                assert (entry["group"], entry["kind"], entry["description"]) == (
                    spec.group,
                    spec.kind,
                    spec.description,
                )
                assert entry["relational"] is spec.relational
                assert entry["relational"] == (name in RELATIONAL and entry["group"] == "logical")


@pytest.mark.parametrize("name", RELATIONAL)
def test_related_parts_lie_at_opposite_ends(name: str) -> None:
    scene = CATEGORIES[name].sample_scene(np.random.default_rng(0))
    xs = {side: [p.x for p in scene.parts if p.attrs.get("side") == side] for side in ("left", "right")}
    assert xs["left"]
    assert xs["right"]
    assert np.mean(xs["right"]) - np.mean(xs["left"]) >= FAR
    assert max(xs["left"]) < 128 < min(xs["right"])


@pytest.mark.parametrize("name", RELATIONAL)
def test_relational_anomalies_use_only_normal_parts(name: str) -> None:
    """Each side of an anomaly shows a colour / count / level that normal scenes show too; only the
    two sides disagree, and exactly one rule breaks."""
    category = CATEGORIES[name]
    normal = normal_sides(name)
    for spec in category.defects_of("logical"):
        for i in range(12):
            scene = category.sample_scene(np.random.default_rng(3000 + i))
            before = category.sides(scene)
            regions = category.apply_logical(scene, spec.name, np.random.default_rng(4000 + i))
            assert regions
            assert all(r.parts for r in regions)
            after = category.sides(scene)
            changed = [key for key in after if after[key] != before[key]]
            assert len(changed) == 1, (spec.name, changed)
            for key, pair in after.items():
                for value in pair:
                    if isinstance(value, float):
                        assert min(normal[key]) - 0.02 <= value <= max(normal[key]) + 0.02, (spec.name, key, value)
                    else:
                        assert value in normal[key], (spec.name, key, value)
            assert len(category.check_rules(scene)) == 1, (spec.name, category.check_rules(scene))


@pytest.mark.parametrize("name", RELATIONAL)
def test_subtle_defects_are_faint_but_marked(name: str) -> None:
    category = CATEGORIES[name]
    for spec in category.defects_of("structural"):
        if spec.painter not in SUBTLE_PAINTERS:
            continue
        for i in range(5):
            key = image_key(name, "test_structural", 900 + i)
            bad = make_sample(category, (256, 192), 5, key, spec)
            twin = make_sample(category, (256, 192), 5, key, spec, apply_defect=False)
            diff = np.abs(np.asarray(bad.image, np.int16) - np.asarray(twin.image, np.int16)).max(axis=2)
            union = np.logical_or.reduce(bad.masks)
            assert union.any()
            assert union.mean() < 0.03, f"{spec.name}: covers {union.mean():.1%} of the image"
            assert 6 < np.percentile(diff[union], 90) < 60, spec.name
            assert np.median(diff[union]) < 25, spec.name
