"""``glcf benchmark``: the SAM layouts and ablations as nested MLflow runs, and their comparison table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands.options import comma_list


def benchmark(
    categories: Annotated[str | None, typer.Option(help="comma-separated; default data.categories")] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="comma-separated variants (pipelines.benchmark.plan.VARIANTS; an unknown name lists them); default all"
        ),
    ] = None,
    params: Annotated[Path, typer.Option("--params", "-p", help="base parameter file")] = Path("params.yaml"),
    epochs: Annotated[int | None, typer.Option(min=1, help="override train.epochs for every variant")] = None,
    peers: Annotated[
        str | None,
        typer.Option(help="comma-separated anomalib baselines: patchcore, padim (needs the 'peers' extra)"),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads of the peers and the timed inference passes")
    ] = None,
    prefect: Annotated[bool, typer.Option("--prefect", help="run as the Prefect flow glcf-benchmark")] = False,
) -> None:
    """Train and evaluate each variant on each category under one MLflow parent run; print the table.

    Writes reports/benchmark/benchmark.{csv,md,png} and logs them to the parent run. Nothing is
    registered. With --peers, anomalib's PatchCore / PaDiM are fitted on the same splits with the
    same backbone, weights and image size, evaluated with the same metrics and added to the table.
    """
    from pipelines.logs import setup_logging

    setup_logging()
    chosen = comma_list(variants)
    try:
        if prefect:
            _benchmark_flow(comma_list(categories), chosen, params, epochs, comma_list(peers), threads)
            return
        from pipelines.benchmark.plan import DEFAULT_VARIANTS
        from pipelines.benchmark.run import run_benchmark

        result = run_benchmark(
            params,
            comma_list(categories),
            chosen or list(DEFAULT_VARIANTS),
            epochs=epochs,
            peers=comma_list(peers) or [],
            threads=threads,
        )
    except (ValueError, FileNotFoundError) as exc:  # bad variant, peer, category or params: no traceback
        logging.getLogger("glcf").error("benchmark: %s", exc)
        raise typer.Exit(2) from None
    typer.echo(result.markdown)
    typer.echo(f"parent run: {result.parent_run_id}  table: {result.csv_path}")


def _benchmark_flow(
    categories: list[str] | None,
    variants: list[str] | None,
    params: Path,
    epochs: int | None,
    peers: list[str] | None,
    threads: int | None,
) -> None:
    """``glcf benchmark --prefect``: the Prefect flow glcf-benchmark; prints its table and parent run."""
    from pipelines.prefect_env import apply_prefect_defaults

    apply_prefect_defaults()
    from pipelines.flows.benchmark import benchmark_flow

    out = benchmark_flow(
        categories=categories, variants=variants, params_file=str(params), epochs=epochs, peers=peers, threads=threads
    )
    typer.echo(Path(out["markdown"]).read_text(encoding="utf-8"))
    typer.echo(f"parent run: {out['parent_run_id']}")
