"""Data-parallel training with ``torchrun`` and DistributedDataParallel (docs/operations.md, Distributed training).

``torchrun --nproc-per-node N`` starts N processes; :func:`init_distributed` joins them into a process group
(``env://``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` from torchrun; NCCL on
GPUs, gloo on CPUs). Inside the group :func:`glcf.training.engine.fit` picks :class:`DDPStrategy` by itself, so the
single-process training code runs unchanged on every rank:

* the global batch ``train.batch_size`` is split over the ranks (``batch_size / N`` images each), and rank ``r``
  gets slice ``r`` of exactly the batches one process would draw in that epoch (:class:`EpochShardSampler`);
* only the trainable parts (bottleneck and decoders) are wrapped in DDP; the frozen encoder runs outside it, so
  it is never broadcast nor reduced;
* DDP averages the gradients over the ranks. The GLCF loss is a mean over the images of a batch, so the mean of
  the N per-rank gradients (each over ``batch_size / N`` images) is the gradient of the full batch, and N
  workers produce the weights of one process with the whole batch (up to float summation order), as long as
  nothing random differs: with ``decoder.drop_path_rate > 0`` each rank draws its own masks;
* rank 0 writes the checkpoints, shows progress and reports the epochs; every rank resumes from the checkpoint
  rank 0 names, so a killed multi-process run resumes like a single-process one;
* an error on one rank (e.g. :class:`glcf.training.epoch.NonFiniteLossError`) ends that process;
  ``torchrun`` then stops the others, which would otherwise wait in the next collective until ``timeout_s``.

This module is part of the ``glcf`` library: no pipeline, tracking or orchestration imports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from glcf.config import TrainConfig
from glcf.model.features import GLCFFeatures
from glcf.runtime import make_loader, resolve_device
from glcf.training.strategy import TrainStrategy, epoch_seed

__all__ = [
    "DDPStrategy",
    "DistEnv",
    "DistributedSetupError",
    "EpochShardSampler",
    "default_strategy",
    "dist_env",
    "init_distributed",
    "shutdown_distributed",
]

logger = logging.getLogger(__name__)


class DistributedSetupError(RuntimeError):
    """The process group or the data cannot be split as data-parallel training needs."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a ``torchrun`` job (``WORLD_SIZE`` 1 outside one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` sets them."""
    env = os.environ if environ is None else environ
    try:
        values = DistEnv(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        msg = f"RANK/WORLD_SIZE/LOCAL_RANK must be integers (torchrun sets them): {exc}"
        raise DistributedSetupError(msg) from None
    if values.world_size < 1 or not (0 <= values.rank < values.world_size):
        msg = f"RANK={values.rank} is outside WORLD_SIZE={values.world_size}"
        raise DistributedSetupError(msg)
    return values


def init_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistEnv:
    """Join the ``torchrun`` process group (``env://``); a no-op outside ``torchrun`` or with one process.

    Args:
        device: ``train.device``: NCCL when the ranks train on CUDA, gloo on CPU.
        timeout_s: how long a collective waits for the other ranks before failing.

    Returns:
        This process's :class:`DistEnv`.
    """
    env = dist_env()
    if env.world_size == 1 or dist.is_initialized():
        return env
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    from datetime import timedelta

    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo", init_method="env://", timeout=timedelta(seconds=timeout_s)
    )
    logger.info("rank %d/%d joined the process group (%s)", env.rank, env.world_size, dist.get_backend())
    return env


def shutdown_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _IndexDataset(Dataset):
    """``range(n)`` as a dataset: lets the single-process loader tell which indices it would batch."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class EpochShardSampler(DistributedSampler):
    """Rank ``r``'s share of the batches a single process would draw in the current epoch.

    A plain ``DistributedSampler`` shuffles with its own generator, so N ranks would see other batches
    than one process. This sampler asks the single-process loader itself (``make_loader`` seeded with
    :func:`glcf.training.engine.epoch_seed`) for its batches of indices and yields slice ``r`` of each, so the union
    over the ranks at every step is exactly the single-process batch, whatever the loader's internals are.
    (Accelerate's ``BatchSamplerShard(split_batches=True)`` does the same; it is not a dependency here.)

    Args:
        dataset: the training dataset (only its length is used).
        batch_size: the global batch size (``train.batch_size``), a multiple of ``num_replicas``.
        seed: ``train.seed``.
        num_replicas: the world size (default: the process group's).
        rank: this rank (default: the process group's).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        n = len(dataset)  # type: ignore[arg-type]
        if batch_size % self.num_replicas:
            msg = f"train.batch_size={batch_size} must be a multiple of the {self.num_replicas} DDP workers"
            raise DistributedSetupError(msg)
        if n < batch_size:
            msg = f"DDP needs at least train.batch_size={batch_size} training images, got {n}"
            raise DistributedSetupError(msg)
        self.batch_size = batch_size
        self.local_batch = batch_size // self.num_replicas
        self.n = n

    def global_batches(self) -> list[list[int]]:
        """The index batches of one process in this epoch (full batches only, as ``fit`` drops the last)."""
        loader = make_loader(
            _IndexDataset(self.n), self.batch_size, shuffle=True, seed=epoch_seed(self.seed, self.epoch), drop_last=True
        )
        return [batch.tolist() for batch in loader]

    def __iter__(self) -> Iterator[int]:
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        for batch in self.global_batches():
            yield from batch[lo:hi]

    def __len__(self) -> int:
        return (self.n // self.batch_size) * self.local_batch


class _TrainableParts(nn.Module):
    """The learning parts of a GLCF model (bottleneck and the three decoders) as one module for DDP."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({n: m for n, m in model.named_children() if n != "encoder" and m is not None})
        self._model = (model,)  # a tuple: not registered, so the encoder stays outside DDP

    def forward(self, taps: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        model = self._model[0]
        return model.heads(*model.represent(taps))


class _DDPForward(nn.Module):
    """``model(x) -> GLCFFeatures`` with the frozen encoder outside and the trainable parts inside DDP."""

    def __init__(self, model: nn.Module, ddp: DistributedDataParallel) -> None:
        super().__init__()
        self.ddp = ddp
        self._model = (model,)

    def train(self, mode: bool = True) -> _DDPForward:
        self._model[0].train(mode)  # the GLCF model keeps its encoder in eval
        return self

    def forward(self, x: Tensor | list[Tensor]) -> GLCFFeatures:
        model = self._model[0]
        taps = model.encode(x)  # frozen, no gradient: [E1..E4] (of images, or of their cached raw taps)
        corr, local_est, global_est = self.ddp(taps)
        return GLCFFeatures(encoder=taps[:3], global_corr=corr, local_est=local_est, global_est=global_est)


def _ddp_arguments() -> set[str]:
    """DDP's keyword arguments (torch 2.15 renamed ``broadcast_buffers`` to ``forward_sync_buffers``)."""
    import inspect

    return set(inspect.signature(DistributedDataParallel).parameters)


class DDPStrategy(TrainStrategy):
    """:class:`glcf.training.engine.TrainStrategy` for an initialised process group (one process per device).

    Args:
        find_unused_parameters: DDP's flag; GLCF uses every trainable parameter in each step.
    """

    def __init__(self, find_unused_parameters: bool = False) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            msg = "DDPStrategy needs an initialised process group (run under torchrun and call init_distributed)"
            raise DistributedSetupError(msg)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_rank = dist_env().local_rank
        self.is_main = self.rank == 0
        self.find_unused_parameters = find_unused_parameters
        self._device = torch.device("cpu")

    def device(self, requested: str) -> torch.device:
        """``cuda:LOCAL_RANK`` when the run trains on CUDA, else the CPU."""
        dev = resolve_device(requested)
        if dev.type == "cuda":
            if dev.index is not None and dev.index != self.local_rank:
                logger.warning(
                    "train.device=%s ignored under DDP: rank %d uses cuda:%d", requested, self.rank, self.local_rank
                )
            dev = torch.device("cuda", self.local_rank)
        self._device = dev
        return dev

    def wrap(self, model: nn.Module) -> nn.Module:
        parts = _TrainableParts(model)
        ids = [self._device.index] if self._device.type == "cuda" else None
        # no buffer sync in every forward: the trainable parts hold no running statistics (LayerNorm only)
        sync = "forward_sync_buffers" if "forward_sync_buffers" in _ddp_arguments() else "broadcast_buffers"
        ddp = DistributedDataParallel(
            parts, device_ids=ids, find_unused_parameters=self.find_unused_parameters, **{sync: False}
        )
        return _DDPForward(model, ddp)

    def loader(
        self, dataset: Dataset, cfg: TrainConfig, *, epoch: int, drop_last: bool, device: torch.device
    ) -> DataLoader:
        n = len(dataset)  # type: ignore[arg-type]
        main_n = self.agree(n)
        if main_n != n:
            msg = f"rank {self.rank} has {n} training images, rank 0 has {main_n}: the ranks must read the same data"
            raise DistributedSetupError(msg)
        sampler = EpochShardSampler(dataset, cfg.batch_size, cfg.seed, num_replicas=self.world_size, rank=self.rank)
        sampler.set_epoch(epoch)
        # random ops (drop path) draw different numbers on each rank, reproducibly per epoch (also after resume)
        torch.manual_seed(epoch_seed(cfg.seed, epoch) * 7919 + self.rank)
        return make_loader(
            dataset,
            sampler.local_batch,
            sampler=sampler,
            seed=epoch_seed(cfg.seed, epoch) + self.rank,
            num_workers=cfg.num_workers,
            device=device,
        )

    def reduce(self, stats: dict[str, float]) -> dict[str, float]:
        """Mean of each loss over the ranks (equal image counts), sum of ``images``."""
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=self._device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        out = {k: float(v) for k, v in zip(keys, values.tolist(), strict=True)}
        return {k: (v if k == "images" else v / self.world_size) for k, v in out.items()}

    def agree(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def default_strategy() -> TrainStrategy:
    """DDP inside an initialised multi-process ``torch.distributed`` group, else one process."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return DDPStrategy()
    return TrainStrategy()
