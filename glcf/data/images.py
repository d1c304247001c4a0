"""Image and ground-truth file I/O with explicit, deterministic conversions (issue 3).

Every image becomes 8-bit RGB the same way at every stage:

* grayscale (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``): Pillow's ``convert("RGB")``, so gray values
  are replicated into the three channels;
* with alpha (``RGBA``, ``LA``, ``PA``): the alpha channel is **dropped** (the stored colour values
  are kept; nothing is composited);
* 16-bit single-channel (``I;16*`` and ``I`` with values in 0..65535): divided by 257 and rounded
  to nearest (65535 -> 255), then replicated; Pillow itself already reduces 16-bit RGB PNGs to
  ``RGB`` when it opens them;
* anything else (``F`` float images, ``I`` values outside 0..65535, unknown modes) is rejected
  with a ``DatasetLayoutError`` naming the file.

Unreadable or truncated files raise ``DatasetLayoutError`` naming the file: images are fully
decoded with Pillow's default ``LOAD_TRUNCATED_IMAGES = False`` behaviour (this module never
changes that global), and ``check_image`` can run Pillow's ``verify()`` when a reader validates a tree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from glcf.data.types import DatasetLayoutError, DefectSpec, Sample

logger = logging.getLogger(__name__)

#: The project's one resize filter (see glcf.data.transforms).
RESAMPLE = Image.Resampling.BICUBIC

__all__ = [
    "IMAGE_EXTENSIONS",
    "check_image",
    "load_defect_masks",
    "load_image",
    "load_mask",
    "read_label_png",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_RGB_CONVERTIBLE = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "RGBA", "LA", "PA", "La", "RGBa"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
CheckLevel = Literal["header", "verify", "decode"]


def _fail(path: Path, message: str) -> None:
    raise DatasetLayoutError(path, [f"{path}: {message}"])


def _check_truncation_flag() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process: truncated images cannot be "
            "detected while decoding (run the reader's verify check to catch them)"
        )


def check_image(path: Path, level: CheckLevel = "verify") -> tuple[tuple[int, int], str]:
    """Open an image file and check that it can be used; return ``((width, height), mode)``.

    Args:
        path: image file.
        level: ``header`` (open and read size and mode), ``verify`` (also Pillow's ``verify()``,
            which checks PNG chunk CRCs and the end of the stream without decoding), or ``decode``
            (also decode every pixel, which catches truncated JPEGs too).

    Raises:
        DatasetLayoutError: unreadable, truncated or unsupported image (mode ``F``, unknown modes).
    """
    try:
        with Image.open(path) as img:
            size, mode = img.size, img.mode
            if level == "verify":
                img.verify()
        if mode not in _RGB_CONVERTIBLE and mode not in _SIXTEEN_BIT:
            _fail(path, f"unsupported image mode {mode!r} (supported: 8-bit gray/RGB/RGBA/palette, 16-bit gray)")
        if level == "decode":
            load_image(path)
    except DatasetLayoutError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        _fail(path, f"unreadable or truncated image ({type(exc).__name__}: {exc})")
    if size[0] < 1 or size[1] < 1:
        _fail(path, f"empty image of size {size}")
    return size, mode


def _to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        arr = np.asarray(img).astype(np.int64)
        if arr.ndim != 2 or arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            _fail(path, f"mode {mode!r} with values outside 0..65535 cannot be converted to 8-bit")
        gray = np.rint(arr / 257.0).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode not in _RGB_CONVERTIBLE:
        _fail(path, f"unsupported image mode {mode!r} (supported: 8-bit gray/RGB/RGBA/palette, 16-bit gray)")
    if mode != "RGB":
        img = img.convert("RGB")  # drops alpha; replicates gray; applies palettes
    return np.asarray(img, dtype=np.uint8)


def load_image(path: Path | Sample) -> np.ndarray:
    """Decode an image file to 8-bit RGB.

    Args:
        path: image file or a ``Sample``.

    Returns:
        ``uint8`` array ``[H, W, 3]``.

    Raises:
        DatasetLayoutError: unreadable, truncated or unconvertible file, naming it.
    """
    path = path.path if isinstance(path, Sample) else Path(path)
    _check_truncation_flag()
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb8(img, path)
    except DatasetLayoutError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        _fail(path, f"unreadable or truncated image ({type(exc).__name__}: {exc})")
    raise AssertionError  # unreachable


def read_label_png(path: Path) -> np.ndarray:
    """Read a ground-truth PNG as a 2-D integer array (MVTec AD mask or one LOCO defect PNG).

    A multi-channel mask is reduced with the channel maximum (a pixel is labelled when any
    channel is). Palette PNGs give their palette indices, as ``numpy.array(Image.open(...))`` does in
    the official LOCO script.

    Raises:
        DatasetLayoutError: unreadable file or a non-integer (float) mask.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "1":
                img = img.convert("L")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        _fail(path, f"unreadable or truncated mask ({type(exc).__name__}: {exc})")
    if not np.issubdtype(arr.dtype, np.integer):
        _fail(path, f"mask must hold integer values, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    return arr


def load_mask(sample: Sample) -> np.ndarray:
    """Pixel ground truth of a test image: the **union** of its mask files (never their average).

    Returns:
        ``bool`` array ``[H, W]`` at the image's original size; all ``False`` for a good image.

    Raises:
        DatasetLayoutError: a mask whose size differs from the image's, or an unreadable mask.
    """
    w, h = sample.size
    union = np.zeros((h, w), dtype=bool)
    for mask_path in sample.mask_paths:
        arr = read_label_png(mask_path)
        if arr.shape != (h, w):
            _fail(mask_path, f"mask size {arr.shape[1]}x{arr.shape[0]} differs from the image size {w}x{h}")
        union |= arr > 0
    return union


def load_defect_masks(sample: Sample, defects: Mapping[int, DefectSpec]) -> list[tuple[np.ndarray, DefectSpec]]:
    """Each LOCO ground-truth PNG of ``sample`` as one defect (regions inside one PNG are not split).

    Args:
        sample: a test sample with LOCO ground truth (one PNG per defect).
        defects: the category's ``defects_config.json`` by pixel value.

    Returns:
        One ``(mask [H, W] bool, DefectSpec)`` per PNG, in file-name order.

    Raises:
        DatasetLayoutError: a PNG with no positive pixel, several positive values, a value missing
            from ``defects_config.json``, or a size different from the image's.
    """
    w, h = sample.size
    out: list[tuple[np.ndarray, DefectSpec]] = []
    for mask_path in sample.mask_paths:
        arr = read_label_png(mask_path)
        if arr.shape != (h, w):
            _fail(mask_path, f"mask size {arr.shape[1]}x{arr.shape[0]} differs from the image size {w}x{h}")
        values = np.unique(arr)
        positive = values[values != 0]
        if positive.size == 0:
            _fail(mask_path, "defect PNG has no positive pixel")
        if positive.size > 1 or positive[0] < 0:
            _fail(mask_path, f"defect PNG must hold one positive value, found {positive.tolist()}")
        value = int(positive[0])
        if value not in defects:
            _fail(mask_path, f"pixel value {value} is not in defects_config.json (known: {sorted(defects)})")
        out.append((arr != 0, defects[value]))
    return out


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an 8-bit RGB image to ``size x size`` with the project's single filter.

    Args:
        image: ``uint8`` array ``[H, W, 3]``.
        size: output side in pixels.

    Returns:
        ``uint8`` array ``[size, size, 3]``.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        msg = f"resize_rgb expects a uint8 [H, W, 3] array, got {image.dtype} {image.shape}"
        raise ValueError(msg)
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image, mode="RGB").resize((size, size), RESAMPLE))
