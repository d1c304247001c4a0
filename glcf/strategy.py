"""How :func:`glcf.engine.fit` places the model and its data: one process (:class:`TrainStrategy`),
or data-parallel workers under ``torchrun`` (:class:`glcf.distributed.DDPStrategy` overrides the hooks)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from glcf.config import TrainConfig
from glcf.runtime import make_loader, resolve_device

__all__ = ["TrainStrategy", "epoch_seed"]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the shuffle generator of 0-based ``epoch`` (one order per epoch, reproducible on resume)."""
    return seed * 1_000_003 + epoch


class TrainStrategy:
    """How :func:`fit` places the model and its data: this base class trains in one process.

    :class:`glcf.distributed.DDPStrategy` overrides the hooks for ``torchrun`` data parallelism.
    """

    is_main: bool = True  # writes checkpoints, shows progress, calls ``on_epoch_end``

    def device(self, requested: str) -> torch.device:
        """The training device for ``train.device``."""
        return resolve_device(requested)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training steps call (``model(x) -> GLCFFeatures``)."""
        return model

    def loader(
        self, dataset: Dataset, cfg: TrainConfig, *, epoch: int, drop_last: bool, device: torch.device
    ) -> DataLoader:
        """The shuffled loader of 0-based ``epoch`` (seeded with :func:`epoch_seed`)."""
        return make_loader(
            dataset,
            cfg.batch_size,
            shuffle=True,
            seed=epoch_seed(cfg.seed, epoch),
            num_workers=cfg.num_workers,
            drop_last=drop_last,
            device=device,
        )

    def reduce(self, stats: dict[str, float]) -> dict[str, float]:
        """Epoch statistics of all workers (mean losses, summed ``images``)."""
        return stats

    def agree(self, value: Any) -> Any:
        """The main worker's ``value`` (e.g. the checkpoint to resume from)."""
        return value
