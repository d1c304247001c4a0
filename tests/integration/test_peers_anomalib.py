"""anomalib's PatchCore and PaDiM on a tiny generated category: GLCF's weights, kept layers, our metrics, MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("anomalib", reason="the 'peers' extra is not installed")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CATEGORY = "pushpins"
SIZE = 64


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glcf.synth.config import GeneratorConfig, SplitCounts
    from glcf.synth.generate import generate

    root = tmp_path_factory.mktemp("peers_data")
    counts = SplitCounts(train=6, validation=3, test_good=3, test_logical=3, test_structural=3)
    generate(root, GeneratorConfig(seed=1, image_size=(64, 64), categories=(CATEGORY,), counts=counts), progress=False)
    return root


def test_both_peers_fit_and_score_with_the_layers_asked(data_root: Path) -> None:
    import torch

    from glcf.data import read_category
    from pipelines.peers import PEERS, fit_and_score

    torch.set_num_threads(1)
    data = read_category(data_root, CATEGORY, "loco")
    n = len(data.test)
    for name in ("patchcore", "padim"):
        result = fit_and_score(name, data, SIZE, threads=1)
        assert tuple(layer.name for layer in result.layers) == PEERS[name].layers
        strides = {"blocks.1": 4, "blocks.2": 8, "blocks.4": 16}
        channels = {"blocks.1": 24, "blocks.2": 40, "blocks.4": 112}
        assert [(la.stride, la.channels) for la in result.layers] == [
            (strides[la.name], channels[la.name]) for la in result.layers
        ]
        assert result.weights == "offline-package"
        assert result.image_scores.shape == (n,)
        assert np.isfinite(result.image_scores).all()
        assert result.anomaly_maps.shape == (n, SIZE, SIZE)
        assert np.isfinite(result.anomaly_maps).all()
        assert result.validation_scores.shape == (len(data.validation),)
        assert result.fit_seconds > 0
        assert result.images_per_second > 0
        assert result.threads == 1
        assert result.n_train == len(data.train)


def test_a_peer_fit_is_reproducible_and_leaves_numpy_as_it_was(data_root: Path) -> None:
    """PatchCore's coreset projection draws from numpy's global generator: seeded per fit, restored after."""
    import torch

    from glcf.data import read_category
    from pipelines.peers import fit_and_score

    torch.set_num_threads(1)
    data = read_category(data_root, CATEGORY, "loco")
    np.random.seed(123)  # noqa: NPY002 - the global state the fit must not change
    expected_next = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    first = fit_and_score("patchcore", data, SIZE, threads=1, seed=0)
    assert np.random.random() == expected_next  # noqa: NPY002
    second = fit_and_score("patchcore", data, SIZE, threads=1, seed=0)
    np.testing.assert_array_equal(first.image_scores, second.image_scores)
    np.testing.assert_array_equal(first.anomaly_maps, second.anomaly_maps)


def test_peer_job_logs_a_child_run_with_our_metrics(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    import mlflow
    from mlflow import MlflowClient

    from pipelines import tracking
    from pipelines.benchmark.run import ensure_prepared
    from pipelines.params import load_params
    from pipelines.peers import PeerJob, run_peer_job

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"] |= {"root": str(data_root), "categories": [CATEGORY]}
    raw["model"]["image_size"] = SIZE
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(params_file)
    tracking.configure_tracking(params.root)
    ensure_prepared(params, CATEGORY, progress=False)
    experiment = tracking.ensure_experiment(params.experiment_name)
    parent = MlflowClient().create_run(experiment, run_name="parent").info.run_id

    result = run_peer_job(PeerJob("padim", CATEGORY, str(params_file), parent, threads=1))

    assert result.kind == "peer"
    assert result.image_size == SIZE
    assert result.note == "blocks.1/4+blocks.2/8+blocks.4/16"
    assert 0.0 <= result.summary["image_auroc_total"] <= 1.0
    assert "pixel_auroc" in result.summary
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["glcf.variant"] == "padim"
    assert run.data.params["layers"] == "blocks.1,blocks.2,blocks.4"
    assert run.data.params["image_size"] == str(SIZE)
    assert run.data.params["weights"] == "offline-package"
    assert run.data.metrics["image_auroc_total"] == pytest.approx(result.summary["image_auroc_total"])
    assert run.data.metrics["images_per_second"] > 0
    assert (tmp_path / "reports" / "benchmark" / "peer-padim" / CATEGORY / "metrics.json").exists()
    mlflow.set_tracking_uri(None)
    shutil.rmtree(tmp_path / "mlruns", ignore_errors=True)
