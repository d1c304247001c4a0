"""A torch ``Dataset`` over a list of ``Sample`` using the single preprocessing path (``glcf.data.transforms``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from glcf.data.images import load_image
from glcf.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize, resize_rgb
from glcf.data.types import Sample

__all__ = ["ImageDataset"]


class ImageDataset(Dataset):
    """Images of one split, resized to ``S x S`` and normalised.

    Items are dicts ``{"image": FloatTensor [3, S, S], "label": int, "index": int}`` where ``index``
    is the position in ``samples`` (use it to find the ``Sample`` back).

    Args:
        samples: the images.
        image_size: model input side ``S``.
        mean: backbone channel mean (``model.mean``).
        std: backbone channel std (``model.std``).
        cache: keep each decoded, resized ``uint8`` image in memory after its first use
            (``3 * S * S`` bytes per image: 150 KB at 224 px), which spares the PNG decoding and
            resizing in every later epoch. Each data-loader worker process holds its own cache, so
            use it with ``num_workers=0``, or call ``preload()`` first (``glcf.training.engine.fit``
            does when it uses workers).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        *,
        cache: bool = False,
    ) -> None:
        if image_size < 1:
            msg = f"image_size must be positive, got {image_size}"
            raise ValueError(msg)
        self.samples = tuple(samples)
        self.image_size = image_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def resized(self, index: int) -> np.ndarray:
        """The decoded image resized to ``S x S``: ``uint8 [S, S, 3]`` (cached when enabled)."""
        if index in self._cache:
            return self._cache[index]
        image = resize_rgb(load_image(self.samples[index].path), self.image_size)
        if self.cache:
            self._cache[index] = image
        return image

    def preload(self) -> None:
        """Decode every image into the cache now (no-op without ``cache``)."""
        if self.cache:
            for i in range(len(self)):
                self.resized(i)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self.samples):
            msg = f"index {index} out of range for {len(self.samples)} samples"
            raise IndexError(msg)
        image = normalize(self.resized(index), self.mean, self.std)
        return {"image": image, "label": self.samples[index].label, "index": index}
