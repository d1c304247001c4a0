"""``glcf generate``: write the embedded synthetic LOCO-like dataset (MVTec LOCO AD layout)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer


def generate(
    out: Annotated[Path, typer.Option(help="output root; one folder per category is written in it")],
    seed: Annotated[int, typer.Option(help="root seed: same seed and settings give byte-identical files")] = 0,
    categories: Annotated[
        str | None, typer.Option(help="comma-separated categories (default: all registered categories)")
    ] = None,
    image_size: Annotated[str, typer.Option(help="image size WIDTHxHEIGHT")] = "256x192",
    train: Annotated[int | None, typer.Option(help="train/good images per category")] = None,
    validation: Annotated[int | None, typer.Option(help="validation/good images per category")] = None,
    test_good: Annotated[int | None, typer.Option(help="test/good images per category")] = None,
    test_logical: Annotated[int | None, typer.Option(help="test/logical_anomalies images per category")] = None,
    test_structural: Annotated[int | None, typer.Option(help="test/structural_anomalies images per category")] = None,
    preview: Annotated[
        bool, typer.Option(help="also write OUT/preview.png, a contact sheet with mask outlines")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="replace category folders even if the generator did not write them")
    ] = False,
    workers: Annotated[int, typer.Option(help="rendering processes (0: up to 4, one per CPU core)")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Generate deterministic LOCO-like categories with logical and structural anomalies and their masks.

    Writes OUT/<category>/{train,validation,test,ground_truth}, defects_config.json and
    generation.json (settings, rules and the defect of every anomalous image). Refuses to replace a
    non-empty folder it did not write unless --force is given.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from glcf.synth import GeneratorConfig, generate, write_contact_sheet

    counts = {
        name: value
        for name, value in (
            ("train", train),
            ("validation", validation),
            ("test_good", test_good),
            ("test_logical", test_logical),
            ("test_structural", test_structural),
        )
        if value is not None
    }
    settings: dict[str, object] = {"seed": seed, "image_size": image_size, "counts": counts}
    if categories is not None:
        settings["categories"] = categories
    try:
        cfg = GeneratorConfig.from_dict(settings)
        report = generate(
            out,
            cfg,
            progress=progress,
            force=force,
            workers=workers if workers > 0 else max(1, min(4, os.cpu_count() or 1)),
        )
        typer.echo(report.summary())
        if preview:
            typer.echo(f"preview: {write_contact_sheet(out, cfg.categories)}")
    except (ValueError, FileExistsError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
