"""``glcf export``: a category's detector as one ONNX or OpenVINO file (see ``docs/export.md``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from glcf.export.formats import EXPORT_FORMATS


def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="output file: .onnx (onnx) or .xml (openvino)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx or openvino")] = "onnx",
    model_dir: Annotated[
        Path | None, typer.Option(help="a pipeline output folder (models/<category>) instead of the registry")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", "-c", help="export a registered version")] = None,
    alias: Annotated[str | None, typer.Option(help="registry alias (default champion)")] = None,
    version: Annotated[str | None, typer.Option(help="registry version number (instead of --alias)")] = None,
    log: Annotated[bool, typer.Option(help="log a registered version's export with its run")] = True,
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
) -> None:
    """Write the whole detector (preprocessing to image score, dynamic batch, threshold, metadata) as one file."""
    from pipelines.logs import setup_logging

    setup_logging()
    log_ = logging.getLogger("glcf")
    if (model_dir is None) == (category is None):
        log_.error("export: give either --model-dir or --category")
        raise typer.Exit(2)
    if alias is not None and version is not None:
        log_.error("export: give --alias or --version, not both")
        raise typer.Exit(2)
    if model_dir is not None and (alias is not None or version is not None):
        log_.error("export: --alias and --version choose a registered version: use them with --category")
        raise typer.Exit(2)
    if fmt not in EXPORT_FORMATS:
        log_.error("export: --format must be one of %s, got %r", ", ".join(EXPORT_FORMATS), fmt)
        raise typer.Exit(2)
    from pipelines.export import (
        artifact_dir,
        export_file,
        log_export,
        resolve_version,
        source_from_dir,
        source_from_registry,
    )

    try:
        if model_dir is not None:
            source = source_from_dir(model_dir)
            what = str(model_dir)
        else:
            import tempfile

            from pipelines import tracking
            from pipelines.commands.options import load_params_or_exit

            loaded = load_params_or_exit(params, "export")
            tracking.configure_tracking(loaded.root)
            name = loaded.model_name(category)
            number = resolve_version(name, alias, version)
            what = f"models:/{name}/{number}"
            with tempfile.TemporaryDirectory(prefix="glcf-export-") as tmp:
                source = source_from_registry(name, number, Path(tmp))
        log_.info("export: %s -> %s (%s)", what, out, fmt)
        written = export_file(source, fmt, out)
    except (ValueError, LookupError) as exc:
        log_.error("export: %s", exc)
        raise typer.Exit(2) from None
    if category is not None and log and source.run_id:
        log_export(source.run_id, written, number)
        log_.info("export: logged %s with run %s (artifacts %s/)", written.name, source.run_id, artifact_dir(number))
    typer.echo(str(written))


def benchmark_formats(
    category: Annotated[str, typer.Option("--category", "-c", help="the category (its models/<category> folder)")],
    threads: Annotated[int, typer.Option(min=1, help="threads of every format")] = 1,
    iters: Annotated[int, typer.Option(min=4, help="timed batch-1 runs per format")] = 40,
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
) -> None:
    """torch vs ONNX vs OpenVINO on the test split: AUROC, size, batch-1 latency, batch-8 throughput, GFLOP/s."""
    from pipelines.commands.options import load_params_or_exit

    loaded = load_params_or_exit(params, "benchmark-formats")
    log_ = logging.getLogger("glcf")
    from pipelines import tracking
    from pipelines.benchmark import formats as bf
    from pipelines.params import ParamsError
    from pipelines.stages.common import load_prepared

    try:
        paths = loaded.category_paths(category)
        data, _ = load_prepared(loaded, paths)
        out_dir = loaded.root / "reports" / "benchmark_formats"
        rows = bf.benchmark_formats(paths.model_dir, list(data.test), out_dir / category, threads, iters)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        log_.error("benchmark-formats: %s", exc)
        raise typer.Exit(2) from None
    reports = bf.write_reports(rows, threads, out_dir, category)
    tracking.configure_tracking(loaded.root)
    run_id = bf.log_run(rows, threads, category, reports)
    typer.echo(bf.markdown(rows, threads))
    typer.echo(f"run: {run_id}  table: {reports[1]}")
