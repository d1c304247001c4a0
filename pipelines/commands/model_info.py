"""``glcf model-info``: parameter counts per module and output shapes of a GLCF configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def model_info(
    preset: Annotated[str, typer.Option(help="configuration preset: paper, default or tiny")] = "default",
    image_size: Annotated[int, typer.Option(help="square input size in pixels (multiple of 32)")] = 224,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Print trainable/frozen parameters per module and the shapes of every branch and scale.

    The model is built with random encoder weights, so this works offline.
    """
    from glcf.presets import preset as get_preset

    try:
        cfg = get_preset(preset, image_size=image_size)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    from glcf.info import format_model_info  # torch + timm: only once the arguments are valid
    from glcf.info import model_info as compute

    info = compute(cfg)
    typer.echo(json.dumps(info, indent=2) if as_json else format_model_info(info))
