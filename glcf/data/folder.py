"""Folder-per-class reader for image-level data sets such as Retinal-OCT (Kermany et al., 2018).

Layout (class folder names are matched case-insensitively against ``normal_class``)::

    <category>/train/<normal>/*.png|jpg|jpeg      normal training images
    <category>/train/<other>/...                  not used (unsupervised training); listed in ``ignored``
    <category>/validation/<normal>/... or val/    optional held-out normal images
    <category>/test/<normal>/...                  normal test images (label 0)
    <category>/test/<class>/...                   one folder per abnormal class (label 1)

Retinal-OCT as published (``OCT2017/{train,val,test}/{NORMAL,CNV,DME,DRUSEN}``) reads unchanged with
``category="OCT2017"`` and the default ``normal_class="normal"``. There are no masks: only
image-level metrics apply. Without a validation folder, a seeded fraction of the normal training
images is held out.
"""

from __future__ import annotations

from pathlib import Path

from glcf.data._tree import (
    Problems,
    category_data,
    holdout_split,
    list_images,
    make_samples,
    normal_samples,
    open_category,
    require_dir,
)
from glcf.data.images import CheckLevel
from glcf.data.types import CategoryData, Sample

__all__ = ["read_folder"]


def _classes(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _normal_dir(split_dir: Path, normal_class: str, problems: Problems) -> Path | None:
    matches = [p for p in _classes(split_dir) if p.name.lower() == normal_class.lower()]
    if not matches:
        problems.add(f"{split_dir}: missing folder for the normal class {normal_class!r} (matched case-insensitively)")
        return None
    if len(matches) > 1:
        problems.add(
            f"{split_dir}: several folders match the normal class {normal_class!r}: {[m.name for m in matches]}"
        )
        return None
    return matches[0]


def read_folder(
    root: Path,
    category: str,
    *,
    normal_class: str = "normal",
    holdout_fraction: float = 0.15,
    seed: int = 0,
    check: CheckLevel = "verify",
) -> CategoryData:
    """Read and validate one category in the folder-per-class layout.

    Args:
        root: dataset root holding ``<category>/``.
        category: category folder name (e.g. ``OCT2017``).
        normal_class: the class folder holding normal images (case-insensitive).
        holdout_fraction: fraction of normal training images held out when there is no validation folder.
        seed: seed of the hold-out split.
        check: image check level.

    Raises:
        DatasetLayoutError: every problem at once (missing folders, no abnormal test class, bad images,
            empty splits).
    """
    base, problems = open_category(root, category)
    train: list[Sample] = []
    if require_dir(base / "train", problems, "train split"):
        why = "abnormal training images are not used: training sees normal images only"
        train = _normal_class_samples(base / "train", normal_class, problems, check, why)
    val_dirs = [base / n for n in ("validation", "val") if (base / n).is_dir()]
    validation: list[Sample] = []
    if len(val_dirs) > 1:
        problems.add(f"{base}: both validation/ and val/ exist; keep one")
    elif val_dirs:
        why = "abnormal validation images are not used: held-out data must be normal"
        validation = _normal_class_samples(val_dirs[0], normal_class, problems, check, why)
    test = _test_samples(base / "test", normal_class, problems, check)
    problems.raise_if_any()
    if val_dirs:
        tr, val, source = tuple(train), tuple(validation), f"{val_dirs[0].name}/{validation[0].anomaly_type}"
    else:
        tr, val = holdout_split(train, holdout_fraction, seed, where=base / "train")
        source = f"seeded hold-out of the normal training images (fraction {holdout_fraction}, seed {seed})"
    return category_data(
        root, category, "folder", problems, train=tr, validation=val, test=test, validation_source=source
    )


def _normal_class_samples(
    split_dir: Path, normal_class: str, problems: Problems, check: CheckLevel, why_others_ignored: str
) -> list[Sample]:
    """The normal class of a train or validation folder; its other classes are ignored (``why_others_ignored``)."""
    normal = _normal_dir(split_dir, normal_class, problems)
    samples: list[Sample] = []
    if normal is not None:
        samples = normal_samples(
            normal, problems, what=f"{split_dir.name}/{normal.name}", check=check, anomaly_type=normal.name
        )
    for other in _classes(split_dir):
        if other != normal:
            problems.ignore(other, why_others_ignored)
    return samples


def _test_samples(test_dir: Path, normal_class: str, problems: Problems, check: CheckLevel) -> list[Sample]:
    """The normal test class (label 0) and every other class folder (label 1, kind ``anomaly``)."""
    test: list[Sample] = []
    if not require_dir(test_dir, problems, "test split"):
        return test
    normal = _normal_dir(test_dir, normal_class, problems)
    abnormal = [c for c in _classes(test_dir) if c != normal]
    if not abnormal:
        problems.add(f"{test_dir}: no abnormal class folder next to the normal class")
    for cls in ([normal] if normal else []) + abnormal:
        paths = list_images(cls, problems, what=f"test/{cls.name}")
        label = 0 if cls == normal else 1
        kind = "good" if label == 0 else "anomaly"
        test += make_samples(paths, problems, label=label, anomaly_type=cls.name, kind=kind, check=check)
    return test
