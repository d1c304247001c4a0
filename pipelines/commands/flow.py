"""``glcf flow``: run the pipeline as Prefect flows (local mode, or the server at PREFECT_API_URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands.options import comma_list


def flow(
    categories: Annotated[str | None, typer.Option(help="comma-separated; default data.categories")] = None,
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    stages: Annotated[str | None, typer.Option(help="comma-separated subset of the stages")] = None,
    runner: Annotated[str, typer.Option(help="threads, dask or ray (see GLCF_DASK_ADDRESS)")] = "threads",
    workers: Annotated[int, typer.Option(help="categories at once (threads or local Dask workers)")] = 1,
    dask_address: Annotated[str | None, typer.Option(help="scheduler address of an existing Dask cluster")] = None,
    dvc_commit: Annotated[bool, typer.Option(help="record the outputs in dvc.lock afterwards")] = True,
) -> None:
    """Run every category (prepare, train, calibrate, evaluate, register, promote) as Prefect flows."""
    from pipelines.logs import setup_logging
    from pipelines.prefect_env import apply_prefect_defaults

    apply_prefect_defaults()
    setup_logging()
    from pipelines.flows.category import run_pipeline

    results = run_pipeline(
        comma_list(categories),
        str(params),
        stages=comma_list(stages),
        runner=runner,
        max_workers=workers,
        dask_address=dask_address,
        dvc_commit=dvc_commit,
    )
    for category, res in results.items():
        promo = res.get("promote")
        review = res.get("review")
        extra = f" (review {review})" if review in ("pending", "approved", "expired") else ""
        typer.echo(f"{category}: {promo.reason if promo is not None else 'done'}{extra}")
