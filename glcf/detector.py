"""A ready-to-use GLCF detector: full weights, statistics, threshold and the one preprocessing path.

This is what the served model and ``glcf predict`` run: images in (files, bytes or RGB arrays of any
size), scores, decisions at the calibrated threshold and anomaly maps out. It needs no network: the
bundle written by :func:`glcf.checkpoint.export_full_model` holds every weight.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glcf.data.images import load_image
from glcf.data.transforms import normalize, resize_rgb
from glcf.detection import Detection, ImageDecodeError, decode_image
from glcf.scoring import resize_maps

logger = logging.getLogger(__name__)

__all__ = ["Detection", "Detector", "ImageDecodeError", "decode_image"]


class Detector:
    """Score images with a fully exported GLCF model.

    Args:
        bundle: a file written by :func:`glcf.checkpoint.export_full_model` (with statistics and a
            threshold).
        device: ``cpu`` (default), ``cuda`` or ``auto``.
    """

    def __init__(self, bundle: str | Path, device: str = "cpu") -> None:
        from glcf.checkpoint import load_full_model
        from glcf.runtime import resolve_device

        full = load_full_model(bundle)
        if full.stats is None or full.threshold is None:
            msg = f"{bundle}: the export holds no normalisation statistics or threshold (run calibrate first)"
            raise ValueError(msg)
        self.device = resolve_device(device)
        self.model = full.model.to(self.device).eval()
        self.config = full.config
        self.scorer = full.scorer()
        self.threshold = float(full.threshold)
        self.extra = full.extra
        self.image_size = self.config.image_size

    def _batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        arrays = np.stack([resize_rgb(im, self.image_size) for im in images])
        return normalize(arrays, self.model.mean, self.model.std).to(self.device)

    @torch.inference_mode()
    def score(
        self,
        images: Sequence[np.ndarray | str | Path],
        *,
        return_maps: bool = False,
        map_size: str = "original",
        batch_size: int = 8,
    ) -> list[Detection]:
        """Score RGB arrays (``uint8 [H, W, 3]``) or image files.

        Args:
            images: the images, any sizes.
            return_maps: include the anomaly maps.
            map_size: ``original`` (each image's size) or ``model`` (``S x S``).
            batch_size: images per forward pass.
        """
        if map_size not in ("original", "model"):
            msg = f"map_size must be original or model, got {map_size!r}"
            raise ValueError(msg)
        arrays = [im if isinstance(im, np.ndarray) else load_image(Path(im)) for im in images]
        out: list[Detection] = []
        for start in range(0, len(arrays), batch_size):
            chunk = arrays[start : start + batch_size]
            result = self.scorer(self.model(self._batch(chunk)))
            maps = result.anomaly_map.float().cpu()
            if return_maps and map_size == "original":
                sized: list[Any] = resize_maps(maps, [im.shape[:2] for im in chunk])
            else:
                sized = list(maps)
            for i in range(len(chunk)):
                score = float(result.image_score[i])
                out.append(
                    Detection(
                        score=score,
                        is_anomaly=score > self.threshold,
                        threshold=self.threshold,
                        local_score=float(result.local_score[i]),
                        global_score=float(result.global_score[i]),
                        anomaly_map=np.asarray(sized[i], dtype=np.float32) if return_maps else None,
                    )
                )
        return out
