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


def test_the_flow_commits_only_what_its_code_and_parameters_produced(tmp_path: Path) -> None:
    """The fingerprint the flow takes before it runs changes with any code, dvc.yaml or parameter edit."""
    from pipelines.flows.category import inputs_fingerprint

    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: [a]\n    do:\n      cmd: glcf stage train ${item}\n"
        "      deps:\n        - data/${item}\n        - glcf\n        - pipelines\n"
    )
    for folder in ("glcf", "pipelines", "data/a"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "glcf" / "smoothing.py").write_text("SIGMA = 4\n")
    (tmp_path / "pipelines" / "stage.py").write_text("pass\n")
    params = tmp_path / "params.yaml"
    params.write_text("train: {epochs: 30}\n")
    before = inputs_fingerprint(tmp_path, str(params))
    (tmp_path / "data" / "a" / "new.png").write_bytes(b"data is the stages' own business")
    (tmp_path / "glcf" / "__pycache__").mkdir()
    (tmp_path / "glcf" / "__pycache__" / "smoothing.pyc").write_bytes(b"compiled")
    assert inputs_fingerprint(tmp_path, str(params)) == before
    for path, text in ((tmp_path / "glcf" / "smoothing.py", "SIGMA = 3\n"), (params, "train: {epochs: 31}\n")):
        old = path.read_text()
        path.write_text(text)
        assert inputs_fingerprint(tmp_path, str(params)) != before, path.name
        path.write_text(old)
    assert inputs_fingerprint(tmp_path, str(params)) == before


def test_the_registered_signature_declares_the_answer_rows() -> None:
    """The served model's output schema names exactly the columns each answer row has."""
    import numpy as np

    from glcf.serving.detection import Detection
    from glcf.serving.requests import answer_rows
    from pipelines.stages.register import signature

    det = Detection(1.0, True, 0.5, 0.2, 0.9, np.zeros((2, 2), np.float32))
    (row,) = answer_rows([det], "3", "pushpins", return_map=True)
    outputs = signature().outputs
    assert set(outputs.input_names()) == set(row)
    assert [c.name for c in outputs.inputs if not c.required] == ["anomaly_map"]


def test_stage_outputs_get_the_permissions_of_ordinary_files(tmp_path: Path) -> None:
    """Reports are written atomically through a temporary file, yet end up as open() would create them."""
    from pipelines.io import write_json

    plain = tmp_path / "plain.json"
    plain.write_text("{}\n")
    write_json(tmp_path / "reports" / "metrics.json", {"auroc": 1.0})
    assert (tmp_path / "reports" / "metrics.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
