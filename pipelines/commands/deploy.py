"""``glcf deploy``: one scheduled Prefect deployment per category on a work pool (see ``pipelines.flows.deploy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def deploy(
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file; its folder is the project")] = Path(
        "params.yaml"
    ),
    categories: Annotated[str | None, typer.Option(help="comma-separated; default data.categories")] = None,
    cron: Annotated[str | None, typer.Option(help="one cron for every category (default: schedule section)")] = None,
    timezone: Annotated[str | None, typer.Option(help="time zone of the crons (default: schedule.timezone)")] = None,
    gpu: Annotated[
        bool | None, typer.Option("--gpu/--cpu", help="GPU pool (limit = GPUs) or CPU pool; default schedule.gpu")
    ] = None,
    pool: Annotated[str | None, typer.Option(help="work pool name (default GLCF_GPU_POOL / GLCF_CPU_POOL)")] = None,
    gpu_count: Annotated[
        int | None, typer.Option(min=1, help="GPUs of the GPU pool = its concurrency limit (default GLCF_GPU_COUNT)")
    ] = None,
    paused: Annotated[bool, typer.Option(help="register the schedules paused")] = False,
    dry_run: Annotated[bool, typer.Option(help="print the deployments without contacting Prefect")] = False,
) -> None:
    """Create or update the scheduled retraining deployments (dvc pull, stages, register, promotion review)."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # our loggers, outside any run
    from pipelines.commands.options import comma_list
    from pipelines.flows.deploy import apply_deployments, plan_deployments
    from pipelines.logs import setup_logging
    from pipelines.prefect_env import apply_prefect_defaults
    from pipelines.settings import get_settings

    apply_prefect_defaults()
    setup_logging()
    chosen = comma_list(categories)
    try:
        specs = plan_deployments(params, categories=chosen, cron=cron, timezone=timezone, gpu=gpu, work_pool=pool)
    except ValueError as exc:
        typer.echo(f"glcf deploy: {exc}", err=True)
        raise typer.Exit(2) from None
    on_gpu = "gpu" in specs[0].tags if specs else False
    limit = (gpu_count or get_settings().glcf_gpu_count) if on_gpu else None
    rows = [
        {"deployment": s.full_name, "cron": s.cron, "timezone": s.timezone, "pool": s.work_pool, **s.parameters}
        for s in specs
    ]
    if dry_run:
        typer.echo(json.dumps({"pool_concurrency_limit": limit, "deployments": rows}, indent=2))
        return
    ids = apply_deployments(specs, pool_limit=limit, paused=paused)
    for row in rows:
        row["id"] = ids[row["deployment"]]
    typer.echo(json.dumps({"pool_concurrency_limit": limit, "deployments": rows}, indent=2))
    pool_name = specs[0].work_pool if specs else pool
    hint = (
        f"one worker per GPU: CUDA_VISIBLE_DEVICES=<i> prefect worker start --pool {pool_name} --limit 1"
        if on_gpu
        else f"prefect worker start --pool {pool_name}"
    )
    typer.echo(f"start a worker in the project's environment: {hint}", err=True)
