"""Helpers shared by the layout readers: folder listing, problem collection, image checks, hold-out split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glcf.data.images import IMAGE_EXTENSIONS, CheckLevel, check_image
from glcf.data.types import CategoryData, DatasetLayoutError, DefectSpec, Kind, Sample

logger = logging.getLogger(__name__)


class Problems:
    """Collects every layout problem of a tree, then raises them together."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.items: list[str] = []
        self.ignored: list[Path] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def ignore(self, path: Path, why: str) -> None:
        logger.warning("ignored %s (%s)", path, why)
        self.ignored.append(path)

    def raise_if_any(self) -> None:
        if self.items:
            raise DatasetLayoutError(self.where, self.items)


def require_dir(path: Path, problems: Problems, what: str) -> bool:
    """Record a problem unless ``path`` is a directory."""
    if path.is_dir():
        return True
    if path.exists():
        problems.add(f"{path}: expected a folder ({what}), found a file")
    else:
        problems.add(f"{path}: missing folder ({what})")
    return False


def open_category(root: Path, category: str) -> tuple[Path, Problems]:
    """``root/category`` and the problem list of its tree; a missing category folder is raised at once."""
    base = Path(root) / category
    problems = Problems(base)
    if not require_dir(base, problems, "category"):
        problems.raise_if_any()
    return base, problems


def list_images(folder: Path, problems: Problems, *, what: str, allow_empty: bool = False) -> list[Path]:
    """Image files of ``folder`` sorted by name; other files are ignored with a warning, hidden ones silently.

    An empty split is a problem unless ``allow_empty``. Sub-folders are problems (nothing is skipped).
    """
    images: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # .DS_Store, editor swap files: never data
        if entry.is_dir():
            problems.add(f"{entry}: unexpected sub-folder in {what}")
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(entry)
        else:
            problems.ignore(entry, f"not an image file ({', '.join(IMAGE_EXTENSIONS)})")
    if not images and not allow_empty:
        problems.add(f"{folder}: empty split ({what}: no image files)")
    return images


def make_samples(
    paths: Sequence[Path],
    problems: Problems,
    *,
    label: int,
    anomaly_type: str,
    kind: Kind,
    check: CheckLevel,
    masks: Sequence[tuple[Path, ...]] | None = None,
) -> list[Sample]:
    """Open every image (``check`` level) and build its ``Sample``; failures become problems.

    Paths are made absolute without resolving symbolic links: a DVC checkout may link every file to
    its content-addressed cache, whose names are hashes, and the file names carry the image stems.
    """
    samples: list[Sample] = []
    for i, path in enumerate(paths):
        try:
            size, _mode = check_image(path, check)
        except DatasetLayoutError as exc:
            problems.items.extend(exc.problems)
            continue
        mask_paths = masks[i] if masks is not None else ()
        samples.append(
            Sample(path.absolute(), label, anomaly_type, kind, tuple(p.absolute() for p in mask_paths), size)
        )
    return samples


def only_good(split_dir: Path, problems: Problems, why: str) -> None:
    """A problem (``<folder>: why``) for every sub-folder of ``split_dir`` other than ``good``."""
    for extra in sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name != "good"):
        problems.add(f"{extra}: {why}")


def normal_samples(
    folder: Path, problems: Problems, *, what: str, check: CheckLevel, anomaly_type: str = "good"
) -> list[Sample]:
    """The images of ``folder`` as normal samples (label 0, kind ``good``)."""
    paths = list_images(folder, problems, what=what)
    return make_samples(paths, problems, label=0, anomaly_type=anomaly_type, kind="good", check=check)


def category_data(
    root: Path,
    category: str,
    format: str,
    problems: Problems,
    *,
    train: Sequence[Sample],
    validation: Sequence[Sample],
    test: Sequence[Sample],
    validation_source: str,
    defects: dict[int, DefectSpec] | None = None,
) -> CategoryData:
    """A reader's result: its splits, the absolute dataset root and the files ``problems`` ignored."""
    return CategoryData(
        root=Path(root).absolute(),
        category=category,
        format=format,
        train=tuple(train),
        validation=tuple(validation),
        test=tuple(test),
        defects=defects if defects is not None else {},
        validation_source=validation_source,
        ignored=tuple(problems.ignored),
    )


def holdout_split(
    samples: Sequence[Sample], fraction: float, seed: int, *, where: Path
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """Seeded split of normal training images into (train, validation).

    ``round(fraction * n)`` images (at least one when ``fraction > 0``) are drawn with
    ``numpy.random.default_rng(seed).permutation`` over the name-sorted list; both parts keep name order.

    Raises:
        ValueError: ``fraction`` outside [0, 1) or a split that would leave no training image.
    """
    if not (0.0 <= fraction < 1.0):
        msg = f"holdout_fraction must be in [0, 1), got {fraction!r}"
        raise ValueError(msg)
    n = len(samples)
    n_val = 0 if fraction == 0 else max(1, round(fraction * n))
    if n - n_val < 1:
        msg = f"{where}: holdout_fraction={fraction} of {n} training image(s) leaves no training image"
        raise DatasetLayoutError(where, [msg])
    order = sorted(samples, key=lambda s: str(s.path))
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = tuple(s for i, s in enumerate(order) if i not in chosen)
    val = tuple(s for i, s in enumerate(order) if i in chosen)
    return train, val
