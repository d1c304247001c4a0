"""Readers of the MVTec AD, MVTec LOCO AD and folder layouts on small generated trees, good and bad."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from data_trees import DEFECTS, H, W, box_mask, make_folder, make_loco, make_mvtec, rgb, write_png
from PIL import Image

from glcf.data import DatasetLayoutError, load_defect_masks, load_mask, read_category

# --------------------------------------------------------------------------------------- MVTec AD


def test_mvtec_reads_splits_masks_and_seeded_holdout(tmp_path):
    make_mvtec(tmp_path, n_train=10)
    data = read_category(tmp_path, "widget", "mvtec", holdout_fraction=0.2, seed=3)
    assert data.format == "mvtec"
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 2, 6)
    assert {s.path for s in data.train}.isdisjoint({s.path for s in data.validation})
    assert data.anomaly_types == ("crack", "scratch")
    crack = [s for s in data.test if s.anomaly_type == "crack"]
    assert all(s.label == 1 and s.kind == "anomaly" and len(s.mask_paths) == 1 for s in crack)
    assert crack[0].mask_paths[0].name == "000_mask.png"
    assert crack[0].size == (W, H)
    mask = load_mask(crack[0])
    assert mask.shape == (H, W)
    assert mask.sum() == 6 * 6
    good = [s for s in data.test if s.label == 0]
    assert len(good) == 2
    assert all(not s.mask_paths and not load_mask(s).any() for s in good)
    # the same seed gives the same split, another seed another one
    again = read_category(tmp_path, "widget", "mvtec", holdout_fraction=0.2, seed=3)
    assert [s.path for s in again.validation] == [s.path for s in data.validation]
    other = {
        tuple(s.path for s in read_category(tmp_path, "widget", "mvtec", holdout_fraction=0.2, seed=k).validation)
        for k in range(6)
    }
    assert len(other) > 1


def test_mvtec_missing_mask_and_orphan_mask_are_named(tmp_path):
    base = make_mvtec(tmp_path)
    (base / "ground_truth" / "crack" / "001_mask.png").unlink()
    write_png(base / "ground_truth" / "scratch" / "007_mask.png", box_mask(255, 0, 2, 0, 2))
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "widget", "mvtec")
    text = str(err.value)
    assert "anomaly without a mask" in text
    assert "001_mask.png" in text
    assert "007_mask.png" in text
    assert "mask without a test image" in text
    assert len(err.value.problems) == 2


def test_mvtec_mask_size_mismatch(tmp_path):
    base = make_mvtec(tmp_path)
    write_png(base / "ground_truth" / "scratch" / "000_mask.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(DatasetLayoutError, match=r"scratch/000_mask.png: mask size 32x25 differs"):
        read_category(tmp_path, "widget", "mvtec")


def test_mvtec_missing_folders_and_empty_split(tmp_path):
    base = make_mvtec(tmp_path)
    shutil.rmtree(base / "ground_truth")
    for p in (base / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "widget", "mvtec")
    text = str(err.value)
    assert "ground_truth: missing folder" in text
    assert "empty split (train/good" in text
    with pytest.raises(DatasetLayoutError, match="nothing: missing folder"):
        read_category(tmp_path, "nothing", "mvtec")


def test_unreadable_and_truncated_images_are_named(tmp_path):
    base = make_mvtec(tmp_path)
    bad = base / "train" / "good" / "001.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    (base / "train" / "good" / "002.png").write_bytes(b"not an image")
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "widget", "mvtec")
    text = str(err.value)
    assert "001.png: unreadable or truncated" in text
    assert "002.png: unreadable or truncated" in text


def test_truncated_jpeg_caught_by_decode_check(tmp_path):
    base = make_folder(tmp_path)
    victim = base / "test" / "CNV" / "cnv0.jpeg"
    Image.fromarray(rgb(5, (64, 64))).save(victim, quality=95)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetLayoutError, match=r"cnv0\.jpeg: unreadable or truncated"):
        read_category(tmp_path, "OCT", "folder", check="decode")


def test_non_image_files_are_reported_not_silently_skipped(tmp_path, caplog):
    base = make_mvtec(tmp_path)
    (base / "train" / "good" / "notes.txt").write_text("x")
    (base / "train" / "good" / ".DS_Store").write_text("x")
    data = read_category(tmp_path, "widget", "mvtec")
    assert [p.name for p in data.ignored] == ["notes.txt"]
    assert "notes.txt" in caplog.text


# --------------------------------------------------------------------------------------- image modes


@pytest.mark.parametrize(
    ("mode_array", "expected"),
    [
        (np.full((H, W), 77, np.uint8), (77, 77, 77)),  # grayscale replicated
        (np.full((H, W), 65535, np.uint16), (255, 255, 255)),  # 16-bit scaled by 257
        (np.full((H, W), 257 * 100 + 128, np.uint16), (100, 100, 100)),  # rounds 100.498 down
        (np.dstack([np.full((H, W), v, np.uint8) for v in (10, 20, 30, 0)]), (10, 20, 30)),  # alpha dropped
    ],
)
def test_image_modes_converted_to_rgb8(tmp_path, mode_array, expected):
    from glcf.data import load_image

    path = write_png(tmp_path / "img.png", mode_array)
    out = load_image(path)
    assert out.dtype == np.uint8
    assert out.shape == (H, W, 3)
    assert tuple(out[0, 0]) == expected


def test_float_image_rejected_with_its_name(tmp_path):
    from glcf.data import load_image

    path = tmp_path / "float.tiff"
    Image.fromarray(np.ones((H, W), np.float32)).save(path)
    with pytest.raises(DatasetLayoutError, match=r"float.tiff: unsupported image mode 'F'"):
        load_image(path)
    base = make_mvtec(tmp_path)
    Image.fromarray(np.ones((H, W), np.float32)).save(base / "test" / "good" / "009.tiff")
    with pytest.raises(DatasetLayoutError, match=r"009.tiff: unsupported image mode 'F'"):
        read_category(tmp_path, "widget", "mvtec")


# --------------------------------------------------------------------------------------- LOCO


def test_loco_reads_validation_defects_and_union(tmp_path):
    make_loco(tmp_path)
    data = read_category(tmp_path, "box", "loco")
    assert (len(data.train), len(data.validation), len(data.test)) == (4, 2, 6)
    assert data.validation_source == "validation/good"
    assert sorted(data.defects) == [253, 254, 255]
    assert data.defects[253].relative is False
    assert data.defects[253].saturation_threshold == 20
    kinds = {s.anomaly_type: s.kind for s in data.test}
    assert kinds == {"good": "good", "logical_anomalies": "logical", "structural_anomalies": "structural"}
    first = next(s for s in data.test if s.anomaly_type == "logical_anomalies")
    assert [p.name for p in first.mask_paths] == ["000.png", "001.png"]
    defects = load_defect_masks(first, data.defects)
    assert [(int(m.sum()), d.name) for m, d in defects] == [(64, "missing_part"), (96, "extra_part")]
    union = load_mask(first)
    # union, never the average: 64 + 96 - 4 overlapping pixels
    assert union.sum() == 64 + 96 - 4
    assert union[9, 9]
    assert union[2, 2]
    assert union[15, 19]


def test_loco_problems_listed_together(tmp_path):
    base = make_loco(tmp_path)
    shutil.rmtree(base / "ground_truth" / "structural_anomalies" / "001")  # anomaly without ground truth
    shutil.rmtree(base / "validation")  # missing folder
    write_png(base / "ground_truth" / "logical_anomalies" / "001" / "000.png", box_mask(7, 0, 3, 0, 3))  # unknown
    write_png(base / "ground_truth" / "structural_anomalies" / "000" / "001.png", box_mask(253, 0, 3, 0, 3, (W, 9)))
    write_png(base / "ground_truth" / "structural_anomalies" / "005" / "000.png", box_mask(253, 0, 3, 0, 3))
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "box", "loco")
    text = str(err.value)
    assert "validation/good: missing folder" in text
    assert "structural_anomalies/001.png: anomaly without a mask" in text
    assert "logical_anomalies/001/000.png: pixel value 7 is not in defects_config.json" in text
    assert "structural_anomalies/000/001.png: mask size 32x9 differs" in text
    assert "structural_anomalies/005: ground truth without a test image" in text
    assert len(err.value.problems) == 5


def test_loco_png_with_two_values_and_empty_png(tmp_path):
    base = make_loco(tmp_path)
    two = box_mask(255, 0, 3, 0, 3)
    two[5, 5] = 254
    write_png(base / "ground_truth" / "logical_anomalies" / "001" / "000.png", two)
    write_png(base / "ground_truth" / "structural_anomalies" / "001" / "000.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "box", "loco")
    assert "must hold one positive value, found [254, 255]" in str(err.value)
    assert "structural_anomalies/001/000.png: defect PNG has no positive pixel" in str(err.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"pixel_value": 0}, "pixel_value: must be an integer in 1..255"),
        ({"saturation_threshold": 1.5}, "a relative threshold must be in (0, 1]"),
        ({"relative_saturation": False, "saturation_threshold": 2.5}, "an absolute threshold must be a whole number"),
        ({"relative_saturation": "yes"}, "relative_saturation: must be true or false"),
    ],
)
def test_defects_config_validation(tmp_path, entry, message):
    base = make_loco(tmp_path)
    bad = [dict(DEFECTS[0], **entry), *DEFECTS[1:]]
    (base / "defects_config.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "box", "loco")
    assert "defects_config.json[0]." in str(err.value)
    assert message in str(err.value)
    assert len(err.value.problems) == 1


def test_loco_missing_config_and_unknown_test_folder(tmp_path):
    base = make_loco(tmp_path)
    (base / "defects_config.json").unlink()
    write_png(base / "test" / "weird" / "000.png", rgb(1))
    with pytest.raises(DatasetLayoutError) as err:
        read_category(tmp_path, "box", "loco")
    assert "defects_config.json: unreadable JSON" in str(err.value)
    assert "test/weird: unknown LOCO test folder" in str(err.value)


def test_loco_single_anomaly_type_allowed_with_warning(tmp_path, caplog):
    base = make_loco(tmp_path)
    shutil.rmtree(base / "test" / "logical_anomalies")
    shutil.rmtree(base / "ground_truth" / "logical_anomalies")
    data = read_category(tmp_path, "box", "loco")
    assert data.anomaly_types == ("structural_anomalies",)
    assert "no test/logical_anomalies folder" in caplog.text


# --------------------------------------------------------------------------------------- folder layout


def test_folder_layout_kermany_style(tmp_path, caplog):
    make_folder(tmp_path)
    data = read_category(tmp_path, "OCT", "folder", holdout_fraction=0.2, seed=0)
    assert (len(data.train), len(data.validation)) == (4, 1)
    assert sorted({(s.anomaly_type, s.label, s.kind) for s in data.test}) == [
        ("CNV", 1, "anomaly"),
        ("DME", 1, "anomaly"),
        ("NORMAL", 0, "good"),
    ]
    assert not data.has_masks
    assert [p.name for p in data.ignored] == ["CNV"]  # abnormal training images: listed, not used
    assert "abnormal training images are not used" in caplog.text
    from glcf.data import load_image

    assert load_image(data.test[0]).shape[2] == 3  # grayscale JPEG -> RGB


def test_folder_layout_uses_val_and_custom_normal_name(tmp_path):
    make_folder(tmp_path, normal="healthy", val=True)
    data = read_category(tmp_path, "OCT", "folder", normal_class="Healthy")
    assert (len(data.train), len(data.validation)) == (5, 2)
    assert data.validation_source == "val/healthy"
    with pytest.raises(DatasetLayoutError, match="missing folder for the normal class 'normal'"):
        read_category(tmp_path, "OCT", "folder")


def test_unknown_format_and_bad_fraction(tmp_path):
    make_mvtec(tmp_path)
    with pytest.raises(ValueError, match="format must be one of"):
        read_category(tmp_path, "widget", "coco")
    with pytest.raises(ValueError, match="holdout_fraction must be in"):
        read_category(tmp_path, "widget", "mvtec", holdout_fraction=1.0)


def test_symlinked_files_keep_their_names(tmp_path):
    """A DVC-style checkout links each file to a cache file named by its hash: stems must come from the link."""
    src = make_loco(tmp_path / "src")
    cache = tmp_path / "cache"
    cache.mkdir()
    for k, f in enumerate(sorted(p for p in src.rglob("*") if p.is_file())):
        target = cache / f"{k:04d}abcdef"
        target.write_bytes(f.read_bytes())
        link = tmp_path / "linked" / f.relative_to(tmp_path / "src")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    data = read_category(tmp_path / "linked", "box", "loco")
    assert [s.stem for s in data.test] == ["000", "001"] * 3
    assert all(s.path.is_symlink() for s in data.test)
    assert data.test[2].mask_paths[0].parent.name == "000"
    assert load_mask(data.test[2]).sum() == 156
