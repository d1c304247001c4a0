"""The synthetic LOCO-like generator writes the MVTec LOCO AD layout, deterministically, safely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glcf.synth import CATEGORIES, GeneratorConfig, SplitCounts, generate, write_contact_sheet

SIZE = (128, 96)
COUNTS = SplitCounts(train=2, validation=1, test_good=2, test_logical=4, test_structural=4)
ALL = tuple(sorted(CATEGORIES))


def small_config(**changes: object) -> GeneratorConfig:
    return GeneratorConfig(seed=7, image_size=SIZE, categories=ALL, counts=COUNTS).replace(**changes)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, small_config(), progress=False)
    return root


def test_layout_is_exactly_the_mvtec_loco_tree(dataset: Path) -> None:
    assert sorted(p.name for p in dataset.iterdir()) == list(ALL)
    for name in ALL:
        c = dataset / name
        expected = {"defects_config.json", "defect_types.json", "generation.json"}
        for folder, n in (
            ("train/good", 2),
            ("validation/good", 1),
            ("test/good", 2),
            ("test/logical_anomalies", 4),
            ("test/structural_anomalies", 4),
        ):
            expected |= {f"{folder}/{i:03d}.png" for i in range(n)}
        found = {p.relative_to(c).as_posix() for p in c.rglob("*") if p.is_file()}
        gt = {f for f in found if f.startswith("ground_truth/")}
        assert found - gt == expected
        # ground truth: ground_truth/<type>/<stem>/000.png, 001.png ... for every anomalous image, nothing else
        for kind in ("logical_anomalies", "structural_anomalies"):
            stems = sorted(p.name for p in (c / "ground_truth" / kind).iterdir())
            assert stems == [f"{i:03d}" for i in range(4)]
            for stem in stems:
                pngs = sorted(p.name for p in (c / "ground_truth" / kind / stem).iterdir())
                assert pngs == [f"{j:03d}.png" for j in range(len(pngs))]
                assert pngs
        assert sorted(p.name for p in (c / "ground_truth").iterdir()) == ["logical_anomalies", "structural_anomalies"]


def test_images_are_rgb8_of_the_configured_size(dataset: Path) -> None:
    for path in dataset.rglob("*.png"):
        if "ground_truth" in path.parts:
            continue
        with Image.open(path) as im:
            assert (im.mode, im.size) == ("RGB", SIZE), path
            assert not im.info.get("dpi")
            assert "tIME" not in im.info


def test_every_anomaly_has_nonempty_masks_with_its_pixel_value(dataset: Path) -> None:
    for name in ALL:
        c = dataset / name
        config = json.loads((c / "defects_config.json").read_text())
        value_of = {d["defect_name"]: d["pixel_value"] for d in config}
        record = json.loads((c / "generation.json").read_text())["anomalies"]
        assert len(record) == 8
        seen = set()
        for kind in ("logical_anomalies", "structural_anomalies"):
            for image in sorted((c / "test" / kind).glob("*.png")):
                defect = record[f"test/{kind}/{image.name}"]["defect"]
                seen.add(defect)
                pngs = sorted((c / "ground_truth" / kind / image.stem).glob("*.png"))
                assert len(pngs) == record[f"test/{kind}/{image.name}"]["regions"] >= 1
                for png in pngs:
                    with Image.open(png) as m:
                        assert (m.mode, m.size) == ("L", SIZE), png
                        values = np.unique(np.asarray(m))
                    assert values.tolist() == [0, value_of[defect]], png
        # with 4 + 4 images every defect type of the category appears once
        assert seen == set(value_of)


def test_defects_config_is_loco_format(dataset: Path) -> None:
    for name in ALL:
        config = json.loads((dataset / name / "defects_config.json").read_text())
        assert isinstance(config, list)
        assert config
        values = [d["pixel_value"] for d in config]
        assert len(set(values)) == len(values)
        for d in config:
            assert set(d) == {"defect_name", "pixel_value", "saturation_threshold", "relative_saturation"}
            assert isinstance(d["pixel_value"], int)
            assert 1 <= d["pixel_value"] <= 255
            assert isinstance(d["relative_saturation"], bool)
            if d["relative_saturation"]:
                assert 0 < d["saturation_threshold"] <= 1
            else:
                assert isinstance(d["saturation_threshold"], int)
                assert d["saturation_threshold"] > 0


def test_absolute_saturation_scales_with_the_image_area() -> None:
    spec = CATEGORIES["pushpins"].defect("missing_pushpin")
    assert not spec.relative
    full = spec.config_entry(255, (256, 192))["saturation_threshold"]
    quarter = spec.config_entry(255, (128, 96))["saturation_threshold"]
    assert full == round(spec.saturation)
    assert abs(quarter - full / 4) <= 1


def test_loco_reader_accepts_the_output(dataset: Path) -> None:
    from glcf.data.loco import read_loco

    for name in ALL:
        data = read_loco(dataset, name)
        assert (len(data.train), len(data.validation), len(data.test)) == (2, 1, 10)


def test_same_seed_same_bytes_different_seed_different_images(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, small_config(), progress=False)
    assert files_of(again) == files_of(dataset)
    other = tmp_path / "other"
    generate(other, small_config(seed=8, categories=("pushpins",)), progress=False)
    a, b = files_of(dataset / "pushpins"), files_of(other / "pushpins")
    images = [k for k in a if k.endswith(".png") and not k.startswith("ground_truth")]
    assert all(a[k] != b[k] for k in images)


def test_parallel_workers_write_the_same_bytes(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path / "par", small_config(categories=("juice_bottle", "pushpins")), progress=False, workers=2)
    for name in ("juice_bottle", "pushpins"):
        assert files_of(tmp_path / "par" / name) == files_of(dataset / name)


def test_changing_one_count_keeps_every_other_image(dataset: Path, tmp_path: Path) -> None:
    more = tmp_path / "more"
    generate(
        more,
        small_config(
            categories=("breakfast_box",),
            counts=COUNTS.__class__(train=3, validation=1, test_good=2, test_logical=4, test_structural=4),
        ),
        progress=False,
    )
    a, b = files_of(dataset / "breakfast_box"), files_of(more / "breakfast_box")
    assert set(b) - set(a) == {"train/good/002.png"}
    assert all(a[k] == b[k] for k in a if k != "generation.json")


def test_refuses_to_overwrite_foreign_data(tmp_path: Path) -> None:
    cfg = small_config(categories=("pushpins",), counts=SplitCounts(1, 1, 1, 1, 0))
    user = tmp_path / "pushpins" / "notes.txt"
    user.parent.mkdir(parents=True)
    user.write_text("mine")
    with pytest.raises(FileExistsError, match=r"pushpins.*--force"):
        generate(tmp_path, cfg, progress=False)
    assert user.read_text() == "mine"
    assert sorted(p.name for p in user.parent.iterdir()) == ["notes.txt"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    generate(tmp_path, cfg, progress=False, force=True)
    assert not user.exists()
    assert (tmp_path / "pushpins" / "defects_config.json").is_file()


def test_regenerating_its_own_output_replaces_it(tmp_path: Path) -> None:
    generate(tmp_path, small_config(categories=("pushpins",), counts=SplitCounts(3, 1, 1, 1, 1)), progress=False)
    generate(tmp_path, small_config(categories=("pushpins",), counts=SplitCounts(1, 1, 1, 1, 1)), progress=False)
    assert sorted(p.name for p in (tmp_path / "pushpins" / "train" / "good").iterdir()) == ["000.png"]
    record = json.loads((tmp_path / "pushpins" / "generation.json").read_text())
    assert record["counts"]["train"] == 1
    assert record["seed"] == 7


def test_zero_count_anomaly_type_has_no_folder(tmp_path: Path) -> None:
    generate(tmp_path, small_config(categories=("juice_bottle",), counts=SplitCounts(1, 1, 1, 2, 0)), progress=False)
    c = tmp_path / "juice_bottle"
    assert not (c / "test" / "structural_anomalies").exists()
    assert not (c / "ground_truth" / "structural_anomalies").exists()


def test_contact_sheet_shows_every_defect(dataset: Path, tmp_path: Path) -> None:
    path = write_contact_sheet(dataset, ["pushpins", "juice_bottle"], tmp_path / "sheet.png", tile_width=100)
    with Image.open(path) as sheet:
        sheet.load()
        columns = 1 + len(CATEGORIES["pushpins"].defects)  # good + every defect type
        assert sheet.width == 6 + columns * (100 + 6)
        assert sheet.height > 2 * 75
    with pytest.raises(FileNotFoundError, match=r"defects_config\.json"):
        write_contact_sheet(dataset, ["nothing_here"], tmp_path / "x.png")


def test_cli_end_to_end_with_preview(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "generate",
        "--out",
        str(out),
        "--categories",
        "pushpins,juice_bottle",
        "--image-size",
        "128x96",
        "--train",
        "2",
        "--validation",
        "1",
        "--test-good",
        "1",
        "--test-logical",
        "4",
        "--test-structural",
        "4",
        "--seed",
        "3",
        "--preview",
        "--workers",
        "1",
        "--no-progress",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "24 images" in run.stdout
    with Image.open(out / "preview.png") as im:
        im.verify()
    with Image.open(out / "preview.png") as im:
        assert im.format == "PNG"
        assert im.width > 500
        assert im.height > 100
    assert len(list((out / "pushpins" / "train" / "good").glob("*.png"))) == 2
    # same settings through the library give the same bytes
    generate(
        tmp_path / "lib",
        GeneratorConfig(
            seed=3, image_size=(128, 96), categories=("pushpins", "juice_bottle"), counts=SplitCounts(2, 1, 1, 4, 4)
        ),
        progress=False,
    )
    assert files_of(tmp_path / "lib" / "pushpins") == files_of(out / "pushpins")


def test_cli_reports_bad_settings_by_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    base = ["generate", "--out", str(tmp_path / "x"), "--no-progress"]
    for extra, field in (
        (["--image-size", "10x10"], "image_size"),
        (["--categories", "pushpins,bagels"], "categories[1]"),
        (["--train", "0"], "counts.train"),
        (["--image-size", "big"], "image_size"),
    ):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 1, (extra, result.output)
        assert field in result.output, (extra, result.output)
    assert not (tmp_path / "x").exists()
