"""Training engine: AdamW on the trainable parts, step LR, checkpoints, exact resume.

One :func:`fit` call trains a GLCF model on normal images with the recipe of the paper and the authors'
code (AdamW betas 0.9/0.95, weight decay 0.01, a step LR after ``train.lr_step_fraction``, seeded
shuffling, last incomplete batch dropped), minus their bugs: gradients are zeroed every step, the encoder
stays frozen in eval mode (its taps are computed once, :mod:`glcf.training.feature_cache`), everything is seeded,
the last epoch's weights are kept (no selection on test data), and a non-finite loss stops the run
(one epoch's steps: :mod:`glcf.training.epoch`).

Per-epoch numbers go to an injected ``on_epoch_end(record)`` callback (the pipeline logs them to MLflow;
this library never imports a tracker). A checkpoint is written after every epoch; ``resume_from``
continues exactly where it stopped (weights, optimizer, scheduler, RNG and data order).

Multi-process training plugs in through a :class:`TrainStrategy`: the default trains in one process;
inside an initialised ``torch.distributed`` process group (``torchrun``) :func:`fit` uses
:class:`glcf.training.distributed.DDPStrategy` (DDP on the trainable parts, the global batch split over the
ranks, checkpoints and progress on rank 0). The optimizer and checkpoints work on the unwrapped model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from glcf.config import TrainConfig, config_to_dict
from glcf.model.checkpoint import read_checkpoint, restore_weights, save_checkpoint
from glcf.runtime import (
    get_rng_state,
    make_loader,
    resolve_amp,
    seed_everything,
    set_rng_state,
)
from glcf.training.distributed import default_strategy
from glcf.training.epoch import LossFn, NonFiniteLossError, train_one_epoch
from glcf.training.feature_cache import batch_inputs, training_data
from glcf.training.strategy import TrainStrategy, epoch_seed

__all__ = [
    "CHECKPOINT_NAME",
    "FitResult",
    "NonFiniteLossError",
    "TrainStrategy",
    "build_optimizer",
    "build_scheduler",
    "default_strategy",
    "epoch_seed",
    "fit",
    "train_one_epoch",
]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        history: one record per completed epoch (resumed runs include the earlier epochs).
        checkpoint_path: the last checkpoint written, or None without ``checkpoint_dir``.
        epochs_run: epochs trained by this call.
        final_epoch: completed epochs in total (``train.epochs`` on success).
        seconds: wall time of this call's training loop.
        images_per_second: training throughput of this call.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_path: Path | None = None
    epochs_run: int = 0
    final_epoch: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``model.trainable_parameters()`` only (never the frozen encoder)."""
    params = [p for p in model.trainable_parameters() if p.requires_grad]
    if not params:
        msg = "build_optimizer: the model has no trainable parameters"
        raise ValueError(msg)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch step schedule: ``lr`` before epoch ``round(lr_step_fraction * epochs)``, ``lr_final`` from it on."""
    milestone = round(cfg.lr_step_fraction * cfg.epochs)
    factor = cfg.lr_final / cfg.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 if epoch < milestone else factor)


def _default_loss(model: nn.Module) -> LossFn:
    from glcf.training.loss import GLCFLoss

    return GLCFLoss(model.config.loss)


def fit(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    strategy: TrainStrategy | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset`` (normal images) for ``cfg.epochs`` epochs.

    Args:
        model: a GLCF model (``model(x) -> GLCFFeatures``, ``trainable_parameters()``, ``config``);
            trained in place and moved to the training device.
        dataset: map-style dataset of ``[3, S, S]`` tensors or dicts with ``image``.
        cfg: training setup; ``None`` uses ``model.config.train``.
        checkpoint_dir: where ``last.pt`` is (over)written after every epoch; ``None`` writes nothing.
        resume_from: a checkpoint of an interrupted run of the same setup; training continues after its
            epoch with its weights, optimizer, scheduler, RNG state and history.
        on_epoch_end: called after each epoch (and its checkpoint) with the epoch record: ``epoch``
            (1-based count of completed epochs), ``loss``, ``loss/<part>``, ``lr``, ``seconds``,
            ``images_per_second``.
        loss_fn: ``features -> (total, parts)``; default ``GLCFLoss(model.config.loss)``.
        progress: show tqdm bars with the running loss.
        strategy: one process or DDP; default :func:`default_strategy` (DDP when called inside an
            initialised multi-process ``torch.distributed`` group, e.g. under ``torchrun``).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: empty dataset, no trainable parameters, an unavailable device.
        NonFiniteLossError: NaN/inf loss (naming epoch and step).
        CheckpointError: an unreadable or mismatching ``resume_from``.
    """
    cfg = cfg if cfg is not None else model.config.train
    if len(dataset) == 0:  # type: ignore[arg-type]
        msg = "fit: the training dataset is empty"
        raise ValueError(msg)
    strategy = strategy if strategy is not None else default_strategy()
    run = _setup(model, cfg, strategy, loss_fn, checkpoint_dir, progress and strategy.is_main)
    start_epoch, history = _start(run, strategy.agree(resume_from), len(dataset))  # type: ignore[arg-type]
    drop_last = len(dataset) >= cfg.batch_size  # type: ignore[arg-type]
    t_start = time.perf_counter()
    epoch_data = _training_dataset(model, dataset, cfg, run.device)
    images_total = _train_epochs(run, epoch_data, start_epoch, history, drop_last, on_epoch_end)
    fill_data = dataset if getattr(model, "memory_reads_images", False) else epoch_data
    _fill_memory(model, fill_data, cfg.batch_size, run.device, cfg.seed)
    seconds = time.perf_counter() - t_start
    return FitResult(
        history=history,
        checkpoint_path=run.ckpt_path if run.ckpt_path is not None and run.ckpt_path.exists() else None,
        epochs_run=max(0, cfg.epochs - start_epoch),
        final_epoch=max(cfg.epochs, start_epoch),
        seconds=seconds,
        images_per_second=images_total / seconds if seconds > 0 else 0.0,
    )


@dataclass
class _Run:
    """What every epoch of one :func:`fit` call uses."""

    model: nn.Module  # the unwrapped model (optimizer, checkpoints)
    cfg: TrainConfig
    config: Any  # the model's config with this training setup (stored in checkpoints)
    strategy: TrainStrategy
    device: torch.device
    amp_dtype: torch.dtype | None
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ckpt_path: Path | None
    progress: bool
    step_model: nn.Module | None = None  # what the steps call: the strategy's wrap of ``model``


def _setup(
    model: nn.Module,
    cfg: TrainConfig,
    strategy: TrainStrategy,
    loss_fn: LossFn | None,
    checkpoint_dir: str | Path | None,
    progress: bool,
) -> _Run:
    """Seed, place the model, build the optimizer and scheduler (in this order: the seeded run depends on it)."""
    device = strategy.device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    loss_fn = loss_fn if loss_fn is not None else _default_loss(model)
    config = model.config.replace(train=cfg)
    seed_everything(cfg.seed)
    model.to(device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    write = checkpoint_dir is not None and strategy.is_main
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if write else None
    return _Run(
        model, cfg, config, strategy, device, amp_dtype, loss_fn, optimizer, scheduler,
        ckpt_path, progress,
    )  # fmt: skip


def _start(run: _Run, resume_from: str | Path | None, n_images: int) -> tuple[int, list[dict[str, Any]]]:
    """The first epoch to train and the history so far (from ``resume_from``); wraps the model for the steps."""
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume_from is not None:
        start_epoch, history = _resume(resume_from, run.model, run.optimizer, run.scheduler, run.cfg)
    run.step_model = run.strategy.wrap(run.model)  # after the resume: DDP broadcasts the weights it is built with
    logger.info(
        "fit: %d images, epochs %d..%d, device %s, amp %s",
        n_images,
        start_epoch,
        run.cfg.epochs,
        run.device,
        run.amp_dtype,
    )
    return start_epoch, history


def _training_dataset(model: nn.Module, dataset: Dataset, cfg: TrainConfig, device: torch.device) -> Dataset:
    """What the epochs read (:func:`training_data`), preloaded when loader workers will read it."""
    dataset = training_data(model, dataset, cfg, device)
    if cfg.num_workers > 0 and callable(preload := getattr(dataset, "preload", None)):
        # loader workers are new processes every epoch: a cache filled inside them dies with them;
        # filled here, every worker inherits it (ImageDataset.preload is a no-op without cache)
        preload()
    return dataset


def _train_epochs(
    run: _Run,
    dataset: Dataset,
    start_epoch: int,
    history: list[dict[str, Any]],
    drop_last: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> float:
    """Epochs ``start_epoch`` to ``cfg.epochs``, each recorded in ``history`` and checkpointed; the images seen."""
    cfg, strategy = run.cfg, run.strategy
    images_total = 0.0
    with tqdm(total=cfg.epochs, initial=start_epoch, desc="train", unit="epoch", disable=not run.progress) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            loader = strategy.loader(dataset, cfg, epoch=epoch, drop_last=drop_last, device=run.device)
            record, images = _run_epoch(run, loader, epoch)
            images_total += images
            history.append(record)
            if run.ckpt_path is not None:
                save_checkpoint(
                    run.ckpt_path,
                    run.model,
                    epoch=epoch + 1,
                    optimizer=run.optimizer,
                    scheduler=run.scheduler,
                    history=history,
                    rng_state=get_rng_state(),
                    config=run.config,
                )
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{record['lr']:.1e}")
            if on_epoch_end is not None and strategy.is_main:
                on_epoch_end(dict(record))
            if strategy.is_main:
                logger.info("epoch %d/%d loss %.5g (%.1f s)", epoch + 1, cfg.epochs, record["loss"], record["seconds"])
    return images_total


def _run_epoch(run: _Run, loader: DataLoader, epoch: int) -> tuple[dict[str, Any], float]:
    """One epoch and the scheduler's step; its record and the number of images it saw."""
    t_epoch = time.perf_counter()
    lr = run.optimizer.param_groups[0]["lr"]
    stats = train_one_epoch(
        run.step_model or run.model,
        loader,
        run.optimizer,
        run.loss_fn,
        epoch=epoch,
        device=run.device,
        amp_dtype=run.amp_dtype,
        grad_clip_norm=run.cfg.grad_clip_norm,
        progress=run.progress,
    )
    stats = run.strategy.reduce(stats)
    run.scheduler.step()
    seconds = time.perf_counter() - t_epoch
    images = stats.pop("images")
    record = {"epoch": epoch + 1, **stats, "lr": lr, "seconds": seconds, "images_per_second": images / seconds}
    return record, images


def _fill_memory(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, seed: int) -> None:
    """After training: the normal memories from the training images (models without them: nothing)."""
    fill = getattr(model, "fill_memory", None)
    if not callable(fill):
        return
    was_training = model.training
    model.eval()
    loader = make_loader(dataset, batch_size, device=device)
    fill((batch_inputs(batch, device) for batch in loader), seed=seed)
    model.train(was_training)
    logger.info("normal memory filled from %d training images", len(dataset))  # type: ignore[arg-type]


def _resume(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
) -> tuple[int, list[dict[str, Any]]]:
    data = read_checkpoint(path)
    restore_weights(model, data, path)
    if data.get("optimizer") is None or data.get("scheduler") is None:
        msg = f"{path}: holds no optimizer/scheduler state; it cannot be resumed (load it with load_checkpoint)"
        raise ValueError(msg)
    optimizer.load_state_dict(data["optimizer"])
    scheduler.load_state_dict(data["scheduler"])
    if data.get("rng_state") is not None:
        set_rng_state(data["rng_state"])
    stored = data["config"].get("train", {})
    changed = {k: (stored.get(k), v) for k, v in config_to_dict(cfg).items() if stored.get(k) != v}
    if changed:
        logger.warning("resuming %s with a different train config: %s", path, changed)
    epoch = int(data["epoch"])
    logger.info("resuming from %s after epoch %d", path, epoch)
    return epoch, list(data.get("history") or [])
