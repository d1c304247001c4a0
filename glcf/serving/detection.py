"""What a detector says about one image, and image bytes to RGB arrays (no torch: the exported path uses it).

:class:`Detection` is the verdict of :class:`glcf.inference.detector.Detector` and of
:class:`glcf.export.run.ExportedDetector`; :func:`decode_image` turns request bytes into the RGB arrays
both score.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from glcf.data.images import _to_rgb8

__all__ = ["ChunkScorer", "Detection", "ImageDecodeError", "decode_image", "detect"]


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image (names the input and the reason)."""


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None) -> np.ndarray:
    """Decode PNG/JPEG/... bytes to ``uint8 [H, W, 3]`` with the conversions of ``glcf.data.images``.

    Args:
        data: the encoded image.
        name: how to name the input in errors (e.g. ``request image 3``).
        max_pixels: refuse images with more pixels than this, before decoding them.

    Raises:
        ImageDecodeError: empty data, not an image, truncated, too large or an unsupported mode.
    """
    if not data:
        msg = f"{name}: empty image data"
        raise ImageDecodeError(msg)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                msg = f"{name}: image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
                raise ImageDecodeError(msg)
            img.load()
            return _to_rgb8(img, Path(name))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        msg = f"{name}: not an image format Pillow can read (send PNG or JPEG bytes)"
        raise ImageDecodeError(msg) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        msg = f"{name}: unreadable or truncated image ({type(exc).__name__}: {exc})"
        raise ImageDecodeError(msg) from None


@dataclass(frozen=True)
class Detection:
    """The verdict on one image.

    Attributes:
        score: the image score of the configured scoring mode.
        is_anomaly: ``score > threshold``.
        threshold: the calibrated threshold.
        local_score: the local branch's score alone.
        global_score: the global branch's score alone.
        anomaly_map: ``float32 [H, W]`` (original size or model size) when asked for, else None.
    """

    score: float
    is_anomaly: bool
    threshold: float
    local_score: float
    global_score: float
    anomaly_map: np.ndarray | None = None


#: scores one chunk of RGB arrays: ``(image scores [B], maps [B, S, S], local [B], global [B])`` as numpy
ChunkScorer = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def detect(
    images: Sequence[np.ndarray | str | Path],
    score_chunk: ChunkScorer,
    threshold: float,
    *,
    return_maps: bool = False,
    map_size: str = "original",
    batch_size: int = 8,
) -> list[Detection]:
    """One verdict per image, ``batch_size`` images per ``score_chunk`` call (the in-process detector's and
    the exported one's loop); maps at each image's size use the evaluation's resize (anti-aliased when
    shrinking), so served maps are the evaluated maps."""
    from glcf.data.images import load_image
    from glcf.metrics.maps import resize_map

    if map_size not in ("original", "model"):
        msg = f"map_size must be original or model, got {map_size!r}"
        raise ValueError(msg)
    arrays = [im if isinstance(im, np.ndarray) else load_image(Path(im)) for im in images]
    out: list[Detection] = []
    for start in range(0, len(arrays), batch_size):
        chunk = arrays[start : start + batch_size]
        scores, maps, local, glob = score_chunk(chunk)
        sized = [np.asarray(m, dtype=np.float32) for m in maps]
        if return_maps and map_size == "original":
            sized = [resize_map(m, (im.shape[1], im.shape[0])) for m, im in zip(sized, chunk, strict=True)]
        for i in range(len(chunk)):
            score = float(scores[i])
            out.append(
                Detection(
                    score=score,
                    is_anomaly=score > threshold,
                    threshold=threshold,
                    local_score=float(local[i]),
                    global_score=float(glob[i]),
                    anomaly_map=sized[i] if return_maps else None,
                )
            )
    return out
