"""Small dataset trees in the published layouts, written with Pillow into a test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 32, 24  # image size (width, height) used by the trees


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rgb(seed: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def box_mask(value: int, y0: int, y1: int, x0: int, x1: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    m = np.zeros((size[1], size[0]), dtype=np.uint8)
    m[y0:y1, x0:x1] = value
    return m


def make_mvtec(root: Path, category: str = "widget", *, n_train: int = 5, n_good: int = 2) -> Path:
    """``train/good`` (n_train), ``test/good`` (n_good), ``test/{crack,scratch}`` (2 each) with masks."""
    base = root / category
    for i in range(n_train):
        write_png(base / "train" / "good" / f"{i:03d}.png", rgb(i))
    for i in range(n_good):
        write_png(base / "test" / "good" / f"{i:03d}.png", rgb(100 + i))
    for d, defect in enumerate(("crack", "scratch")):
        for i in range(2):
            write_png(base / "test" / defect / f"{i:03d}.png", rgb(200 + 10 * d + i))
            write_png(base / "ground_truth" / defect / f"{i:03d}_mask.png", box_mask(255, 2 + i, 8, 3, 9 + d))
    return base


DEFECTS = [
    {"defect_name": "missing_part", "pixel_value": 255, "saturation_threshold": 1.0, "relative_saturation": True},
    {"defect_name": "extra_part", "pixel_value": 254, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "scratch", "pixel_value": 253, "saturation_threshold": 20, "relative_saturation": False},
]


def make_loco(root: Path, category: str = "box", *, n_train: int = 4, n_val: int = 2) -> Path:
    """LOCO tree: 2 good, 2 logical (one with two PNGs that overlap), 2 structural test images."""
    base = root / category
    for i in range(n_train):
        write_png(base / "train" / "good" / f"{i:03d}.png", rgb(i))
    for i in range(n_val):
        write_png(base / "validation" / "good" / f"{i:03d}.png", rgb(50 + i))
    for i in range(2):
        write_png(base / "test" / "good" / f"{i:03d}.png", rgb(100 + i))
    for i in range(2):
        write_png(base / "test" / "logical_anomalies" / f"{i:03d}.png", rgb(200 + i))
        gt = base / "ground_truth" / "logical_anomalies" / f"{i:03d}"
        write_png(gt / "000.png", box_mask(255, 2, 10, 2, 10))
        if i == 0:
            write_png(gt / "001.png", box_mask(254, 8, 16, 8, 20))  # overlaps 000.png on rows 8-9, cols 8-9
    for i in range(2):
        write_png(base / "test" / "structural_anomalies" / f"{i:03d}.png", rgb(300 + i))
        write_png(base / "ground_truth" / "structural_anomalies" / f"{i:03d}" / "000.png", box_mask(253, 4, 9, 4, 12))
    (base / "defects_config.json").write_text(json.dumps(DEFECTS, indent=1))
    return base


def make_folder(root: Path, category: str = "OCT", *, normal: str = "NORMAL", val: bool = False) -> Path:
    """Kermany-style tree: train/{NORMAL,CNV}, test/{NORMAL,CNV,DME}, optional val/{NORMAL,CNV}; gray JPEGs."""
    base = root / category
    gray = lambda seed: rgb(seed)[:, :, 0]  # noqa: E731
    for i in range(5):
        Image.fromarray(gray(i)).save(_mk(base / "train" / normal / f"n{i}.jpeg"))
    Image.fromarray(gray(9)).save(_mk(base / "train" / "CNV" / "c0.jpeg"))
    for cls, n in ((normal, 2), ("CNV", 2), ("DME", 1)):
        for i in range(n):
            Image.fromarray(gray(100 + i + 10 * len(cls))).save(_mk(base / "test" / cls / f"{cls.lower()}{i}.jpeg"))
    if val:
        for i in range(2):
            Image.fromarray(gray(60 + i)).save(_mk(base / "val" / normal / f"v{i}.jpeg"))
        Image.fromarray(gray(70)).save(_mk(base / "val" / "CNV" / "vc.jpeg"))
    return base


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
