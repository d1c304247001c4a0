"""Pipeline stages: one plain function per stage with typed inputs and outputs.

``RUNNERS`` is the one registry of the stages, in pipeline order: ``glcf stage <name> <category>``
(which ``dvc.yaml`` runs), the Prefect flow and the command-line help follow it, and unit tests prove
that ``dvc.yaml`` lists the same stages in the same order and tracks the files ``CategoryPaths`` names.
Each entry imports its stage's module when it runs, so starting one stage loads only its own code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

StageFn = Callable[..., Any]  # (params, paths, *, progress) -> the stage's result dataclass


def _data(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.data import run_data

    return run_data(params, paths, progress=progress)


def _prepare(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.prepare import run_prepare

    return run_prepare(params, paths, progress=progress)


def _train(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.train import run_train

    return run_train(params, paths, progress=progress)


def _calibrate(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.calibrate import run_calibrate

    return run_calibrate(params, paths, progress=progress)


def _evaluate(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.evaluate import run_evaluate

    return run_evaluate(params, paths, progress=progress)


def _register(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.register import run_register

    return run_register(params, paths, progress=progress)


def _promote(params: Any, paths: Any, *, progress: bool = True) -> Any:
    from pipelines.stages.promote import run_promote

    return run_promote(params, paths, progress=progress)


RUNNERS: dict[str, StageFn] = {
    "data": _data,
    "prepare": _prepare,
    "train": _train,
    "calibrate": _calibrate,
    "evaluate": _evaluate,
    "register": _register,
    "promote": _promote,
}
STAGES: tuple[str, ...] = tuple(RUNNERS)
