"""Planning of the scheduled deployments (pipelines.flows.deploy) and the choice of task runner, without servers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.flows.category import task_runner
from pipelines.flows.deploy import load_schedule, plan_deployments

PARAMS = {
    "data": {"categories": ["pushpins", "breakfast_box"]},
    "model": {"preset": "tiny"},
}


def write_params(folder: Path, **sections: object) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, **sections}), encoding="utf-8")
    return path


def test_one_deployment_per_category_from_the_schedule_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLCF_CPU_POOL", raising=False)
    schedule = {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "crons": {"breakfast_box": "30 4 * * 1"}}
    path = write_params(tmp_path, schedule=schedule)
    specs = plan_deployments(path)
    assert [(s.full_name, s.cron, s.timezone, s.work_pool) for s in specs] == [
        ("glcf-category/retrain-pushpins", "0 3 * * *", "Europe/Berlin", "glcf-cpu"),
        ("glcf-category/retrain-breakfast_box", "30 4 * * 1", "Europe/Berlin", "glcf-cpu"),
    ]
    assert specs[0].parameters == {
        "category": "pushpins",
        "params_file": "params.yaml",
        "dvc_pull": True,
        "dvc_commit": True,
    }
    assert specs[0].project_root == tmp_path.resolve()


def test_command_line_overrides_and_pools_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLCF_GPU_POOL", "gpu-a100")
    path = write_params(tmp_path, schedule={"crons": {"pushpins": "5 5 * * *"}})
    (spec,) = plan_deployments(path, categories=["pushpins"], cron="0 1 * * 0", gpu=True)
    assert (spec.cron, spec.timezone, spec.work_pool) == ("0 1 * * 0", "UTC", "gpu-a100")
    assert "gpu" in spec.tags
    (spec,) = plan_deployments(path, categories=["pushpins"], work_pool="other")
    assert (spec.cron, spec.work_pool) == ("5 5 * * *", "other")  # the per-category cron of the file


def test_defaults_without_a_schedule_section(tmp_path: Path) -> None:
    params, schedule = load_schedule(write_params(tmp_path))
    assert params.data.categories == ("pushpins", "breakfast_box")
    assert (schedule.cron, schedule.timezone, schedule.crons, schedule.gpu) == ("0 2 * * *", "UTC", {}, False)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "0 2 * *"}, r"schedule\.cron: must be a cron expression of five fields"),
        ({"cron": "0 24 * * *"}, r"schedule\.cron: invalid cron expression '0 24 \* \* \*'"),
        ({"timezone": "Mars/Olympus"}, r"schedule\.timezone: unknown time zone 'Mars/Olympus'"),
        ({"crons": {"juice_bottle": "0 2 * * *"}}, r"schedule\.crons\.juice_bottle: not a category"),
        ({"every": "day"}, r"schedule\.every: unknown key"),
        ({"gpu": "yes"}, r"schedule\.gpu"),
    ],
)
def test_bad_schedules_name_the_key(tmp_path: Path, schedule: dict, message: str) -> None:
    path = write_params(tmp_path, schedule=schedule)
    with pytest.raises(ValueError, match=message) as info:
        plan_deployments(path)
    assert str(path) in str(info.value)


def test_bad_overrides_and_categories(tmp_path: Path) -> None:
    path = write_params(tmp_path)
    with pytest.raises(ValueError, match=r"--cron: invalid cron expression"):
        plan_deployments(path, cron="61 * * * *")
    with pytest.raises(ValueError, match=r"--timezone: unknown time zone"):
        plan_deployments(path, timezone="Nowhere")
    with pytest.raises(ValueError, match=r"data\.categories: 'nope' is not a configured category"):
        plan_deployments(path, categories=["nope"])
    with pytest.raises(ValueError, match="parameter file not found"):
        plan_deployments(tmp_path / "missing.yaml")


def test_task_runner_takes_the_cluster_address_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    monkeypatch.setenv("GLCF_DASK_ADDRESS", "tcp://10.1.2.3:8786")
    runner = task_runner("dask")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address == "tcp://10.1.2.3:8786"
    assert task_runner("dask", dask_address="tcp://10.9.9.9:8786").address == "tcp://10.9.9.9:8786"
    monkeypatch.delenv("GLCF_DASK_ADDRESS")
    local = task_runner("dask", max_workers=2)
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 2, "threads_per_worker": 1}
    assert isinstance(task_runner("threads", 3), ThreadPoolTaskRunner)
    with pytest.raises(ValueError, match="threads, dask or ray"):
        task_runner("spark")
