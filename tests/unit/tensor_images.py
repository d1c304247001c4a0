"""Random image tensors and a dataset of them, for the training-engine tests (single process and DDP)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


class DictImages(Dataset):
    """Items shaped like the data layer's: ``{"image", "label", "index"}``."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": 0, "index": i}


def random_images(n: int, seed: int) -> torch.Tensor:
    """``n`` seeded 3x64x64 standard-normal images."""
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every weight outside the frozen encoder (independent of glcf.model.checkpoint's own split)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
