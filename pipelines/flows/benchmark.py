"""The benchmark as a Prefect flow: one task run per (variant, category), the table as an artifact.

The flow calls :func:`pipelines.benchmark.run.run_benchmark` (the same function as ``glcf benchmark``)
and hands it a task for the jobs, so each variant shows up as its own task run with its state and
logs. Jobs run one after the other: variants with equal training settings reuse the first one's
checkpoint, and training already uses every core.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.benchmark.plan import DEFAULT_VARIANTS, BenchmarkJob, JobResult
from pipelines.benchmark.run import run_benchmark, run_benchmark_job
from pipelines.peers.jobs import PeerJob, run_peer_job

logger = logging.getLogger(__name__)

ARTIFACT_KEY = "glcf-benchmark"


@task(name="benchmark-variant", cache_policy=NO_CACHE, task_run_name="{job.variant}@{job.category}")
def variant_task(job: BenchmarkJob) -> JobResult:
    """Train (or reuse), calibrate and evaluate one variant of one category."""
    return run_benchmark_job(job)


@task(name="benchmark-peer", cache_policy=NO_CACHE, task_run_name="{job.peer}@{job.category}")
def peer_task(job: PeerJob) -> JobResult:
    """Fit, evaluate and log one anomalib peer on one category."""
    return run_peer_job(job)


@flow(name="glcf-benchmark", log_prints=True)
def benchmark_flow(
    categories: list[str] | None = None,
    variants: list[str] | None = None,
    params_file: str = "params.yaml",
    epochs: int | None = None,
    peers: list[str] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Benchmark the SAM layouts and ablations on the categories; returns the parent run and the table.

    Args:
        categories: default ``data.categories``.
        variants: default every variant of :data:`pipelines.benchmark.plan.VARIANTS`.
        params_file: the base parameter file (its folder is the project root).
        epochs: override ``train.epochs`` for every variant.
        peers: anomalib baselines of :data:`pipelines.peers.PEERS` (the ``peers`` extra); default none.
        threads: torch threads of the peers and the timed inference passes.
    """
    result = run_benchmark(
        params_file,
        categories,
        list(variants or DEFAULT_VARIANTS),
        epochs=epochs,
        peers=list(peers or []),
        threads=threads,
        progress=False,
        run_job=variant_task,
        run_peer=peer_task,
    )
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=result.markdown, description=f"MLflow parent run {result.parent_run_id}"
    )
    return {
        "parent_run_id": result.parent_run_id,
        "rows": result.rows,
        "jobs": [dataclasses.asdict(j) for j in result.jobs],
        "csv": str(result.csv_path),
        "markdown": str(result.markdown_path),
        "chart": str(result.chart_path),
    }
