"""Run one stage by name: what ``glcf stage`` (and so ``dvc.yaml``) and the Prefect tasks call."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from pipelines.params import PipelineParams, load_params
from pipelines.stages import RUNNERS, STAGES

logger = logging.getLogger(__name__)


def stage_function(name: str) -> Any:
    if name not in RUNNERS:
        msg = f"unknown stage {name!r} (stages: {', '.join(STAGES)})"
        raise ValueError(msg)
    return RUNNERS[name]


def run_stage(
    name: str,
    category: str,
    params: PipelineParams | str | Path = "params.yaml",
    *,
    root: Path | None = None,
    progress: bool = True,
) -> Any:
    """Run stage ``name`` for ``category`` and return its result dataclass.

    Args:
        name: one of ``pipelines.stages.STAGES``.
        category: a category of ``data.categories``.
        params: loaded parameters or the path of ``params.yaml``.
        root: the project root the paths are relative to (default: the params file's folder).
        progress: show progress bars.
    """
    from pipelines.settings import apply_torch_threads

    if not isinstance(params, PipelineParams):
        params = load_params(params)
    paths = params.category_paths(category, root)
    fn = stage_function(name)
    threads = apply_torch_threads()  # in this thread: a Prefect task runs in a thread of the flow's pool
    logger.info("stage %s@%s (%d torch threads)", name, category, threads)
    return fn(params, paths, progress=progress)


def result_dict(result: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(result):
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}
    return {"result": str(result)}
