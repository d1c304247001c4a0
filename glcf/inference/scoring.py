"""Anomaly maps and image scores: eq. (5)-(7) of the paper (docs/model.md, Anomaly maps).

Per scale s (feature resolution, then bilinear ``align_corners=True`` up-sampling to the input size):

* local map   d^L_s = mean_c (E_s - Psi_L(O)_s)^2
* global map  d^G_s = mean_c (Phi_G(G)_s - Psi_G(O)_s)^2   (``map_source="estimation"``, the paper), or
              d^G_s = mean_c (E_s - Phi_G(G)_s)^2          (``"correspondence"``, Fig. 11a ablation)

Every per-scale map is smoothed with the same Gaussian (``scoring.sigma`` px at 224 px, scaled with
the input size) at calibration and at test time. Then z-scores with the calibrated mu, sigma
(:mod:`glcf.model.stats`), fusion ``A = alpha * sum_s w_s z^L_s + beta * sum_s w_s z^G_s`` and the image score
(population std of ``A`` as in the paper; max or top-k mean as options). Everything is batched and
generic in the number of scales and the sizes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from glcf.config import ScoringConfig
from glcf.inference.smoothing import gaussian_blur, scaled_sigma
from glcf.model.features import GLCFFeatures
from glcf.model.stats import NormStats

__all__ = ["LAYOUT_PARTS", "AnomalyScorer", "ScoreOutput", "error_map", "image_scores", "per_scale_maps"]

#: The parts of the layout memory's scores, a column each (``scoring.layout_multiscale`` adds the second,
#: except with ``layout_match: whole``, whose one vector holds both grids).
LAYOUT_PARTS = ("layout", "layout_coarse")


class ScoreOutput(NamedTuple):
    """Scores of one batch.

    Attributes:
        anomaly_map: ``[B, S, S]`` the map of the configured mode (fused, local or global).
        image_score: ``[B]`` image score of ``anomaly_map``.
        local_map: ``[B, S, S]`` A^L = sum_s w_s z^L_s.
        global_map: ``[B, S, S]`` A^G = sum_s w_s z^G_s.
        local_score: ``[B]`` image score of ``local_map`` (the "local only" setting).
        global_score: ``[B]`` image score of ``global_map`` (the "global only" setting).
    """

    anomaly_map: Tensor
    image_score: Tensor
    local_map: Tensor
    global_map: Tensor
    local_score: Tensor
    global_score: Tensor


def error_map(a: Tensor, b: Tensor, size: int) -> Tensor:
    """Channel-mean squared error up-sampled to ``size`` (eq. 5).

    Args:
        a: ``[B, C, h, w]`` features.
        b: ``[B, C, h, w]`` features of the same shape.
        size: output side in pixels.

    Returns:
        ``[B, size, size]`` float32 map (bilinear, ``align_corners=True`` as in the authors' code).
    """
    if a.shape != b.shape or a.ndim != 4:
        msg = f"error_map: need two [B, C, h, w] tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        raise ValueError(msg)
    d = (a.float() - b.float()).pow(2).mean(dim=1, keepdim=True)  # [B, 1, h, w]
    if d.shape[-2:] != (size, size):
        d = F.interpolate(d, size=(size, size), mode="bilinear", align_corners=True)
    return d[:, 0]


def per_scale_maps(features: GLCFFeatures, image_size: int, cfg: ScoringConfig) -> dict[str, Tensor]:
    """Smoothed per-scale squared-error maps of both branches.

    Args:
        features: one forward pass; each field a list of S tensors ``[B, C_s, h_s, w_s]``.
        image_size: side of the model input; the maps are up-sampled to it.
        cfg: ``map_source`` picks the global map, ``sigma`` the smoothing.

    Returns:
        ``{"local": [B, S, H, H], "global": [B, S, H, H]}`` float32 with ``H = image_size``.
    """
    lengths = {name: len(getattr(features, name)) for name in GLCFFeatures._fields[:4]}
    if len(set(lengths.values())) != 1 or not lengths["encoder"]:
        msg = f"per_scale_maps: every feature list needs the same, non-zero number of scales, got {lengths}"
        raise ValueError(msg)
    if cfg.map_source == "estimation":
        pairs_g = zip(features.global_corr, features.global_est, strict=True)
    else:
        pairs_g = zip(features.encoder, features.global_corr, strict=True)
    local = [error_map(e, l_hat, image_size) for e, l_hat in zip(features.encoder, features.local_est, strict=True)]
    glob = [error_map(a, b, image_size) for a, b in pairs_g]
    sigma = scaled_sigma(cfg.sigma, image_size)
    maps = {
        "local": gaussian_blur(torch.stack(local, dim=1), sigma),
        "global": gaussian_blur(torch.stack(glob, dim=1), sigma),
    }
    for name, wanted, value in (
        ("memory", cfg.memory, features.patch_distance),
        ("position_memory", cfg.position_memory, features.position_distance),
        ("layout_memory", cfg.layout_memory, features.layout_distance),
    ):
        if wanted and value is None:
            msg = f"per_scale_maps: scoring.{name} is on but the model's normal memory is empty (train it first)"
            raise ValueError(msg)
    distances = {"memory": features.patch_distance, "position": features.position_distance}
    local_memories = [distances[name].float() for name in memory_parts(cfg)]
    if local_memories:  # one channel per memory map, in memory_parts order
        size = (image_size, image_size)
        d = [F.interpolate(m, size=size, mode="bilinear", align_corners=True) for m in local_memories]
        maps["memory"] = gaussian_blur(torch.cat(d, dim=1), sigma)
    if cfg.layout_memory:
        maps["layout"] = features.layout_distance.float()
    return maps


def memory_parts(cfg: ScoringConfig) -> tuple[str, ...]:
    """The local memory maps a scoring uses, in the order of the ``memory`` maps' channels."""
    return tuple(name for name, on in (("memory", cfg.memory), ("position", cfg.position_memory)) if on)


def image_scores(maps: Tensor, method: str = "std", top_k_fraction: float = 0.01) -> Tensor:
    """Image-level scores of ``[B, H, W]`` maps.

    Args:
        maps: ``[B, H, W]`` anomaly maps.
        method: ``std`` (population standard deviation over pixels, the paper), ``max`` or
            ``topk_mean`` (mean of the ``ceil(top_k_fraction * H * W)`` highest pixels, at least one).
        top_k_fraction: fraction used by ``topk_mean``.

    Returns:
        ``[B]`` scores.
    """
    flat = maps.flatten(1)
    if method == "std":
        return flat.std(dim=1, correction=0)
    if method == "max":
        return flat.amax(dim=1)
    if method == "topk_mean":
        k = max(1, min(flat.shape[1], math.ceil(top_k_fraction * flat.shape[1])))
        return flat.topk(k, dim=1).values.mean(dim=1)
    msg = f"image_scores: method must be std, max or topk_mean, got {method!r}"
    raise ValueError(msg)


class AnomalyScorer:
    """Turns :class:`GLCFFeatures` into anomaly maps and image scores with calibrated statistics.

    Args:
        cfg: scoring configuration (mode, alpha, beta, scale weights, sigma, image score, map source).
        stats: statistics calibrated with the same ``sigma``, ``map_source`` and image size.
        image_size: side of the model input in pixels.

    Raises:
        ValueError: when the statistics were made differently (size, smoothing, map source, scales).
    """

    def __init__(self, cfg: ScoringConfig, stats: NormStats, image_size: int) -> None:
        mismatches = []
        if stats.image_size != image_size:
            mismatches.append(f"image_size {stats.image_size} != {image_size}")
        if not math.isclose(stats.sigma, cfg.sigma, rel_tol=1e-9, abs_tol=1e-12):
            mismatches.append(f"sigma {stats.sigma} != scoring.sigma {cfg.sigma}")
        if stats.map_source != cfg.map_source:
            mismatches.append(f"map_source {stats.map_source!r} != scoring.map_source {cfg.map_source!r}")
        if stats.num_scales != len(cfg.scale_weights):
            mismatches.append(f"{stats.num_scales} scales != {len(cfg.scale_weights)} scoring.scale_weights")
        if len(memory_parts(cfg)) != len(stats.memory_mean):
            mismatches.append(
                f"memory maps {list(memory_parts(cfg))} != {len(stats.memory_mean)} calibrated (re-run the calibration)"
            )
        if mismatches:
            msg = "AnomalyScorer: normalisation statistics do not match the scoring setup: " + "; ".join(mismatches)
            raise ValueError(msg)
        self.cfg = cfg
        self.stats = stats
        self.image_size = image_size

    def maps(self, features: GLCFFeatures) -> dict[str, Tensor]:
        """Per-scale maps (``{"local", "global"}: [B, S, H, H]``), as used for calibration."""
        return per_scale_maps(features, self.image_size, self.cfg)

    def branch_map(self, maps: Tensor, branch: str) -> Tensor:
        """``sum_s w_s (d_s - mu_s) / sigma_s`` of one branch: ``[B, S, H, W] -> [B, H, W]`` (eq. 6)."""
        mean, std = self.stats.tensors(branch, maps.device)
        weights = torch.tensor(self.cfg.scale_weights, dtype=torch.float32, device=maps.device)
        z = (maps.float() - mean[:, None, None]) / std[:, None, None]
        return torch.einsum("bshw,s->bhw", z, weights)

    def part_maps(self, maps: dict[str, Tensor]) -> dict[str, Tensor]:
        """The z-scored parts: ``local``, ``global`` (and ``memory``) maps ``[B, H, W]``; ``layout`` (and
        ``layout_coarse``) ``[B]``, the layout memory's raw scores (standardised by the fusion)."""
        parts = {"local": self.branch_map(maps["local"], "local"), "global": self.branch_map(maps["global"], "global")}
        if "memory" in maps:  # each memory map is a part of its own
            mean, std = self.stats.tensors("memory", maps["memory"].device)
            for i, name in enumerate(memory_parts(self.cfg)):
                parts[name] = (maps["memory"][:, i].float() - mean[i]) / std[i]
        if "layout" in maps:  # one column per layout grid, finest first
            columns = maps["layout"].float().unbind(1)
            parts.update(zip(LAYOUT_PARTS[: len(columns)], columns, strict=True))
        return parts

    def part_scores(self, maps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Image score ``[B]`` of every part (what a calibrated fusion standardises)."""
        method, k = self.cfg.image_score, self.cfg.top_k_fraction
        parts = self._with_extent(self.part_maps(maps))
        return {name: p if p.ndim == 1 else image_scores(p, method, k) for name, p in parts.items()}

    def _with_extent(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """``parts`` plus ``global_extent``, the global map's own image score, when one is configured."""
        method = self.cfg.global_image_score
        if method is None or self.cfg.fusion != "calibrated":
            return parts
        return parts | {"global_extent": image_scores(parts["global"], method, self.cfg.top_k_fraction)}

    def _standardised(self, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        missing = sorted(set(parts) - set(self.stats.image))
        if missing:
            msg = f"AnomalyScorer: fusion=calibrated needs image statistics of {missing}; re-run the calibration"
            raise ValueError(msg)
        return {name: (p - self.stats.image[name][0]) / self.stats.image[name][1] for name, p in parts.items()}

    def score_maps(self, maps: dict[str, Tensor]) -> ScoreOutput:
        """Fuse precomputed per-scale maps (eq. 6-7, or the calibrated fusion) and score them."""
        method, k = self.cfg.image_score, self.cfg.top_k_fraction
        parts = self.part_maps(maps)
        if self.cfg.fusion == "calibrated":
            parts = self._standardised(self._with_extent(parts))
            local = parts["local"]
            for name in memory_parts(self.cfg):
                local = torch.maximum(local, parts[name])
            glob = parts["global"]
            fused = torch.maximum(local, glob)
        else:
            local, glob = parts["local"], parts["global"]
            fused = self.cfg.alpha * local + self.cfg.beta * glob
        local_score = image_scores(local, method, k)
        global_score = parts.get("global_extent", image_scores(glob, method, k))
        for name in LAYOUT_PARTS:  # image-level parts of the global branch
            if name in parts:
                global_score = torch.maximum(global_score, parts[name])
        if self.cfg.mode == "local":
            fused, score = local, local_score
        elif self.cfg.mode == "global":
            fused, score = glob, global_score
        elif "global_extent" in parts:  # the global map counts through its own image score only
            score = torch.maximum(local_score, global_score)
        else:
            score = image_scores(fused, method, k)
            if self.cfg.fusion == "calibrated":
                score = torch.maximum(score, global_score)
        return ScoreOutput(fused, score, local, glob, local_score, global_score)

    def __call__(self, features: GLCFFeatures) -> ScoreOutput:
        """Maps and scores of one batch of features."""
        return self.score_maps(self.maps(features))
