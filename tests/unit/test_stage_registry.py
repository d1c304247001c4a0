"""One registry of stages (``pipelines.stages.RUNNERS``): dvc.yaml, the Prefect flow and ``glcf stage`` follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.stages import RUNNERS, STAGES
from pipelines.stages.runner import stage_function

ROOT = Path(__file__).resolve().parents[2]


def test_dvc_yaml_runs_the_registered_stages_in_their_order() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert tuple(stages) == STAGES
    for name, spec in stages.items():
        assert spec["do"]["cmd"] == f"glcf stage {name} ${{item}}", name


def test_the_flow_has_a_task_for_every_stage_and_no_other() -> None:
    from pipelines.flows.category import STAGE_TASKS
    from pipelines.flows.tasks import TASKS

    assert tuple(STAGE_TASKS) == STAGES
    assert set(TASKS) == set(STAGES)
    assert [task.name for task in STAGE_TASKS.values()] == list(STAGES)


def test_stages_are_dispatched_through_the_registry() -> None:
    assert tuple(RUNNERS) == STAGES
    for name in STAGES:
        assert stage_function(name) is RUNNERS[name]
    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        stage_function("trian")
