"""Scheduled retraining: ``glcf deploy`` on the local stack's Prefect server, one scheduled run with a real worker.

The run counts as scheduled because the Prefect server itself makes it from the deployment's cron schedule:
``POST /deployments/{id}/schedule`` is the server's own scheduling code (what its scheduler service runs, and
what a backfill uses) asked for a window that ended a minute ago, so it creates the auto-scheduled run of the
latest cron time in it (state Scheduled, tag ``auto-scheduled``, idempotency key ``scheduled <deployment>
<schedule> <time>``), which is due now. A ``prefect worker start --run-once`` process worker picks it up and
runs it in the project folder: ``dvc pull`` of the category's data from S3 (removed locally beforehand), the
stages, the registration as ``@challenger`` and the promotion review against the stack's MLflow server.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_project import TinyProject
from servers import LocalStack
from stack_project import drop_local_data, prefect_client, registry_state, secrets_of, stack_project

from pipelines.stages import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "sched"
CATEGORIES = ("pushpins", "breakfast_box")
CRON = "15 2 * * *"


@dataclass
class ScheduledRun:
    """What the module's one scheduled retraining left behind."""

    project: TinyProject
    pool: str
    deploy_output: dict[str, Any]
    flow_run: Any
    task_runs: list[Any]
    worker_output: str
    flow_logs: str
    timings: dict[str, float]


@pytest.fixture(scope="module")
def scheduled(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> ScheduledRun:
    project = stack_project(tmp_path_factory.mktemp("schedule"), local_stack, PREFIX, categories=CATEGORIES)
    pool = f"glcf-cpu-test-{uuid.uuid4().hex[:6]}"  # this session's own pool: the worker sees no other run
    deploy = project.timed("deploy", "glcf", "deploy", "--cron", CRON, "--pool", pool)
    output = json.loads(deploy.stdout)
    target = next(d for d in output["deployments"] if d["category"] == "pushpins")
    drop_local_data(project, "pushpins")  # the run must pull its data from the S3 remote

    api = local_stack.prefect_api_url
    with prefect_client(api) as client:
        now = dt.datetime.now(dt.UTC)
        window = {
            "start_time": (now - dt.timedelta(days=2)).isoformat(),
            "end_time": (now - dt.timedelta(minutes=1)).isoformat(),
        }
        client._client.post(f"/deployments/{target['id']}/schedule", json={**window, "min_runs": 1, "max_runs": 1})
        due = [r for r in deployment_runs(client, target["id"]) if r.expected_start_time <= now]
    assert len(due) == 1, due

    worker = project.timed(
        "worker", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once", "--limit", "1",
        timeout=900,
    )  # fmt: skip
    with prefect_client(api) as client:
        flow_run = client.read_flow_run(due[0].id)
        tasks = task_runs(client, flow_run.id)
        logs = "\n".join(log.message for log in flow_logs(client, flow_run.id))
    print(f"\nschedule test timings (s): {project.timings}")
    return ScheduledRun(
        project, pool, output, flow_run, tasks, worker.stdout + worker.stderr, logs, dict(project.timings)
    )


def deployment_runs(client: Any, deployment_id: str) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def task_runs(client: Any, flow_run_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def flow_logs(client: Any, flow_run_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)


def test_deploy_registers_one_cron_deployment_per_category(scheduled: ScheduledRun, local_stack: LocalStack) -> None:
    assert [d["category"] for d in scheduled.deploy_output["deployments"]] == list(CATEGORIES)
    with prefect_client(local_stack.prefect_api_url) as client:
        pool = client.read_work_pool(scheduled.pool)
        assert pool.type == "process"
        for category in CATEGORIES:
            dep = client.read_deployment_by_name(f"glcf-category/retrain-{category}")
            assert dep.parameters == {
                "category": category,
                "params_file": "params.yaml",
                "dvc_pull": True,
                "dvc_commit": True,
            }
            assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in dep.schedules] == [(CRON, "UTC", True)]
            assert dep.work_pool_name == scheduled.pool
            assert dep.entrypoint == "pipelines.flows.category.category_flow"
            # the project folder is the source: the worker changes into it, no git clone
            assert dep.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(scheduled.project.root)}}
            ]
            assert dep.global_concurrency_limit is not None
            assert dep.global_concurrency_limit.limit == 1
            assert f"category:{category}" in dep.tags


def test_scheduled_run_pulls_retrains_registers_and_reviews(scheduled: ScheduledRun) -> None:
    run = scheduled.flow_run
    assert run.auto_scheduled
    assert run.idempotency_key.startswith(f"scheduled {run.deployment_id} ")
    assert run.state.is_completed(), (run.state, scheduled.worker_output[-4000:])
    assert run.parameters == {
        "category": "pushpins",
        "params_file": "params.yaml",
        "dvc_pull": True,
        "dvc_commit": True,
    }
    names = {t.name.rsplit("-", 1)[0]: t for t in scheduled.task_runs}
    assert set(names) == {"dvc-pull", *STAGES, "dvc-commit"}
    assert names["dvc-commit"].start_time > names["promote"].start_time
    assert all(t.state.is_completed() for t in scheduled.task_runs)
    assert names["dvc-pull"].start_time < names["data"].start_time
    # the data came back from the remote (it was deleted, cache included, before the run)
    data = scheduled.project.root / "data" / "raw" / "pushpins"
    assert len(list((data / "train" / "good").iterdir())) == 8

    name = f"{PREFIX}-pushpins"
    versions, aliases, tags = registry_state(scheduled.project, name)
    assert versions == ["1"]
    assert aliases["challenger"] == "1"
    assert tags["1"]["glcf.promotion.decision"] == "promoted"  # first version above the tiny floors
    assert aliases["champion"] == "1"
    review = json.loads((scheduled.project.root / "reports" / "pushpins" / "promotion.json").read_text())
    assert review["challenger_version"] == "1"
    assert "pushpins: stage promote" in scheduled.flow_logs
    # the run recorded its outputs in dvc.lock: DVC agrees with what the scheduled run produced
    status = scheduled.project.run("dvc", "status", *(f"{s}@pushpins" for s in STAGES if s != "data")).stdout
    assert "changed" not in status, status


def test_scheduled_run_leaks_no_credential(scheduled: ScheduledRun) -> None:
    texts = {"worker output": scheduled.worker_output, "flow-run logs": scheduled.flow_logs}
    texts["deployment"] = json.dumps(scheduled.deploy_output)
    for where, text in texts.items():
        for name, value in secrets_of(scheduled.project).items():
            assert value not in text, f"{name} in the {where}"


def test_gpu_pool_limit_is_its_gpu_count(scheduled: ScheduledRun, local_stack: LocalStack) -> None:
    pool = f"glcf-gpu-test-{uuid.uuid4().hex[:6]}"
    args = ("glcf", "deploy", "--gpu", "--gpu-count", "2", "--pool", pool, "--categories", "pushpins", "--paused")
    out = json.loads(scheduled.project.run(*args).stdout)
    assert out["pool_concurrency_limit"] == 2
    scheduled.project.run(*args[:4], "3", *args[5:])  # a machine with more GPUs: the limit follows
    with prefect_client(local_stack.prefect_api_url) as client:
        assert client.read_work_pool(pool).concurrency_limit == 3
        dep = client.read_deployment_by_name("glcf-category/retrain-pushpins")
        assert dep.work_pool_name == pool
        assert "gpu" in dep.tags
        assert dep.paused


def test_bad_schedule_is_a_clear_error(scheduled: ScheduledRun, tmp_path: Path) -> None:
    proc = scheduled.project.run("glcf", "deploy", "--cron", "0 25 * * *", "--dry-run", check=False)
    assert proc.returncode == 2
    assert "--cron: invalid cron expression '0 25 * * *'" in proc.stderr
    proc = scheduled.project.run("glcf", "deploy", "--categories", "nope", "--dry-run", check=False)
    assert proc.returncode == 2
    assert "'nope' is not a configured category" in proc.stderr
