"""Device, precision, seeding and data-loader helpers shared by training and inference (docs/model.md, Training)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = [
    "autocast",
    "get_rng_state",
    "images_from_batch",
    "make_loader",
    "resolve_amp",
    "resolve_device",
    "seed_everything",
    "seed_worker",
    "set_rng_state",
    "set_torch_threads",
    "torch_threads",
]

#: torch's own intra-op thread count at start-up (``OMP_NUM_THREADS``, else the cores it sees).
_STARTUP_THREADS = torch.get_num_threads()


def torch_threads(threads: int | None = None, *, share: int = 1) -> int:
    """The intra-op thread count to use: ``threads``, else torch's start-up count split ``share`` ways.

    Args:
        threads: an explicit count (a setting), or None for the default.
        share: processes or threads that run torch side by side on this machine's cores (Prefect
            categories in parallel, server workers); each gets its part, at least one thread.
    """
    if threads is None:
        return max(1, _STARTUP_THREADS // max(1, share))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        msg = f"threads must be a positive integer, got {threads!r}"
        raise ValueError(msg)
    return threads


def set_torch_threads(threads: int | None = None, *, share: int = 1) -> int:
    """Set torch's intra-op threads (:func:`torch_threads`) for this thread and the threads it starts."""
    count = torch_threads(threads, share=share)
    torch.set_num_threads(count)
    return count


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {device!r} was asked for but CUDA is not available (use 'auto' or 'cpu')"
        raise ValueError(msg)
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``amp`` (``auto``: bf16 on CUDA, fp32 elsewhere; ``bf16``; ``off``)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("auto", "bf16"):
        return torch.bfloat16
    msg = f"amp must be auto, bf16 or off, got {amp!r}"
    raise ValueError(msg)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def images_from_batch(batch: Any) -> Tensor:
    """The image tensor ``[B, 3, H, W]`` of a collated batch: a tensor, a dict with ``image``, or a tuple."""
    if isinstance(batch, Tensor):
        images = batch
    elif isinstance(batch, Mapping):
        if "image" not in batch:
            msg = f"dataset items are dicts without an 'image' key (keys: {sorted(batch)})"
            raise KeyError(msg)
        images = batch["image"]
    elif isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        images = batch[0]
    else:
        msg = f"dataset items must be image tensors [3, H, W] or dicts with 'image', got {type(batch).__name__}"
        raise TypeError(msg)
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        msg = f"expected a batch of images [B, 3, H, W], got {shape}"
        raise ValueError(msg)
    return images


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the legacy global state that third-party code uses
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python and NumPy from the per-worker torch seed (set by the loader generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - same, per worker


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    """A reproducible ``DataLoader``: seeded shuffle generator, seeded workers, pinned memory on CUDA.

    Args:
        dataset: map-style dataset of tensors ``[3, H, W]`` or dicts with ``image``.
        batch_size: images per batch.
        shuffle: shuffle with a generator seeded by ``seed`` (ignored when ``sampler`` is given).
        seed: seed of the shuffle generator and of the worker seeds.
        num_workers: loader worker processes.
        drop_last: drop the last incomplete batch.
        sampler: e.g. a ``DistributedSampler`` for multi-process training.
        device: target device (pins memory for CUDA).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=False,
    )


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as plain types/tensors (``weights_only``-loadable)."""
    np_state = np.random.get_state(legacy=True)  # noqa: NPY002 - the legacy global state is what we seed
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states captured by :func:`get_rng_state` (CUDA states only where CUDA is present)."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    nps = state["numpy"]
    keys = nps["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, nps["pos"], nps["has_gauss"], nps["cached_gaussian"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
