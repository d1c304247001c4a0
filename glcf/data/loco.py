"""MVTec LOCO AD reader (Bergmann et al., IJCV 2022; docs/evaluation.md, Data layouts).

Layout::

    <category>/train/good/*.png
    <category>/validation/good/*.png
    <category>/test/{good,logical_anomalies,structural_anomalies}/*.png
    <category>/ground_truth/{logical_anomalies,structural_anomalies}/<stem>/000.png, 001.png, ...
    <category>/defects_config.json

Each ground-truth PNG is one defect holding that defect's ``pixel_value``; the pixel ground truth of
an image is the union of its PNGs (the authors' loader averaged them, which drops annotations).
A category may lack one of the two anomaly types (a warning is logged), never both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from glcf.data._tree import (
    Problems,
    category_data,
    list_images,
    make_samples,
    normal_samples,
    only_good,
    open_category,
    require_dir,
)
from glcf.data.images import CheckLevel, check_image, load_defect_masks
from glcf.data.types import LOCO_TYPES, CategoryData, DatasetLayoutError, DefectSpec, Sample

logger = logging.getLogger(__name__)

__all__ = ["parse_defects_config", "read_defects_config", "read_loco"]

ANOMALY_TYPES = ("logical_anomalies", "structural_anomalies")


def parse_defects_config(entries: Any, where: str = "defects_config.json") -> dict[int, DefectSpec]:
    """Validate the content of ``defects_config.json`` (a list of defect entries).

    Raises:
        DatasetLayoutError: naming the entry and field of every problem.
    """
    problems: list[str] = []
    if not isinstance(entries, list) or not entries:
        raise DatasetLayoutError(where, [f"{where}: must be a non-empty JSON list of defect entries"])
    table: dict[int, DefectSpec] = {}
    keys = {"defect_name", "pixel_value", "saturation_threshold", "relative_saturation"}
    for i, e in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(e, dict) or not keys <= set(e):
            problems.append(f"{at}: must be an object with keys {sorted(keys)}, got {e!r}")
            continue
        name, value, sat, rel = e["defect_name"], e["pixel_value"], e["saturation_threshold"], e["relative_saturation"]
        if not isinstance(name, str) or not name:
            problems.append(f"{at}.defect_name: must be a non-empty string, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
            problems.append(f"{at}.pixel_value: must be an integer in 1..255, got {value!r}")
            continue
        if value in table:
            problems.append(f"{at}.pixel_value: {value} is used twice")
        if not isinstance(rel, bool):
            problems.append(f"{at}.relative_saturation: must be true or false, got {rel!r}")
            continue
        if isinstance(sat, bool) or not isinstance(sat, int | float):
            problems.append(f"{at}.saturation_threshold: must be a number, got {sat!r}")
            continue
        if rel and not 0.0 < sat <= 1.0:
            problems.append(f"{at}.saturation_threshold: a relative threshold must be in (0, 1], got {sat!r}")
            continue
        if not rel and (sat < 1 or float(sat) != int(sat)):
            problems.append(
                f"{at}.saturation_threshold: an absolute threshold must be a whole number >= 1, got {sat!r}"
            )
            continue
        table[value] = DefectSpec(name, value, float(sat) if rel else int(sat), rel)
    if problems:
        raise DatasetLayoutError(where, problems)
    return table


def read_defects_config(path: Path) -> dict[int, DefectSpec]:
    """Read and validate a category's ``defects_config.json``."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetLayoutError(path, [f"{path}: unreadable JSON ({exc})"]) from exc
    return parse_defects_config(entries, str(path))


def _ground_truth(image: Path, gt_dir: Path, problems: Problems) -> tuple[Path, ...]:
    if not gt_dir.is_dir():
        problems.add(f"{image}: anomaly without a mask (expected the folder {gt_dir} with one PNG per defect)")
        return ()
    pngs = []
    for p in sorted(gt_dir.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() == ".png":
            pngs.append(p)
        else:
            problems.ignore(p, "not a ground-truth PNG")
    if not pngs:
        problems.add(f"{gt_dir}: anomaly without a mask (no PNG in the ground-truth folder of {image.name})")
    return tuple(pngs)


def _check_defect_pngs(sample: Sample, defects: dict[int, DefectSpec], check: CheckLevel, problems: Problems) -> None:
    """Sizes of the ground-truth PNGs (always); their values against ``defects_config.json`` (above ``header``)."""
    try:
        if check != "header" and defects:
            load_defect_masks(sample, defects)
            return
        for png in sample.mask_paths:
            (w, h), _ = check_image(png, "header")
            if (w, h) != sample.size:
                problems.add(f"{png}: mask size {w}x{h} differs from the image size {sample.width}x{sample.height}")
    except DatasetLayoutError as exc:
        problems.items.extend(exc.problems)


def read_loco(root: Path, category: str, *, check: CheckLevel = "verify") -> CategoryData:
    """Read and validate one MVTec LOCO AD category.

    Args:
        root: dataset root holding ``<category>/``.
        category: category folder name (e.g. ``breakfast_box``).
        check: image check level; above ``header`` every ground-truth PNG is also decoded to check
            that it holds exactly one pixel value listed in ``defects_config.json``.

    Raises:
        DatasetLayoutError: every problem at once (missing folders or config, an anomaly without
            ground truth, ground truth without an image, size mismatches, unknown pixel values,
            unreadable images, empty splits).
    """
    base, problems = open_category(root, category)
    defects: dict[int, DefectSpec] = {}
    try:
        defects = read_defects_config(base / "defects_config.json")
    except DatasetLayoutError as exc:
        problems.items.extend(exc.problems)
    splits: dict[str, list[Sample]] = {"train": [], "validation": []}
    for split in splits:
        if require_dir(base / split / "good", problems, f"{split}/good"):
            only_good(base / split, problems, f"the LOCO {split} split holds only good images")
            splits[split] = normal_samples(base / split / "good", problems, what=f"{split}/good", check=check)
    test = _test_samples(base, defects, problems, check) if require_dir(base / "test", problems, "test split") else []
    problems.raise_if_any()
    return category_data(
        root,
        category,
        "loco",
        problems,
        train=splits["train"],
        validation=splits["validation"],
        test=test,
        defects=defects,
        validation_source="validation/good",
    )


def _test_samples(base: Path, defects: dict[int, DefectSpec], problems: Problems, check: CheckLevel) -> list[Sample]:
    """``test/good`` and the anomaly types present (at least one of the two) with their ground truth."""
    found = {p.name for p in (base / "test").iterdir() if p.is_dir() and not p.name.startswith(".")}
    for unknown in sorted(found - set(LOCO_TYPES)):
        problems.add(f"{base / 'test' / unknown}: unknown LOCO test folder (expected {', '.join(LOCO_TYPES)})")
    test: list[Sample] = []
    if require_dir(base / "test" / "good", problems, "normal test images"):
        test += normal_samples(base / "test" / "good", problems, what="test/good", check=check)
    present = [t for t in ANOMALY_TYPES if t in found]
    if not present:
        problems.add(f"{base / 'test'}: neither logical_anomalies nor structural_anomalies is present")
    for t in ANOMALY_TYPES:
        if t in present:
            test += _anomaly_samples(base, t, defects, problems, check)
        elif present:
            logger.warning("%s: no test/%s folder; its metrics will be missing", base, t)
    return test


def _anomaly_samples(
    base: Path, t: str, defects: dict[int, DefectSpec], problems: Problems, check: CheckLevel
) -> list[Sample]:
    """The images of ``test/<t>`` with their ground-truth PNGs (checked); ground truth without an image is a problem."""
    paths = list_images(base / "test" / t, problems, what=f"test/{t}")
    masks = [_ground_truth(p, base / "ground_truth" / t / p.stem, problems) for p in paths]
    samples = make_samples(paths, problems, label=1, anomaly_type=t, kind=LOCO_TYPES[t], check=check, masks=masks)
    stems = {p.stem for p in paths}
    gt_type = base / "ground_truth" / t
    if gt_type.is_dir():
        for g in sorted(p for p in gt_type.iterdir() if p.is_dir() and p.name not in stems):
            problems.add(f"{g}: ground truth without a test image (expected test/{t}/{g.name}.png)")
    for s in samples:
        _check_defect_pngs(s, defects, check, problems)
    return samples
