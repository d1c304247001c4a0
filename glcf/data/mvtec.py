"""MVTec AD reader: ``train/good``, ``test/<type>``, ``ground_truth/<type>/<stem>_mask.png`` (docs/evaluation.md).

MVTec AD has no validation split: the held-out normal images for the normalisation statistics and
the threshold are a seeded fraction of ``train/good`` (docs/evaluation.md, Held-out normal images).
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
    only_good,
    open_category,
    require_dir,
)
from glcf.data.images import CheckLevel, check_image
from glcf.data.types import CategoryData, DatasetLayoutError, Sample

__all__ = ["read_mvtec"]


def _check_mask_sizes(samples: list[Sample], problems: Problems) -> None:
    for s in samples:
        for mask in s.mask_paths:
            try:
                (mw, mh), _ = check_image(mask, "header")
            except DatasetLayoutError as exc:
                problems.items.extend(exc.problems)
                continue
            if (mw, mh) != s.size:
                problems.add(f"{mask}: mask size {mw}x{mh} differs from its image {s.path.name} ({s.width}x{s.height})")


def read_mvtec(
    root: Path, category: str, *, holdout_fraction: float = 0.15, seed: int = 0, check: CheckLevel = "verify"
) -> CategoryData:
    """Read and validate one MVTec AD category.

    Args:
        root: dataset root holding ``<category>/``.
        category: category folder name (e.g. ``bottle``).
        holdout_fraction: fraction of ``train/good`` held out as validation (seeded).
        seed: seed of the hold-out split.
        check: image check level (see ``glcf.data.images.check_image``).

    Raises:
        DatasetLayoutError: every problem of the tree at once (missing folders, a test anomaly without
            its mask, a mask without its image, mask/image size mismatches, bad images, empty splits,
            anomalies in ``train``).
    """
    base, problems = open_category(root, category)
    train: list[Sample] = []
    if require_dir(base / "train", problems, "train split") and require_dir(
        base / "train" / "good", problems, "normal training images"
    ):
        only_good(base / "train", problems, "MVTec AD training data holds only train/good (anomalies in train?)")
        train = normal_samples(base / "train" / "good", problems, what="train/good", check=check)
    test = _test_samples(base, problems, check) if require_dir(base / "test", problems, "test split") else []
    problems.raise_if_any()
    tr, val = holdout_split(train, holdout_fraction, seed, where=base / "train" / "good")
    source = f"seeded hold-out of train/good (fraction {holdout_fraction}, seed {seed})"
    return category_data(
        root, category, "mvtec", problems, train=tr, validation=val, test=test, validation_source=source
    )


def _test_samples(base: Path, problems: Problems, check: CheckLevel) -> list[Sample]:
    """``test/good`` and every anomaly type of ``test/`` with its masks; checks ``ground_truth/`` against them."""
    types = sorted(p.name for p in (base / "test").iterdir() if p.is_dir() and not p.name.startswith("."))
    if "good" not in types:
        problems.add(f"{base / 'test' / 'good'}: missing folder (normal test images)")
    if not [t for t in types if t != "good"]:
        problems.add(f"{base / 'test'}: no anomaly type folder next to test/good")
    gt_root = base / "ground_truth"
    has_gt = require_dir(gt_root, problems, "ground truth masks") if len(types) > 1 else False
    test: list[Sample] = []
    for t in types:
        if t == "good":
            test += normal_samples(base / "test" / t, problems, what=f"test/{t}", check=check)
        else:
            test += _anomaly_samples(base / "test" / t, gt_root / t, has_gt, problems, check)
    if has_gt:
        for g in sorted(p for p in gt_root.iterdir() if p.is_dir()):
            if g.name not in types or g.name == "good":
                problems.add(f"{g}: ground truth folder without a test/{g.name} folder")
    return test


def _anomaly_samples(folder: Path, gt_dir: Path, has_gt: bool, problems: Problems, check: CheckLevel) -> list[Sample]:
    """The images of one anomaly type with their ``<stem>_mask.png``; masks without an image are problems."""
    t = folder.name
    paths = list_images(folder, problems, what=f"test/{t}")
    masks: list[tuple[Path, ...]] = []
    for p in paths:
        mask = gt_dir / f"{p.stem}_mask.png"
        if has_gt and not mask.is_file():
            problems.add(f"{p}: anomaly without a mask (expected {mask})")
        masks.append((mask,))
    if has_gt and gt_dir.is_dir():
        stems = {p.stem for p in paths}
        for m in sorted(gt_dir.glob("*_mask.png")):
            if m.name[: -len("_mask.png")] not in stems:
                problems.add(f"{m}: mask without a test image (expected test/{t}/{m.name[:-9]}.png)")
    samples = make_samples(paths, problems, label=1, anomaly_type=t, kind="anomaly", check=check, masks=masks)
    _check_mask_sizes([s for s in samples if all(m.is_file() for m in s.mask_paths)], problems)
    return samples
