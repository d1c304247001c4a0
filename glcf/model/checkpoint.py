"""Self-describing checkpoints: trainable weights + resolved config + versions (+ resume state), and a full export.

Training checkpoints hold only the trainable weights (the frozen encoder comes back from
``cfg.encoder.weights`` when the model is rebuilt with :func:`glcf.model.build_glcf`; only a random-init
encoder, ``weights="none"``, which no source can rebuild, is stored as well), the resolved
config, library versions and, for resume, optimizer / scheduler / RNG state. Loading is strict: every
trainable key must match (the authors' code loaded non-strictly; docs/model.md, Fixes). A full export holds every
weight (encoder included), the normalisation statistics and the threshold, so a served model needs no
network. Files are written atomically (temporary file + ``os.replace``) and read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from glcf.config import GLCFConfig, config_from_dict, config_to_dict
from glcf.model.stats import NormStats

__all__ = [
    "CheckpointError",
    "FullModel",
    "LoadedCheckpoint",
    "export_full_model",
    "frozen_state_dict",
    "library_versions",
    "load_checkpoint",
    "load_full_model",
    "load_model_file",
    "load_trainable_state",
    "read_checkpoint",
    "restore_weights",
    "save_checkpoint",
    "trainable_state_dict",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "glcf.checkpoint"  # a file format marker stored in every checkpoint: never renamed
FULL_MODEL_FORMAT = "glcf.full-model"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, is not a GLCF file, or does not match the model."""


def library_versions() -> dict[str, str]:
    """Versions of glcf, torch, timm and Python, recorded in every checkpoint."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "glcf": version("glcf"),
        "torch": str(torch.__version__),
        "timm": version("timm"),
        "python": platform.python_version(),
    }


def _frozen_prefixes(model: nn.Module) -> list[str]:
    """Prefixes (``"encoder."``) of the top-most sub-modules that own parameters but no trainable one."""
    trainable = {id(p) for p in model.trainable_parameters()}
    prefixes: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p) for p in prefixes):
            continue
        params = list(module.parameters())
        if params and not any(id(p) in trainable for p in params):
            prefixes.append(f"{name}.")
    return prefixes


def trainable_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state without the frozen sub-modules (the encoder): trainable weights and their buffers."""
    prefixes = _frozen_prefixes(model)
    state = {k: v.detach() for k, v in model.state_dict().items() if not any(k.startswith(p) for p in prefixes)}
    names = {id(p): n for n, p in model.named_parameters()}
    lost = [names.get(id(p), "?") for p in model.trainable_parameters() if names.get(id(p)) not in state]
    if lost:
        msg = f"trainable_state_dict: trainable parameters under a frozen module: {lost[:5]}"
        raise RuntimeError(msg)
    return state


def frozen_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The complement of :func:`trainable_state_dict`: the frozen sub-modules' state (the encoder)."""
    keep = set(trainable_state_dict(model))
    return {k: v.detach() for k, v in model.state_dict().items() if k not in keep}


def _load_frozen_state(model: nn.Module, state: Mapping[str, Tensor], source: str | Path) -> None:
    _load_exact_keys(model, state, set(frozen_state_dict(model)), "stored encoder weights", source)


def load_trainable_state(model: nn.Module, state: Mapping[str, Tensor], source: str | Path = "<state>") -> None:
    """Load trainable weights strictly: every key of :func:`trainable_state_dict` and nothing else.

    Raises:
        CheckpointError: naming ``source`` and the missing / unexpected keys or the shape mismatch.
    """
    _load_exact_keys(model, state, set(trainable_state_dict(model)), "trainable weights", source)


def _load_exact_keys(
    model: nn.Module, state: Mapping[str, Tensor], expected: set[str], what: str, source: str | Path
) -> None:
    """Load ``state`` into ``model`` when its keys are exactly ``expected`` (one part of the model)."""
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        msg = (
            f"{source}: {what} do not match the model ({len(missing)} missing: {missing[:8]}; "
            f"{len(unexpected)} unexpected: {unexpected[:8]})"
        )
        raise CheckpointError(msg)
    try:
        model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:
        msg = f"{source}: {what} do not fit the model: {exc}"
        raise CheckpointError(msg) from exc


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)  # atomic on POSIX and Windows (same folder)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: str | Path, expected_format: str | tuple[str, ...]) -> dict[str, Any]:
    """The validated dict of a GLCF file whose ``format`` is ``expected_format`` (or one of several), on the CPU."""
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: checkpoint file not found"
        raise CheckpointError(msg)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, pickle/zip/EOF errors for damaged files
        detail = " ".join(str(exc).split())[:300]
        msg = (
            f"{path}: not a readable GLCF file (truncated, corrupt or not a torch file): {type(exc).__name__}: {detail}"
        )
        raise CheckpointError(msg) from exc
    if not isinstance(data, dict) or data.get("format") not in formats:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        msg = f"{path}: not a {' or '.join(formats)} file (format: {found!r})"
        raise CheckpointError(msg)
    if data.get("format_version") != FORMAT_VERSION:
        msg = f"{path}: unsupported {data['format']} version {data.get('format_version')!r} (expected {FORMAT_VERSION})"
        raise CheckpointError(msg)
    return data


def _config(data: Mapping[str, Any], path: str | Path) -> GLCFConfig:
    try:
        return config_from_dict(data["config"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path}: invalid stored config: {exc}"
        raise CheckpointError(msg) from exc


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    rng_state: Mapping[str, Any] | None = None,
    config: GLCFConfig | None = None,
) -> Path:
    """Write a training checkpoint atomically (a kill mid-save leaves the previous file intact).

    Args:
        path: target file (``.pt``); parent folders are created.
        model: the GLCF model; only :func:`trainable_state_dict` is stored, plus the encoder's weights when
            it was built with ``encoder.weights="none"`` (random init cannot be rebuilt from a source).
        epoch: completed epochs.
        optimizer: its state, for resume.
        scheduler: its state, for resume.
        history: per-epoch records.
        extra: any ``torch.load(weights_only=True)``-safe values (numbers, strings, lists, dicts, tensors).
        rng_state: :func:`glcf.runtime.get_rng_state` output, for exact resume.
        config: the resolved config to record (default ``model.config``).

    Returns:
        The path written.
    """
    path = Path(path)
    random_encoder = model.config.encoder.weights == "none"
    obj = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(config if config is not None else model.config),
        "versions": library_versions(),
        "epoch": int(epoch),
        "state_dict": {k: v.cpu() for k, v in trainable_state_dict(model).items()},
        # a random-init encoder (weights "none") cannot be rebuilt from a source: keep it
        "frozen_state_dict": {k: v.cpu() for k, v in frozen_state_dict(model).items()} if random_encoder else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_state": dict(rng_state) if rng_state is not None else None,
        "history": list(history) if history is not None else [],
        "extra": dict(extra) if extra is not None else {},
    }
    _atomic_save(obj, path)
    logger.debug("saved checkpoint %s (epoch %d)", path, epoch)
    return path


def restore_weights(model: nn.Module, data: Mapping[str, Any], source: str | Path = "<checkpoint>") -> None:
    """Load a :func:`read_checkpoint` dict's weights into ``model``: trainable (strict) and stored encoder weights."""
    load_trainable_state(model, data["state_dict"], source)
    if data.get("frozen_state_dict") is not None:
        _load_frozen_state(model, data["frozen_state_dict"], source)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (validated format, tensors on the CPU), without building a model."""
    return _read(path, CHECKPOINT_FORMAT)


@dataclass
class LoadedCheckpoint:
    """A rebuilt model and what the checkpoint records about it (resume state: :func:`read_checkpoint`).

    Attributes:
        model: the rebuilt model with the trainable weights loaded (in eval mode, on the CPU).
        config: the stored config.
        epoch: completed epochs.
        path: the file read.
        versions: library versions at save time.
        history: per-epoch records.
        extra: caller-defined values.
    """

    model: nn.Module
    config: GLCFConfig
    epoch: int
    path: Path
    versions: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Rebuild the model from a checkpoint with :func:`glcf.model.build_glcf` and load its weights strictly.

    The encoder comes from the stored ``encoder.weights`` source (or from the file for a random-init
    encoder); the model is on the CPU.

    Raises:
        CheckpointError: unreadable/foreign file, invalid config, or trainable keys that do not match.
    """
    return _checkpoint_from(read_checkpoint(path), path)


def _checkpoint_from(data: dict[str, Any], path: str | Path) -> LoadedCheckpoint:
    from glcf.model import build_glcf

    cfg = _config(data, path)
    model = build_glcf(cfg)
    restore_weights(model, data, path)
    model.eval()
    return LoadedCheckpoint(
        model=model,
        config=cfg,
        epoch=int(data["epoch"]),
        path=Path(path),
        versions=dict(data.get("versions") or {}),
        history=list(data.get("history") or []),
        extra=dict(data.get("extra") or {}),
    )


# --------------------------------------------------------------------------------------------
# full export for serving (encoder included, no network needed)


@dataclass
class FullModel:
    """A model with every weight, its statistics and threshold, as the served pyfunc needs it."""

    model: nn.Module
    config: GLCFConfig
    stats: NormStats | None
    threshold: float | None
    versions: dict[str, str]
    extra: dict[str, Any]


def export_full_model(
    path: str | Path,
    model: nn.Module,
    stats: NormStats | None,
    threshold: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write every weight (encoder included), the config, statistics and threshold atomically."""
    path = Path(path)
    obj = {
        "format": FULL_MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(model.config),
        "versions": library_versions(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "norm_stats": stats.to_dict() if stats is not None else None,
        "threshold": float(threshold) if threshold is not None else None,
        "extra": dict(extra) if extra is not None else {},
    }
    _atomic_save(obj, path)
    return path


def load_full_model(path: str | Path) -> FullModel:
    """Rebuild a model from :func:`export_full_model` output without fetching any weights (strict load, CPU)."""
    return _full_model_from(_read(path, FULL_MODEL_FORMAT), path)


def load_model_file(path: str | Path) -> LoadedCheckpoint | FullModel:
    """A training checkpoint (:func:`load_checkpoint`) or a full export (:func:`load_full_model`), read once."""
    data = _read(path, (CHECKPOINT_FORMAT, FULL_MODEL_FORMAT))
    return _checkpoint_from(data, path) if data["format"] == CHECKPOINT_FORMAT else _full_model_from(data, path)


def _full_model_from(data: dict[str, Any], path: str | Path) -> FullModel:
    from glcf.model import build_glcf

    cfg = _config(data, path)
    model = build_glcf(cfg.replace(encoder={"weights": "none"}))
    _load_exact_keys(model, data["state_dict"], set(model.state_dict()), "weights", path)
    model.eval()
    try:
        stats = NormStats.from_dict(data["norm_stats"]) if data.get("norm_stats") is not None else None
    except ValueError as exc:
        msg = f"{path}: invalid normalisation statistics: {exc}"
        raise CheckpointError(msg) from exc
    return FullModel(
        model=model,
        config=cfg,
        stats=stats,
        threshold=data.get("threshold"),
        versions=dict(data.get("versions") or {}),
        extra=dict(data.get("extra") or {}),
    )
