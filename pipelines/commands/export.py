"""``glcf export``: a category's detector as one ONNX or OpenVINO file (see ``docs/export.md``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


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
    from pipelines.export import export_file, log_export, resolve_version, source_from_dir, source_from_registry

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
        log_export(source.run_id, written)
        log_.info("export: logged %s with run %s (artifacts export/)", written.name, source.run_id)
    typer.echo(str(written))
