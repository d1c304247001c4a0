"""Calibration of the normalisation statistics and batched prediction (paper eq. (6)-(7); docs/model.md).

``calibrate`` runs the model over held-out normal images (which images is the data layer's choice) and
returns :class:`~glcf.stats.NormStats`; ``iter_predictions`` / ``predict`` score a dataset with an
:class:`~glcf.scoring.AnomalyScorer`. Both run the model in eval mode under ``torch.inference_mode``
and restore its previous mode afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from glcf.config import GLCFConfig, ScoringConfig
from glcf.runtime import autocast, images_from_batch, make_loader, resolve_amp, resolve_device
from glcf.scoring import AnomalyScorer, per_scale_maps
from glcf.stats import NormStats, NormStatsAccumulator

__all__ = ["PredictionBatch", "PredictionResult", "calibrate", "calibrate_scored", "iter_predictions", "predict"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _batch_field(batch: Any, key: str) -> np.ndarray | None:
    if isinstance(batch, Mapping) and key in batch and isinstance(batch[key], torch.Tensor):
        return batch[key].cpu().numpy()
    return None


def _scoring_config(model: nn.Module, cfg: GLCFConfig | ScoringConfig | None) -> ScoringConfig:
    if cfg is None:
        return model.config.scoring
    return cfg.scoring if isinstance(cfg, GLCFConfig) else cfg


def calibrate(
    model: nn.Module,
    dataset: Dataset,
    cfg: GLCFConfig | ScoringConfig | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    num_workers: int = 0,
    amp: str = "off",
) -> NormStats:
    """mu, sigma per branch and scale on held-out normal images (docs/model.md, Normalisation statistics).

    Args:
        model: a GLCF model (``model(x) -> GLCFFeatures``, ``model.config``); moved to ``device``.
        dataset: normal images, items ``[3, S, S]`` tensors or dicts with ``image``.
        cfg: scoring setup (``GLCFConfig`` or ``ScoringConfig``); ``None`` uses ``model.config.scoring``.
        batch_size: images per forward pass (results do not depend on it).
        device: ``auto``, ``cpu``, ``cuda``...
        progress: show a tqdm bar.
        num_workers: data-loader workers.
        amp: ``off`` (fp32, default), ``bf16`` or ``auto`` for the forward pass; maps are fp32.

    Returns:
        The statistics, recording image size, sigma and map source.

    Raises:
        ValueError: empty dataset, or a statistic that is not finite / a zero std.
    """
    return _calibrate(
        model, dataset, cfg, batch_size, device, progress, num_workers=num_workers, amp=amp, keep_maps=False
    )[0]


def calibrate_scored(
    model: nn.Module,
    dataset: Dataset,
    cfg: GLCFConfig | ScoringConfig | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    num_workers: int = 0,
    amp: str = "off",
) -> tuple[NormStats, np.ndarray]:
    """:func:`calibrate` and the image scores of the same images under the new statistics, in one pass.

    The per-scale maps of the held-out images are kept until the statistics are known
    (``2 * 3 * S * S`` floats per image), so the model runs once. With the fixed fusion the scores
    equal ``predict(model, dataset, AnomalyScorer(cfg, stats, S)).image_scores``. With the calibrated
    fusion each image is scored with its parts standardised by the *other* images' statistics
    (leave-one-out), as a new image is: scored in-sample, the very images that set each part's scale
    look more normal than new normal images, and a threshold on them flags too many of those.
    Arguments as in :func:`calibrate`; use the scores to calibrate a decision threshold.
    """
    scoring = _scoring_config(model, cfg)
    stats, kept = _calibrate(
        model, dataset, cfg, batch_size, device, progress, num_workers=num_workers, amp=amp, keep_maps=True
    )
    size = model.config.image_size
    with torch.inference_mode():
        if scoring.fusion == "calibrated" and stats.num_images > 2:
            scores = _leave_one_out_scores(stats, kept, scoring, size)
        else:
            scorer = AnomalyScorer(scoring, stats, size)
            scores = [scorer.score_maps(maps).image_score.float().cpu().numpy() for maps in kept]
    return stats, np.concatenate(scores)


def _leave_one_out_scores(
    stats: NormStats, kept: list[dict[str, torch.Tensor]], scoring: ScoringConfig, image_size: int
) -> list[np.ndarray]:
    """Every kept image's score with the parts' image statistics of the other images."""
    parts = AnomalyScorer(scoring, stats, image_size)
    values = {
        name: torch.cat([v.double().cpu() for v in column])
        for name, column in _columns([parts.part_scores(maps) for maps in kept]).items()
    }
    i, out = 0, []
    for maps in kept:
        for j in range(len(next(iter(maps.values())))):
            image = {name: _mean_std(torch.cat([v[:i], v[i + 1 :]])) for name, v in values.items()}
            scorer = AnomalyScorer(scoring, dataclasses.replace(stats, image=image), image_size)
            one = {name: m[j : j + 1] for name, m in maps.items()}
            out.append(scorer.score_maps(one).image_score.float().cpu().numpy())
            i += 1
    return out


def _columns(rows: list[dict[str, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    return {name: [row[name] for row in rows] for name in rows[0]}


def _mean_std(values: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of image scores (the std floored, so a constant part stays finite)."""
    mean = float(values.mean())
    std = float(values.std(correction=0)) if len(values) > 1 else 0.0
    return mean, max(std, 1e-6 * max(1.0, abs(mean)))


def _calibrate(
    model: nn.Module,
    dataset: Dataset,
    cfg: GLCFConfig | ScoringConfig | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    num_workers: int = 0,
    amp: str = "off",
    keep_maps: bool = False,
) -> tuple[NormStats, list[dict[str, torch.Tensor]]]:
    """:func:`calibrate`; with ``keep_maps`` also the per-scale maps of every batch (on the device)."""
    scoring = _scoring_config(model, cfg)
    if len(dataset) == 0:  # type: ignore[arg-type]
        msg = "calibrate: the calibration dataset is empty"
        raise ValueError(msg)
    dev = resolve_device(device)
    dtype = resolve_amp(amp, dev)
    image_size = model.config.image_size
    acc = NormStatsAccumulator(scoring)
    kept: list[dict[str, torch.Tensor]] = []
    loader = make_loader(dataset, batch_size, num_workers=num_workers, device=dev)
    model.to(dev)
    with _eval_mode(model), torch.inference_mode():
        for batch in tqdm(loader, desc="calibrate", unit="batch", disable=not progress, leave=False):
            images = images_from_batch(batch).to(dev, non_blocking=True)
            with autocast(dev, dtype):
                features = model(images)
            maps = per_scale_maps(features, image_size, scoring)
            acc.update(maps)
            if keep_maps or scoring.fusion == "calibrated":
                kept.append(maps)
    stats = acc.result()
    if scoring.fusion == "calibrated":
        stats = with_image_stats(stats, kept, scoring, image_size)
    logger.info("calibrated on %d images: %s", stats.num_images, stats.to_dict())
    return stats, kept


def with_image_stats(
    stats: NormStats, kept: list[dict[str, torch.Tensor]], scoring: ScoringConfig, image_size: int
) -> NormStats:
    """``stats`` plus mean and std of every part's image scores on the same normal images (calibrated fusion)."""
    scorer = AnomalyScorer(scoring, stats, image_size)
    with torch.inference_mode():
        per_batch = [scorer.part_scores(maps) for maps in kept]
    image = {
        part: _mean_std(torch.cat([v.double().cpu() for v in column])) for part, column in _columns(per_batch).items()
    }
    return dataclasses.replace(stats, image=image)


@dataclass
class PredictionBatch:
    """Scores of one batch as float32 numpy arrays.

    Attributes:
        image_scores: ``[B]`` scores of the configured mode.
        local_scores: ``[B]`` scores of the local branch alone.
        global_scores: ``[B]`` scores of the global branch alone.
        anomaly_maps: ``[B, S, S]`` maps of the configured mode at the model input size.
        labels: ``[B]`` the items' ``label`` when the dataset gives one, else None.
        indices: ``[B]`` the items' ``index`` when the dataset gives one, else None.
    """

    image_scores: np.ndarray
    local_scores: np.ndarray
    global_scores: np.ndarray
    anomaly_maps: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray | None


@dataclass
class PredictionResult:
    """Scores of a whole dataset (float32); ``anomaly_maps`` only with ``keep_maps=True``."""

    image_scores: np.ndarray
    local_scores: np.ndarray
    global_scores: np.ndarray
    anomaly_maps: np.ndarray | None
    labels: np.ndarray | None
    indices: np.ndarray | None


def iter_predictions(
    model: nn.Module,
    dataset: Dataset,
    scorer: AnomalyScorer,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    num_workers: int = 0,
    amp: str = "off",
) -> Iterator[PredictionBatch]:
    """Score ``dataset`` batch by batch (in order), yielding :class:`PredictionBatch` es.

    Holds one batch of maps at a time: consume the maps (metrics, resizing, plots) as they come.
    Arguments as in :func:`calibrate`.
    """
    dev = resolve_device(device)
    dtype = resolve_amp(amp, dev)
    loader = make_loader(dataset, batch_size, num_workers=num_workers, device=dev)
    model.to(dev)
    with _eval_mode(model):
        for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
            with torch.inference_mode():
                images = images_from_batch(batch).to(dev, non_blocking=True)
                with autocast(dev, dtype):
                    features = model(images)
                out = scorer(features)
            yield PredictionBatch(
                image_scores=out.image_score.float().cpu().numpy(),
                local_scores=out.local_score.float().cpu().numpy(),
                global_scores=out.global_score.float().cpu().numpy(),
                anomaly_maps=out.anomaly_map.float().cpu().numpy(),
                labels=_batch_field(batch, "label"),
                indices=_batch_field(batch, "index"),
            )


def predict(
    model: nn.Module,
    dataset: Dataset,
    scorer: AnomalyScorer,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    keep_maps: bool = False,
    num_workers: int = 0,
    amp: str = "off",
) -> PredictionResult:
    """Score a whole dataset; maps are kept (``[N, S, S]`` float32) only with ``keep_maps=True``.

    Arguments as in :func:`calibrate`. For large sets with maps, prefer :func:`iter_predictions`.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("image", "local", "global", "maps", "labels", "indices")}
    for pb in iter_predictions(model, dataset, scorer, batch_size, device, progress, num_workers=num_workers, amp=amp):
        parts["image"].append(pb.image_scores)
        parts["local"].append(pb.local_scores)
        parts["global"].append(pb.global_scores)
        if keep_maps:
            parts["maps"].append(pb.anomaly_maps)
        if pb.labels is not None:
            parts["labels"].append(pb.labels)
        if pb.indices is not None:
            parts["indices"].append(pb.indices)

    def cat(key: str, empty_shape: tuple[int, ...] = (0,)) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros(empty_shape, np.float32)

    size = scorer.image_size
    return PredictionResult(
        image_scores=cat("image"),
        local_scores=cat("local"),
        global_scores=cat("global"),
        anomaly_maps=cat("maps", (0, size, size)) if keep_maps else None,
        labels=np.concatenate(parts["labels"]) if parts["labels"] else None,
        indices=np.concatenate(parts["indices"]) if parts["indices"] else None,
    )
