"""One entry point for every supported layout: ``read_category(root, category, format)``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, get_args

from glcf.data.folder import read_folder
from glcf.data.images import CheckLevel
from glcf.data.loco import read_loco
from glcf.data.mvtec import read_mvtec
from glcf.data.types import CategoryData

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "DataFormat", "read_category"]

DataFormat = Literal["mvtec", "loco", "folder"]
FORMATS: tuple[str, ...] = get_args(DataFormat)


def read_category(
    root: str | Path,
    category: str,
    format: str,
    *,
    holdout_fraction: float = 0.15,
    seed: int = 0,
    normal_class: str = "normal",
    check: CheckLevel = "verify",
) -> CategoryData:
    """Read and validate one category of a dataset in one of the supported layouts.

    Args:
        root: dataset root holding ``<category>/``.
        category: category folder name.
        format: ``mvtec`` (MVTec AD), ``loco`` (MVTec LOCO AD) or ``folder`` (folder per class).
        holdout_fraction: fraction of normal training images held out as validation for layouts
            without a validation split (MVTec AD; folder layouts without ``validation``/``val``).
            LOCO always uses ``validation/good``.
        seed: seed of that hold-out split.
        normal_class: name of the normal class folder in the folder layout (case-insensitive).
        check: how deeply every image is checked: ``header``, ``verify`` (default) or ``decode``.

    Returns:
        The category's splits as ``Sample`` tuples.

    Raises:
        ValueError: unknown format.
        DatasetLayoutError: the tree does not follow the layout (every problem listed).
    """
    if format not in FORMATS:
        msg = f"format must be one of {', '.join(FORMATS)}; got {format!r}"
        raise ValueError(msg)
    if check not in ("header", "verify", "decode"):
        msg = f"check must be header, verify or decode; got {check!r}"
        raise ValueError(msg)
    root = Path(root)
    if format == "mvtec":
        data = read_mvtec(root, category, holdout_fraction=holdout_fraction, seed=seed, check=check)
    elif format == "loco":
        if holdout_fraction:
            logger.debug("loco: holdout_fraction ignored, validation/good is the held-out split")
        data = read_loco(root, category, check=check)
    else:
        data = read_folder(
            root, category, normal_class=normal_class, holdout_fraction=holdout_fraction, seed=seed, check=check
        )
    logger.info(
        "%s/%s (%s): %d train, %d validation (%s), %d test",
        root,
        category,
        format,
        len(data.train),
        len(data.validation),
        data.validation_source,
        len(data.test),
    )
    return data
