"""Normalisation statistics mu, sigma of eq. (6): one scalar pair per branch and scale (docs/model.md).

Definition kept from the authors' ``fuse_weight.py`` (docs/model.md, Fixes): on held-out normal images, for
each (branch, scale) map, mu = mean over images of the per-image spatial mean, sigma = mean over
images of the per-image spatial *population* standard deviation. The maps are the smoothed,
up-sampled per-scale maps of :func:`glcf.inference.scoring.per_scale_maps`, so calibration and test see the
same smoothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from glcf.config import ScoringConfig

__all__ = ["BRANCHES", "PARTS", "NormStats", "NormStatsAccumulator", "compute_norm_stats"]


BRANCHES = ("local", "global")
_KEYS = ("local", "global", "num_images", "image_size", "sigma", "map_source")
_OPTIONAL = ("memory", "image")
#: Per-pixel maps with mu and sigma: the two branches and the local memories' maps (one channel each).
MAP_BRANCHES = (*BRANCHES, "memory")
#: Parts whose image scores a calibrated fusion standardises (``NormStats.image``).
PARTS = ("local", "global", "memory", "position", "layout", "layout_coarse", "global_extent")


def _fail(field: str, message: str) -> None:
    msg = f"NormStats.{field}: {message}"
    raise ValueError(msg)


@dataclass(frozen=True)
class NormStats:
    """mu and sigma of every per-scale map, plus how the maps were made (to refuse a mismatch).

    Attributes:
        local_mean: mu^L_s for scales 1..S.
        local_std: sigma^L_s (strictly positive).
        global_mean: mu^G_s.
        global_std: sigma^G_s (strictly positive).
        num_images: number of normal images the statistics come from.
        image_size: side of the maps in pixels (the model input size).
        sigma: ``scoring.sigma`` used for smoothing (pixels at 224 px; 0 = none).
        map_source: ``scoring.map_source`` of the global maps.
        memory_mean: mu of each local memory's map (patch, position: as many as are on).
        memory_std: sigma of each local memory's map.
        image: ``{part: (mean, std)}`` of the parts' image scores on the normal held-out images, for
            a calibrated fusion (empty for the fixed one).
    """

    local_mean: tuple[float, ...]
    local_std: tuple[float, ...]
    global_mean: tuple[float, ...]
    global_std: tuple[float, ...]
    num_images: int
    image_size: int
    sigma: float
    map_source: str
    memory_mean: tuple[float, ...] = ()
    memory_std: tuple[float, ...] = ()
    image: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.local_mean)
        if n < 1:
            _fail("local_mean", "needs at least one scale")
        for name in ("local_mean", "local_std", "global_mean", "global_std"):
            values = getattr(self, name)
            if len(values) != n:
                _fail(name, f"has {len(values)} scales, local_mean has {n}")
            for i, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    _fail(f"{name}[{i}]", f"must be a finite number, got {v!r}")
                if name.endswith("_std") and v <= 0:
                    _fail(f"{name}[{i}]", f"must be > 0 (a constant map cannot be z-scored), got {v!r}")
        if isinstance(self.num_images, bool) or not isinstance(self.num_images, int) or self.num_images < 1:
            _fail("num_images", f"must be a positive integer, got {self.num_images!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            _fail("image_size", f"must be a positive integer, got {self.image_size!r}")
        if not isinstance(self.sigma, int | float) or not math.isfinite(self.sigma) or self.sigma < 0:
            _fail("sigma", f"must be a non-negative number, got {self.sigma!r}")
        if self.map_source not in ("estimation", "correspondence"):
            _fail("map_source", f"must be estimation or correspondence, got {self.map_source!r}")
        if len(self.memory_mean) != len(self.memory_std) or len(self.memory_mean) > 2:
            _fail("memory_mean", f"needs up to two means and as many stds, got {self.memory_mean}, {self.memory_std}")
        for i, v in enumerate(self.memory_std):
            if not (math.isfinite(v) and v > 0):
                _fail(f"memory_std[{i}]", f"must be a finite number > 0, got {v!r}")
        for part, pair in self.image.items():
            if part not in PARTS or len(pair) != 2 or not all(math.isfinite(float(v)) for v in pair) or pair[1] <= 0:
                _fail(f"image.{part}", f"must be a part of {PARTS} with a finite mean and a std > 0, got {pair!r}")

    @property
    def num_scales(self) -> int:
        return len(self.local_mean)

    def tensors(self, branch: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(mean [S], std [S])`` float32 tensors of ``branch`` (``local``, ``global`` or ``memory``)."""
        if branch not in MAP_BRANCHES or (branch == "memory" and not self.memory_mean):
            msg = f"NormStats.tensors: branch must be local, global or a calibrated memory, got {branch!r}"
            raise ValueError(msg)
        mean = torch.tensor(getattr(self, f"{branch}_mean"), dtype=torch.float32, device=device)
        std = torch.tensor(getattr(self, f"{branch}_std"), dtype=torch.float32, device=device)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"local": {"mean": [...], "std": [...]}, "global": {...}, ...}``."""
        out: dict[str, Any] = {
            "local": {"mean": list(self.local_mean), "std": list(self.local_std)},
            "global": {"mean": list(self.global_mean), "std": list(self.global_std)},
            "num_images": self.num_images,
            "image_size": self.image_size,
            "sigma": self.sigma,
            "map_source": self.map_source,
        }
        if self.memory_mean:
            out["memory"] = {"mean": list(self.memory_mean), "std": list(self.memory_std)}
        if self.image:
            out["image"] = {k: list(v) for k, v in self.image.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict`; unknown or missing keys and invalid values raise ``ValueError``."""
        if not isinstance(data, Mapping):
            msg = f"NormStats.from_dict: expected a mapping, got {type(data).__name__}"
            raise ValueError(msg)
        unknown = sorted(set(data) - set(_KEYS) - set(_OPTIONAL))
        missing = [k for k in _KEYS if k not in data]
        if unknown:
            _fail(unknown[0], f"unknown key (known: {', '.join(_KEYS)})")
        if missing:
            _fail(missing[0], "missing")
        values: dict[str, Any] = {}
        for branch in MAP_BRANCHES:
            if branch not in data:
                continue
            part = data[branch]
            if not isinstance(part, Mapping) or set(part) != {"mean", "std"}:
                _fail(branch, f"must be a mapping with exactly 'mean' and 'std', got {part!r}")
            for key in ("mean", "std"):
                seq = part[key]
                if not isinstance(seq, list | tuple):
                    _fail(f"{branch}.{key}", f"must be a list of numbers, got {seq!r}")
                values[f"{branch}_{key}"] = tuple(seq)
        return cls(
            **values,
            num_images=data["num_images"],
            image_size=data["image_size"],
            sigma=data["sigma"],
            map_source=data["map_source"],
            image={k: tuple(v) for k, v in dict(data.get("image", {})).items()},
        )


class NormStatsAccumulator:
    """Streaming accumulation of :class:`NormStats` over batches of per-scale maps (float64 sums)."""

    def __init__(self, cfg: ScoringConfig) -> None:
        self.cfg = cfg
        self.count = 0
        self.image_size: int | None = None
        self._sums: dict[str, Tensor] = {}

    def update(self, maps: Mapping[str, Tensor]) -> None:
        """Add a batch: ``maps[branch]`` is ``[B, S, H, W]`` for both branches (``per_scale_maps`` output)."""
        shapes = {b: tuple(maps[b].shape) for b in BRANCHES if b in maps}
        if set(shapes) != set(BRANCHES) or len(set(shapes.values())) != 1 or len(shapes["local"]) != 4:
            msg = f"NormStatsAccumulator.update: need 'local' and 'global' maps of one shape [B, S, H, W], got {shapes}"
            raise ValueError(msg)
        b, _, h, w = shapes["local"]
        if h != w:
            msg = f"NormStatsAccumulator.update: maps must be square, got {h}x{w}"
            raise ValueError(msg)
        if self.image_size is not None and h != self.image_size:
            msg = f"NormStatsAccumulator.update: map size changed from {self.image_size} to {h}"
            raise ValueError(msg)
        self.image_size = h
        for branch in MAP_BRANCHES:
            if branch not in maps:
                continue
            m = maps[branch].detach().to(torch.float64)
            mean = m.mean(dim=(-2, -1)).sum(dim=0).cpu()  # [S]: sum over images of per-image spatial mean
            std = m.std(dim=(-2, -1), correction=0).sum(dim=0).cpu()
            if branch in self._sums:
                self._sums[branch] += torch.stack([mean, std])
            else:
                self._sums[branch] = torch.stack([mean, std])
        self.count += b

    def result(self) -> NormStats:
        """The statistics so far. Raises ``ValueError`` when no image was seen or a value is invalid."""
        if self.count == 0 or self.image_size is None:
            msg = "compute_norm_stats: no images were given (empty calibration set)"
            raise ValueError(msg)
        local = (self._sums["local"] / self.count).tolist()
        glob = (self._sums["global"] / self.count).tolist()
        memory = (self._sums["memory"] / self.count).tolist() if "memory" in self._sums else [(), ()]
        return NormStats(
            local_mean=tuple(local[0]),
            local_std=tuple(local[1]),
            global_mean=tuple(glob[0]),
            global_std=tuple(glob[1]),
            num_images=self.count,
            image_size=self.image_size,
            sigma=float(self.cfg.sigma),
            map_source=self.cfg.map_source,
            memory_mean=tuple(memory[0]),
            memory_std=tuple(memory[1]),
        )


def compute_norm_stats(batches: Iterable[Mapping[str, Tensor]], cfg: ScoringConfig) -> NormStats:
    """:class:`NormStats` from an iterable of per-scale map batches (``{"local", "global"}: [B, S, H, W]``).

    Args:
        batches: e.g. ``per_scale_maps(model(x), image_size, cfg)`` for each held-out normal batch.
        cfg: the scoring configuration the maps were made with (its sigma and map source are recorded).

    Raises:
        ValueError: no images, inconsistent shapes, or a non-finite / zero statistic.
    """
    acc = NormStatsAccumulator(cfg)
    for maps in batches:
        acc.update(maps)
    return acc.result()
