"""Datasets in the published layouts: MVTec AD, MVTec LOCO AD, folder-per-class (Retinal-OCT) (issue 3).

The readers and file I/O import only numpy and Pillow. The torch parts (``preprocess``,
``ImageDataset``) load on first use, so that ``import glcf.data`` stays light for the CLI.
"""

from __future__ import annotations

from typing import Any

from glcf.data.images import IMAGE_EXTENSIONS, check_image, load_defect_masks, load_image, load_mask
from glcf.data.loco import parse_defects_config, read_defects_config
from glcf.data.readers import FORMATS, read_category
from glcf.data.types import CategoryData, DatasetLayoutError, DefectSpec, Sample

__all__ = [
    "FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "CategoryData",
    "DatasetLayoutError",
    "DefectSpec",
    "ImageDataset",
    "Sample",
    "check_image",
    "load_defect_masks",
    "load_image",
    "load_mask",
    "parse_defects_config",
    "preprocess",
    "read_category",
    "read_defects_config",
    "resize_rgb",
]

_LAZY = {
    "ImageDataset": "glcf.data.dataset",
    "IMAGENET_MEAN": "glcf.data.transforms",
    "IMAGENET_STD": "glcf.data.transforms",
    "preprocess": "glcf.data.transforms",
    "resize_rgb": "glcf.data.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'glcf.data' has no attribute {name!r}"
    raise AttributeError(msg)
