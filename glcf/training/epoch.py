"""One training epoch: a pass over the loader with a zeroed gradient, fp32 loss and a finite-loss check per step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from glcf.model.features import GLCFFeatures
from glcf.runtime import autocast
from glcf.training.feature_cache import batch_inputs

__all__ = ["LossFn", "NonFiniteLossError", "train_one_epoch"]

LossFn = Callable[[GLCFFeatures], tuple[Tensor, dict[str, Tensor]]]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; names the epoch and step (the last checkpoint stays valid).

    Attributes:
        epoch: 0-based epoch index (the checkpoint on disk holds ``epoch`` completed epochs).
        step: 0-based step within the epoch.
        value: the loss value.
        parts: the loss terms at that step.
    """

    def __init__(self, epoch: int, step: int, value: float, parts: dict[str, float] | None = None) -> None:
        self.epoch, self.step, self.value, self.parts = epoch, step, value, dict(parts or {})
        detail = ", ".join(f"{k}={v:.4g}" for k, v in self.parts.items())
        super().__init__(
            f"non-finite training loss {value} at epoch index {epoch}, step index {step} (0-based)"
            + (f" ({detail})" if detail else "")
        )


def _float_features(features: GLCFFeatures) -> GLCFFeatures:
    return GLCFFeatures(*[[t.float() for t in taps] for taps in features.scales])


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    epoch: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    grad_clip_norm: float = 0.0,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean total loss and parts (``loss``, ``loss/<part>``) and ``images``.

    Raises:
        NonFiniteLossError: on a NaN/inf loss, before the weights are touched.
    """
    model.train()
    sums: dict[str, float] = {}
    images_seen = 0
    # one iterator per epoch: tqdm.auto's class calls iter() on an iterable itself, which would draw the
    # shuffle generator (and start loader workers) once more and change the epoch's order
    batches = iter(loader)
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(batches, total=total, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
    for step, batch in enumerate(bar):
        inputs = batch_inputs(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
            features = model(inputs)
        total, parts = loss_fn(_float_features(features))  # loss in fp32 even under bf16 autocast
        value = float(total.detach())
        part_values = {k: float(v.detach()) for k, v in parts.items()}
        if not math.isfinite(value):
            raise NonFiniteLossError(epoch, step, value, part_values)
        total.backward()
        if grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip_norm)
        optimizer.step()
        n = features.encoder[0].shape[0]
        images_seen += n
        for k, v in {"loss": value, **{f"loss/{k}": v for k, v in part_values.items()}}.items():
            sums[k] = sums.get(k, 0.0) + v * n
        bar.set_postfix(loss=f"{value:.4g}")
    if images_seen == 0:
        msg = f"epoch {epoch}: the data loader yielded no batch"
        raise RuntimeError(msg)
    return {**{k: v / images_seen for k, v in sums.items()}, "images": float(images_seen)}
