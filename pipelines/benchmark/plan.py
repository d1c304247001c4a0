"""The benchmark's plan: its variants (``params.yaml`` overrides), jobs and results, nothing run yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.params import PipelineParams, load_params

#: variant name -> dotted ``params.yaml`` overrides (applied on top of the given parameters).
VARIANTS: dict[str, dict[str, Any]] = {
    "pss": {"model.bottleneck.layout": "pss"},
    "pgs": {"model.bottleneck.layout": "pgs"},
    "ps": {"model.bottleneck.layout": "ps"},
    "no_sb": {"model.ablation.semantic_bottleneck": False},
    "no_mspem": {"model.ablation.ms_pem": False},
    "no_sam": {"model.ablation.sam": False},
    "correspondence": {"model.scoring.map_source": "correspondence"},
    # what the defaults beyond the paper buy (scoring only: they share the default's checkpoint)
    "paper_fusion": {
        "model.scoring.fusion": "fixed",
        "model.scoring.memory": False,
        "model.scoring.position_memory": False,
        "model.scoring.layout_memory": False,
    },
    "calibrated_only": {
        "model.scoring.memory": False,
        "model.scoring.position_memory": False,
        "model.scoring.layout_memory": False,
    },
    "no_patch_memory": {"model.scoring.memory": False},
    "no_position_memory": {"model.scoring.position_memory": False},
    "no_layout_memory": {"model.scoring.layout_memory": False},
    "whole_layout": {"model.scoring.layout_match": "whole"},
    "pair_layout": {"model.scoring.layout_match": "pairs"},
    "coarse_layout": {"model.scoring.layout_stride": 16},
    "single_layout": {"model.scoring.layout_multiscale": False},
    "no_layout_zoom": {"model.scoring.layout_zoom": 1.0},
    "global_peak": {"model.scoring.global_image_score": None},
    "size_128": {"model.image_size": 128},
}
DEFAULT_VARIANTS = tuple(VARIANTS)

BENCHMARK_DIR = "benchmark"
TRAIN_RECORD = "benchmark_train.json"


class BenchmarkError(ValueError):
    """A benchmark that cannot run as asked (unknown variant or category, bad epochs)."""


@dataclass(frozen=True)
class BenchmarkJob:
    """One (variant, category) pair of a benchmark: what a worker needs to run it.

    Attributes:
        variant: a key of :data:`VARIANTS`.
        category: a category of ``data.categories``.
        params_file: the base parameter file (its folder is the project root).
        overrides: dotted overrides of the variant, its output paths and the epochs.
        benchmark_id: the parent run id; the job's runs are created as its children.
        threads: torch threads of the timed inference pass (None: torch's default).
    """

    variant: str
    category: str
    params_file: str
    overrides: dict[str, Any]
    benchmark_id: str
    threads: int | None = None

    def params(self) -> PipelineParams:
        return load_params(self.params_file, self.overrides)


@dataclass(frozen=True)
class JobResult:
    """The evaluated variant (or peer) of one category."""

    variant: str
    category: str
    run_id: str
    summary: dict[str, float]
    train_seconds: float
    checkpoint_from: str | None = None  # the variant whose checkpoint was reused, if any
    images_per_second: float = float("nan")  # test images/s of a timed inference pass
    image_size: int = 0
    note: str = ""  # peers: their backbone layers and strides
    kind: str = "glcf"  # glcf | peer


@dataclass(frozen=True)
class BenchmarkResult:
    """The parent run and the comparison table."""

    parent_run_id: str
    experiment_id: str
    rows: list[dict[str, Any]]
    jobs: list[JobResult]
    csv_path: Path
    markdown_path: Path
    chart_path: Path
    markdown: str = field(repr=False, default="")


def variant_overrides(params: PipelineParams, variant: str, epochs: int | None) -> dict[str, Any]:
    """The overrides of ``variant``: its settings, its own output folders, no registration."""
    if variant not in VARIANTS:
        msg = f"unknown variant {variant!r} (variants: {', '.join(VARIANTS)})"
        raise BenchmarkError(msg)
    overrides = {
        **VARIANTS[variant],
        "register.variant": variant,
        "paths.models": f"{params.paths.models}/{BENCHMARK_DIR}/{variant}",
        "paths.reports": f"{params.paths.reports}/{BENCHMARK_DIR}/{variant}",
    }
    if epochs is not None:
        overrides["train.epochs"] = epochs
    return overrides


def plan(
    params_file: str | Path, categories: Sequence[str] | None, variants: Sequence[str], epochs: int | None
) -> tuple[PipelineParams, list[tuple[str, str, dict[str, Any]]]]:
    """Validate the request; returns the base parameters and (variant, category, overrides) per job."""
    params = load_params(params_file)
    chosen = list(categories or params.data.categories)
    if not chosen or not variants:
        msg = "a benchmark needs at least one category and one variant"
        raise BenchmarkError(msg)
    for name, values in (("categories", chosen), ("variants", list(variants))):
        if len(set(values)) != len(values):
            msg = f"{name}: listed twice in {values}"
            raise BenchmarkError(msg)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        msg = f"epochs: must be a positive integer, got {epochs!r}"
        raise BenchmarkError(msg)
    for category in chosen:
        params.category_paths(category)  # unknown categories fail before any work
        if category == BENCHMARK_DIR:
            msg = f"category {category!r} collides with the benchmark's output folder"
            raise BenchmarkError(msg)
    jobs = []
    for variant in variants:
        overrides = variant_overrides(params, variant, epochs)
        load_params(params_file, overrides)  # an invalid variant (e.g. for this preset) fails now
        jobs.extend((variant, category, overrides) for category in chosen)
    return params, jobs
