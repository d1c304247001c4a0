"""Benchmarks: the SAM layouts and the ablations of the paper (Sec. IV-C/D, Tables V-VII) per category.

Each (variant, category) pair trains, calibrates and evaluates with the pipeline's own stage
functions, as an MLflow run nested under one parent run (tag ``mlflow.parentRunId``), with its
outputs under ``<paths.models>/benchmark/<variant>`` and ``<paths.reports>/benchmark/<variant>``;
data and manifests are the pipeline's. Nothing is registered. The comparison table (image AUROC
total/logical/structural, pixel AUROC, sPRO at FPR 0.05) is written as CSV, markdown and a PNG bar
chart to ``<paths.reports>/benchmark/`` and logged to the parent run.

A variant is a set of ``params.yaml`` overrides on top of the given parameters. Variants whose
training settings are equal (``correspondence`` only changes how the map is scored) share one
trained checkpoint within a benchmark.

``glcf benchmark`` and the Prefect flow ``benchmark_flow`` both call :func:`run_benchmark`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.io import sha256_json, write_json, write_text
from pipelines.params import CategoryPaths, PipelineParams, load_params

logger = logging.getLogger(__name__)

#: variant name -> dotted ``params.yaml`` overrides (applied on top of the given parameters).
VARIANTS: dict[str, dict[str, Any]] = {
    "pss": {"model.bottleneck.layout": "pss"},
    "pgs": {"model.bottleneck.layout": "pgs"},
    "ps": {"model.bottleneck.layout": "ps"},
    "no_sb": {"model.ablation.semantic_bottleneck": False},
    "no_mspem": {"model.ablation.ms_pem": False},
    "no_sam": {"model.ablation.sam": False},
    "correspondence": {"model.scoring.map_source": "correspondence"},
}
DEFAULT_VARIANTS = tuple(VARIANTS)

#: table column -> key of ``metrics.json``'s summary.
COLUMNS = {
    "image_auroc_total": "image_auroc_total",
    "image_auroc_logical": "image_auroc_logical_anomalies",
    "image_auroc_structural": "image_auroc_structural_anomalies",
    "pixel_auroc": "pixel_auroc",
    "spro_0.05": "spro_0.05_mean",
}
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
    """

    variant: str
    category: str
    params_file: str
    overrides: dict[str, Any]
    benchmark_id: str

    def params(self) -> PipelineParams:
        return load_params(self.params_file, self.overrides)


@dataclass(frozen=True)
class JobResult:
    """The evaluated variant of one category."""

    variant: str
    category: str
    run_id: str
    summary: dict[str, float]
    train_seconds: float
    checkpoint_from: str | None = None  # the variant whose checkpoint was reused, if any


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


def ensure_prepared(params: PipelineParams, category: str, *, progress: bool) -> None:
    """Run the data and prepare stages unless the category's manifest matches its data already."""
    from pipelines.stages.common import StageInputError, load_prepared
    from pipelines.stages.runner import run_stage

    paths = params.category_paths(category)
    if paths.manifest.exists():
        try:
            load_prepared(params, paths)
        except (StageInputError, FileNotFoundError, ValueError) as exc:
            logger.info("%s: prepared data out of date (%s): preparing again", category, exc)
        else:
            return
    run_stage("data", category, params, progress=progress)
    run_stage("prepare", category, params, progress=progress)


def training_key(params: PipelineParams, paths: CategoryPaths) -> str:
    """What decides the trained weights: model (minus scoring), loss, train and the training data."""
    from pipelines.io import read_json

    flat = params.flat()
    keep = {k: v for k, v in flat.items() if k.startswith(("model.", "loss.", "train.")) and ".scoring." not in k}
    manifest = read_json(paths.manifest, "manifest")
    return sha256_json({"params": keep, "train": manifest["hashes"]["train"]})[:16]


def _reuse_checkpoint(job: BenchmarkJob, params: PipelineParams, paths: CategoryPaths, key: str) -> str | None:
    """Copy the checkpoint of a variant of this benchmark trained with equal settings; its name or None."""
    from pipelines.io import read_json

    for record_path in sorted(paths.model_dir.parent.parent.glob(f"*/{paths.category}/{TRAIN_RECORD}")):
        record = read_json(record_path)
        source = record_path.parent
        if (
            record.get("key") == key
            and record.get("benchmark_id") == job.benchmark_id
            and record.get("variant") != job.variant
            and (source / "model.pt").exists()
        ):
            paths.model_dir.mkdir(parents=True, exist_ok=True)
            for name in ("model.pt", "history.csv", "train_metrics.json"):
                if (source / name).exists():
                    shutil.copyfile(source / name, paths.model_dir / name)
            return str(record["variant"])
    return None


def _log_reused_training(params: PipelineParams, paths: CategoryPaths, source_variant: str) -> str:
    """Open this variant's own run for a reused checkpoint, with the source's training history."""
    import mlflow

    from pipelines import tracking

    train_id = uuid.uuid4().hex
    with tracking.category_run(params, paths, stage="train", new_train_id=train_id) as run:
        mlflow.set_tag("glcf.checkpoint_from_variant", source_variant)
        tracking.log_train_outputs(paths)
        write_json(paths.run_info, {"train_id": train_id, "run_id": run.info.run_id})
        return run.info.run_id


def run_benchmark_job(job: BenchmarkJob, *, progress: bool = False) -> JobResult:
    """Train (or reuse an equal training), calibrate and evaluate one variant of one category."""
    from pipelines import tracking
    from pipelines.io import read_json
    from pipelines.stages.runner import run_stage

    params = job.params()
    paths = params.category_paths(job.category)
    key = training_key(params, paths)
    t0 = time.monotonic()
    with tracking.nested_under(job.benchmark_id):
        reused = _reuse_checkpoint(job, params, paths, key)
        if reused is None:
            run_stage("train", job.category, params, progress=progress)
            train_seconds = time.monotonic() - t0
        else:
            logger.info("%s/%s: reusing the checkpoint of variant %s", job.category, job.variant, reused)
            _log_reused_training(params, paths, reused)
            train_seconds = 0.0
        write_json(
            paths.model_dir / TRAIN_RECORD, {"key": key, "benchmark_id": job.benchmark_id, "variant": job.variant}
        )
        run_stage("calibrate", job.category, params, progress=progress)
        evaluation = run_stage("evaluate", job.category, params, progress=progress)
    run_id = read_json(paths.run_info)["run_id"]
    return JobResult(job.variant, job.category, run_id, dict(evaluation.summary), round(train_seconds, 3), reused)


def table_rows(results: Sequence[JobResult]) -> list[dict[str, Any]]:
    """One row per (variant, category), plus a ``mean`` row per variant over several categories."""
    rows: list[dict[str, Any]] = []
    variants = list(dict.fromkeys(r.variant for r in results))
    for variant in variants:
        mine = [r for r in results if r.variant == variant]
        for r in mine:
            row: dict[str, Any] = {"variant": variant, "category": r.category}
            row |= {col: r.summary.get(key, float("nan")) for col, key in COLUMNS.items()}
            row |= {"train_seconds": r.train_seconds, "checkpoint_from": r.checkpoint_from or "", "run_id": r.run_id}
            rows.append(row)
        if len(mine) > 1:
            mean: dict[str, Any] = {"variant": variant, "category": "mean"}
            for col in COLUMNS:
                values = [row[col] for row in rows[-len(mine) :] if math.isfinite(row[col])]
                mean[col] = sum(values) / len(values) if values else float("nan")
            mean |= {"train_seconds": sum(r.train_seconds for r in mine), "checkpoint_from": "", "run_id": ""}
            rows.append(mean)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """The comparison as a markdown table (best value per category and metric in bold)."""
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        for col in COLUMNS:
            if math.isfinite(row[col]):
                best[(row["category"], col)] = max(best.get((row["category"], col), -math.inf), row[col])
    header = ["variant", "category", *COLUMNS, "train s", "checkpoint"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["variant"], row["category"]]
        for col in COLUMNS:
            value = row[col]
            text = "–" if not math.isfinite(value) else f"{value:.4f}"
            if math.isfinite(value) and value == best[(row["category"], col)] and len(rows) > 1:
                text = f"**{text}**"
            cells.append(text)
        cells += [f"{row['train_seconds']:.1f}", row["checkpoint_from"] and f"from {row['checkpoint_from']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_chart(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per variant (mean over categories)."""
    import numpy as np
    from matplotlib.figure import Figure

    categories = {r["category"] for r in rows if r["category"] != "mean"}
    shown = [r for r in rows if (r["category"] == "mean") == (len(categories) > 1)]
    variants = [r["variant"] for r in shown]
    fig = Figure(figsize=(max(6.0, 2.0 + 0.28 * len(COLUMNS) * len(variants)), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(1, len(variants))
    x = np.arange(len(COLUMNS))
    for i, row in enumerate(shown):
        values = [row[c] if math.isfinite(row[c]) else 0.0 for c in COLUMNS]
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, values, width, label=row["variant"])
    ax.set_xticks(x, list(COLUMNS), fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over categories" if len(categories) > 1 else next(iter(categories), ""))
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle="--")
    ax.legend(fontsize=7, ncols=min(4, max(1, len(variants))), loc="upper right")
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return path


def _parent_run(params: PipelineParams, categories: list[str], variants: list[str], epochs: int | None) -> Any:
    from mlflow import MlflowClient

    from pipelines import tracking

    experiment_id = tracking.ensure_experiment(params.experiment_name)
    commit, dirty = tracking.git_commit(params.root)
    run = MlflowClient().create_run(
        experiment_id,
        run_name=f"benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={
            "glcf.kind": "benchmark",
            "glcf.dataset": params.data.dataset_name,
            "glcf.categories": ",".join(categories),
            "glcf.variants": ",".join(variants),
            "glcf.params_hash": params.fingerprint(),
            "mlflow.source.git.commit": commit,
            "glcf.git_dirty": str(dirty).lower(),
        },
    )
    client = MlflowClient()
    client.log_param(run.info.run_id, "categories", json.dumps(categories))
    client.log_param(run.info.run_id, "variants", json.dumps(variants))
    client.log_param(run.info.run_id, "train.epochs", str(epochs if epochs is not None else params.glcf.train.epochs))
    return run


def run_benchmark(
    params_file: str | Path = "params.yaml",
    categories: Sequence[str] | None = None,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    *,
    epochs: int | None = None,
    progress: bool = True,
    run_job: Callable[[BenchmarkJob], JobResult] | None = None,
) -> BenchmarkResult:
    """Train and evaluate every variant on every category under one parent MLflow run.

    Args:
        params_file: the base parameter file; its folder is the project root.
        categories: default ``data.categories``.
        variants: keys of :data:`VARIANTS`, run in this order.
        epochs: override ``train.epochs`` for every variant.
        progress: progress bars (data preparation and the job loop).
        run_job: runs one job (default :func:`run_benchmark_job`; the Prefect flow passes a task).

    Returns:
        The parent run, the rows of the comparison table and where it was written.

    Raises:
        BenchmarkError: an unknown variant, a repeated name or bad epochs (before any work).
        pipelines.params.ParamsError: an unknown category or invalid parameters.
    """
    from mlflow import MlflowClient
    from tqdm.auto import tqdm

    from pipelines import tracking

    params, planned = plan(params_file, categories, list(variants), epochs)
    chosen = list(dict.fromkeys(c for _, c, _ in planned))
    root = params.root
    tracking.configure_tracking(root)
    for category in chosen:
        ensure_prepared(params, category, progress=progress)
    parent = _parent_run(params, chosen, list(variants), epochs)
    parent_id = parent.info.run_id
    client = MlflowClient()
    logger.info("benchmark %s: %d variants x %d categories", parent_id, len(variants), len(chosen))
    runner = run_job or run_benchmark_job
    results: list[JobResult] = []
    try:
        for variant, category, overrides in tqdm(planned, desc="benchmark", unit="run", disable=not progress):
            job = BenchmarkJob(variant, category, str(params_file), overrides, parent_id)
            results.append(runner(job))
        rows = table_rows(results)
        out = root / params.paths.reports / BENCHMARK_DIR
        title = f"GLCF benchmark {parent_id[:8]} ({params.data.dataset_name})"
        csv_path = write_csv(rows, out / "benchmark.csv")
        markdown = markdown_table(rows, title)
        md_path = out / "benchmark.md"
        write_text(md_path, markdown)
        chart = plot_chart(rows, out / "benchmark.png", title)
        write_json(out / "benchmark.json", {"parent_run_id": parent_id, "rows": rows})
        for path in (csv_path, md_path, chart, out / "benchmark.json"):
            client.log_artifact(parent_id, str(path), "benchmark")
        for row in rows:
            if row["category"] == "mean" or len(chosen) == 1:
                for col in COLUMNS:
                    if math.isfinite(row[col]):
                        client.log_metric(parent_id, f"{row['variant']}.{col}", float(row[col]))
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    return BenchmarkResult(
        parent_id, parent.info.experiment_id, rows, results, csv_path, md_path, chart, markdown=markdown
    )
