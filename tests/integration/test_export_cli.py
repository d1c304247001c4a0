"""``glcf export`` and ``glcf predict --model`` on the tiny project (real CLI processes, real MLflow store)."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from pipeline_project import CATEGORY, TinyProject, shared_tiny_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# onnxruntime alone, in a clean process: no glcf, torch or MLflow
CLEAN_RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    size = int(json.loads(session.get_modelmeta().custom_metadata_map["glcf"])["image_size"])
    out = {}
    for batch in (1, 3):
        images = np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        score, amap, _, _ = session.run(None, {"images": images})
        out[batch] = [list(score.shape), list(amap.shape), bool(np.isfinite(score).all())]
    print(json.dumps({"out": out, "modules": sorted(m for m in ("torch", "glcf", "mlflow") if m in sys.modules)}))
    """
)


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_export_runs_alone_and_predicts_as_the_registered_model(tiny_project: TinyProject, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    tiny_project.run("glcf", "export", "--model-dir", f"models/{CATEGORY}", "--format", "onnx", "--out", str(out))
    script = tmp_path / "clean.py"
    script.write_text(CLEAN_RUN)
    clean = json.loads(tiny_project.run(sys.executable, "-I", str(script), str(out)).stdout)
    size = 64
    assert clean["out"] == {"1": [[1], [1, size, size], True], "3": [[3], [3, size, size], True]}
    assert clean["modules"] == []

    test = tiny_project.root / "data" / "raw" / CATEGORY / "test"
    files = [str(p) for p in sorted(test.glob("*/*.png"))[:6]]
    exported = _records(tiny_project.run("glcf", "predict", "--model", str(out), "--json", *files).stdout)
    registered = _records(tiny_project.run("glcf", "predict", "--category", CATEGORY, "--json", *files).stdout)
    assert [r["path"] for r in exported] == files
    for got, want in zip(exported, registered, strict=True):
        assert got["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-4)
        assert got["is_anomaly"] == want["is_anomaly"]
        assert got["threshold"] == want["threshold"]

    wrong = tiny_project.run("glcf", "predict", "--model", str(tmp_path / "x.pt"), files[0], check=False)
    assert wrong.returncode == 2
    assert "x.pt: not an exported model" in wrong.stderr
    both = tiny_project.run("glcf", "export", "--out", str(out), check=False)
    assert both.returncode == 2
    assert "give either --model-dir or --category" in both.stderr


def test_the_register_stage_ships_each_new_version_as_onnx(tiny_project: TinyProject, tmp_path: Path) -> None:
    """``register.export_formats``: the new version carries its own ONNX file, which the onnx backend serves.

    Version 1 is exported first: version 2 is registered in the same training run, and must not be
    given version 1's file.
    """
    project = tiny_project.clone(tmp_path / "project")
    cache = {"GLCF_CACHE": str(tmp_path / "cache")}
    project.run("glcf", "export", "--category", CATEGORY, "--version", "1", "--out", str(tmp_path / "v1.onnx"))
    project.set_params({"register.export_formats": ["onnx"]})
    proc = project.run("dvc", "repro", **cache)
    ran = re.findall(r"Running stage '([^']+)'", proc.stdout)
    assert ran == [f"{stage}@{CATEGORY}" for stage in ("data", "register", "promote")]
    record = json.loads((project.root / "reports" / CATEGORY / "registration.json").read_text())
    version = record["version"]
    assert version == "2"
    assert record["exports"] == [f"export/v{version}/model.onnx"]
    assert f"version {version} logged with export/v{version}/model.onnx" in proc.stdout + proc.stderr
    logged = project.client().list_artifacts(record["run_id"], f"export/v{version}")
    assert [(a.path, a.file_size > 0) for a in logged] == [(f"export/v{version}/model.onnx", True)]

    test = project.root / "data" / "raw" / CATEGORY / "test"
    files = [str(p) for p in sorted(test.glob("*/*.png"))[:4]]
    predict = ("glcf", "predict", "--category", CATEGORY, "--alias", "challenger", "--json", *files)
    exported = _records(project.run(*predict, "--backend", "onnx", **cache).stdout)
    registered = _records(project.run(*predict).stdout)
    assert [r["model_version"] for r in exported] == [version] * len(files)  # from the file's own metadata
    for got, want in zip(exported, registered, strict=True):
        assert got["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-4)
        assert got["is_anomaly"] == want["is_anomaly"]
    assert len(list((tmp_path / "cache").rglob("model.onnx"))) == 1
