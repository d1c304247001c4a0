"""Anomaly-map files and resizing to the original image size (docs/evaluation.md, Original resolution).

Maps are resized with Pillow's bilinear filter on float32 (mode ``F``): pixel centres are aligned
(``align_corners=False``), and a shrink is anti-aliased. The official LOCO script never resizes (a
size mismatch is an error there); callers that resize report how many maps they resized.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["MAP_SUFFIXES", "find_map_file", "read_anomaly_map", "resize_map"]

MAP_SUFFIXES = (".tiff", ".tif", ".npy")


def resize_map(anomaly_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map to ``size = (width, height)``; unchanged when already that size.

    Returns:
        ``[height, width]`` map (float32 when resized).
    """
    width, height = size
    if anomaly_map.shape == (height, width):
        return anomaly_map
    img = Image.fromarray(np.ascontiguousarray(anomaly_map, dtype=np.float32))
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def find_map_file(folder: Path, stem: str) -> Path:
    """The map file ``<folder>/<stem>.tiff`` (or ``.tif``, ``.npy``).

    Raises:
        FileNotFoundError: no map file, naming the expected path.
        ValueError: several map files for the same image.
    """
    found = [folder / f"{stem}{s}" for s in MAP_SUFFIXES if (folder / f"{stem}{s}").is_file()]
    if not found:
        msg = f"missing anomaly map: {folder / (stem + '.tiff')} (or .tif / .npy)"
        raise FileNotFoundError(msg)
    if len(found) > 1:
        msg = f"several anomaly maps for one image: {', '.join(str(f) for f in found)}"
        raise ValueError(msg)
    return found[0]


def read_anomaly_map(path: Path) -> np.ndarray:
    """Read a 2-D real-valued map from ``.tiff``/``.tif`` (tifffile) or ``.npy``.

    Singleton leading/trailing axes (``[1, H, W]``, ``[H, W, 1]``) are squeezed.

    Raises:
        ValueError: unreadable file, not 2-D, not real-valued, or non-finite values, naming the file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            import tifffile

            arr = tifffile.imread(path)
    except (OSError, ValueError) as exc:
        msg = f"{path}: unreadable anomaly map ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from exc
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        msg = f"{path}: an anomaly map must be 2-D, got shape {arr.shape}"
        raise ValueError(msg)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        msg = f"{path}: an anomaly map must be real-valued, got dtype {arr.dtype}"
        raise ValueError(msg)
    if arr.dtype != np.float32 and arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        msg = f"{path}: anomaly map has {int(np.sum(~np.isfinite(arr)))} non-finite value(s)"
        raise ValueError(msg)
    return arr
