"""Running the benchmark's jobs and writing its comparison table (:func:`run_benchmark`)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from glcf.config import MEMORY_FILL_KEYS
from pipelines.benchmark.plan import (
    BENCHMARK_DIR,
    DEFAULT_VARIANTS,
    TRAIN_RECORD,
    BenchmarkError,
    BenchmarkJob,
    BenchmarkResult,
    JobResult,
    plan,
)
from pipelines.benchmark.table import COLUMNS, markdown_table, plot_chart, table_rows, write_csv
from pipelines.io import sha256_json, write_json, write_text
from pipelines.params import CategoryPaths, PipelineParams

logger = logging.getLogger(__name__)


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
    fill_keys = tuple(f".scoring.{name}" for name in MEMORY_FILL_KEYS)
    keep = {
        k: v
        for k, v in flat.items()
        if k.startswith(("model.", "loss.", "train.")) and (".scoring." not in k or k.endswith(fill_keys))
    }
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
    from pipelines.peers.jobs import glcf_throughput
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
    rate = glcf_throughput(params, paths, job.threads)
    _log_throughput(run_id, rate)
    return JobResult(
        job.variant,
        job.category,
        run_id,
        dict(evaluation.summary),
        round(train_seconds, 3),
        reused,
        images_per_second=rate,
        image_size=params.glcf.image_size,
    )


def _log_throughput(run_id: str, rate: float) -> None:
    from mlflow import MlflowClient

    if math.isfinite(rate):
        MlflowClient().log_metric(run_id, "images_per_second", rate)


def _parent_run(
    params: PipelineParams, categories: list[str], variants: list[str], epochs: int | None, peers: list[str]
) -> Any:
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
            "glcf.peers": ",".join(peers),
            "glcf.params_hash": params.fingerprint(),
            "mlflow.source.git.commit": commit,
            "glcf.git_dirty": str(dirty).lower(),
        },
    )
    client = MlflowClient()
    client.log_param(run.info.run_id, "categories", json.dumps(categories))
    client.log_param(run.info.run_id, "variants", json.dumps(variants))
    client.log_param(run.info.run_id, "peers", json.dumps(peers))
    client.log_param(run.info.run_id, "train.epochs", str(epochs if epochs is not None else params.glcf.train.epochs))
    client.log_param(run.info.run_id, "model.image_size", str(params.glcf.image_size))
    return run


def _write_table(params: PipelineParams, parent_id: str, results: list[JobResult], single: bool) -> dict[str, Any]:
    """Write the table as CSV, markdown, PNG and JSON, and log them and the headline metrics to the parent."""
    from mlflow import MlflowClient

    client = MlflowClient()
    rows = table_rows(results)
    out = params.root / params.paths.reports / BENCHMARK_DIR
    title = f"GLCF benchmark {parent_id[:8]} ({params.data.dataset_name})"
    markdown = markdown_table(rows, title)
    paths = {
        "csv": write_csv(rows, out / "benchmark.csv"),
        "md": out / "benchmark.md",
        "png": plot_chart(rows, out / "benchmark.png", title),
        "json": out / "benchmark.json",
    }
    write_text(paths["md"], markdown)
    write_json(paths["json"], {"parent_run_id": parent_id, "rows": rows})
    for path in paths.values():
        client.log_artifact(parent_id, str(path), "benchmark")
    for row in rows:
        if row["category"] == "mean" or single:
            for col in (*COLUMNS, "images_per_second"):
                if math.isfinite(row[col]):
                    client.log_metric(parent_id, f"{row['variant']}.{col}", float(row[col]))
    return {"rows": rows, "markdown": markdown, **paths}


def run_benchmark(
    params_file: str | Path = "params.yaml",
    categories: Sequence[str] | None = None,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    *,
    epochs: int | None = None,
    peers: Sequence[str] = (),
    threads: int | None = None,
    progress: bool = True,
    run_job: Callable[[BenchmarkJob], JobResult] | None = None,
    run_peer: Callable[[Any], JobResult] | None = None,
) -> BenchmarkResult:
    """Train and evaluate every variant (and fit every peer) on every category under one parent MLflow run.

    Args:
        params_file: the base parameter file; its folder is the project root.
        categories: default ``data.categories``.
        variants: keys of :data:`VARIANTS`, run in this order.
        epochs: override ``train.epochs`` for every variant.
        peers: keys of :data:`pipelines.peers.PEERS` (anomalib baselines, the ``peers`` extra), run after
            the variants on the same splits, backbone, weights and image size.
        threads: torch threads of the peers and of every timed inference pass (None: torch's default).
        progress: progress bars (data preparation and the job loop).
        run_job: runs one job (default :func:`run_benchmark_job`; the Prefect flow passes a task).
        run_peer: runs one peer job (default :func:`pipelines.peers.run_peer_job`).

    Returns:
        The parent run, the rows of the comparison table and where it was written.

    Raises:
        BenchmarkError: an unknown variant, a repeated name or bad epochs (before any work).
        pipelines.peers.PeerError: an unknown peer, or peers without the ``peers`` extra (before any work).
        pipelines.params.ParamsError: an unknown category or invalid parameters.
    """
    from pipelines import tracking
    from pipelines.peers import PeerJob, check_peers_installed, parse_peers

    chosen_peers = parse_peers(list(peers))
    check_peers_installed(chosen_peers)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        msg = f"threads: must be a positive integer, got {threads!r}"
        raise BenchmarkError(msg)
    params, planned = plan(params_file, categories, list(variants), epochs)
    chosen = list(dict.fromkeys(c for _, c, _ in planned))
    tracking.configure_tracking(params.root)
    for category in chosen:
        ensure_prepared(params, category, progress=progress)
    parent = _parent_run(params, chosen, list(variants), epochs, chosen_peers)
    parent_id = parent.info.run_id
    counts = (len(variants), len(chosen_peers), len(chosen))
    logger.info("benchmark %s: %d variants + %d peers x %d categories", parent_id, *counts)
    jobs: list[Any] = [BenchmarkJob(v, c, str(params_file), o, parent_id, threads) for v, c, o in planned]
    jobs += [PeerJob(p, c, str(params_file), parent_id, threads) for p in chosen_peers for c in chosen]
    return _run_jobs(params, parent, jobs, run_job, run_peer, progress=progress, single=len(chosen) == 1)


def _run_jobs(
    params: PipelineParams,
    parent: Any,
    jobs: list[Any],
    run_job: Callable[[BenchmarkJob], JobResult] | None,
    run_peer: Callable[[Any], JobResult] | None,
    *,
    progress: bool,
    single: bool,
) -> BenchmarkResult:
    """Run the jobs in order and write the table; the parent run ends FINISHED, or FAILED on any error."""
    from mlflow import MlflowClient
    from tqdm.auto import tqdm

    from pipelines.peers import PeerJob, run_peer_job

    parent_id = parent.info.run_id
    client = MlflowClient()
    results: list[JobResult] = []
    try:
        for job in tqdm(jobs, desc="benchmark", unit="run", disable=not progress):
            is_peer = isinstance(job, PeerJob)
            results.append((run_peer or run_peer_job)(job) if is_peer else (run_job or run_benchmark_job)(job))
        table = _write_table(params, parent_id, results, single)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    return BenchmarkResult(
        parent_id,
        parent.info.experiment_id,
        table["rows"],
        results,
        table["csv"],
        table["md"],
        table["png"],
        markdown=table["markdown"],
    )
