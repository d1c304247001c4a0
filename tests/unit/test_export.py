"""glcf export: the exported graph (ONNX with onnxruntime, OpenVINO) scores as the in-process detector does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glcf.export.graph import DetectorGraph, export_metadata, export_onnx, onnx_to_openvino
from glcf.export.run import ExportedDetector, read_metadata
from glcf.inference import calibrate
from glcf.inference.detector import Detector
from glcf.inference.scoring import AnomalyScorer
from glcf.model import build_glcf
from glcf.model.checkpoint import export_full_model
from glcf.presets import preset

SIZE = 64


def images(n: int, seed: int) -> np.ndarray:
    """Smooth random scenes with a few bright blobs: ``uint8 [n, SIZE, SIZE, 3]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        img = np.full((SIZE, SIZE, 3), rng.uniform(40, 90, 3))
        for _ in range(rng.integers(2, 5)):
            cx, cy, r = [*rng.uniform(8, SIZE - 8, 2).tolist(), rng.uniform(4, 10)]
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(120, 255, 3)
        out[i] = np.clip(img + rng.normal(0, 4, img.shape), 0, 255)
    return out


def assert_scores_close(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Within 1e-4 relative; near zero, 1e-4 of one unit (the fused scores are z-scores, unit scale)."""
    np.testing.assert_array_less(np.abs(got - want), 1e-4 * np.maximum(np.abs(want), 1.0), err_msg=name)


def normalised(batch: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
    from glcf.data.transforms import normalize

    return normalize(batch, model.mean, model.std)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model with the default's scoring (all three memories, calibrated fusion, both layout grids,
    the stride-8 one from the up-sampled input), exported once."""
    torch.manual_seed(0)
    model = build_glcf(preset("tiny", scoring=preset("default").scoring.__dict__)).eval()
    assert model.memory.layout_taps == ((1,), (2,))
    assert model.memory_reads_images
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.fill_memory(normalised(b, model) for b in np.split(images(12, 1), 3))
    held_out = list(normalised(images(8, 2), model))
    calibration = calibrate(model, held_out, batch_size=4, device="cpu", progress=False)
    stats, scores = calibration.stats, calibration.image_scores
    threshold = float(np.median(scores))
    tmp = tmp_path_factory.mktemp("export")
    meta = export_metadata(model, threshold, {"category": "blobs", "version": "7"})
    graph = DetectorGraph(model, AnomalyScorer(model.config.scoring, stats, SIZE))
    onnx_file = export_onnx(graph, tmp / "m.onnx", meta)
    bundle = export_full_model(tmp / "bundle.pt", model, stats, threshold)
    return {
        "graph": graph,
        "threshold": threshold,
        "onnx": onnx_file,
        "openvino": onnx_to_openvino(onnx_file, tmp / "m.xml"),
        "bundle": bundle,
    }


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("batch", [1, 8])
def test_exported_scores_maps_and_decisions_equal_torch(exported: dict, fmt: str, batch: int) -> None:
    test = images(16, 3)
    runner = ExportedDetector(exported[fmt], threads=1)
    for start in range(0, len(test), batch):
        chunk = test[start : start + batch]
        with torch.no_grad():
            ref = [t.numpy() for t in exported["graph"](torch.from_numpy(chunk))]
        got = runner.run(chunk)
        for name, r, g in zip(("score", "map", "local", "global"), ref, got, strict=True):
            assert g.shape == r.shape, name
            if name == "map":
                np.testing.assert_allclose(g, r, rtol=0, atol=1e-3 * max(1.0, float(np.abs(r).max())))
            else:
                assert_scores_close(g, r, name)
        assert ((got[0] > exported["threshold"]) == (ref[0] > exported["threshold"])).all()


def test_in_process_graph_equals_the_detector(exported: dict) -> None:
    """The wrapped graph scores exactly as glcf.inference.detector.Detector (what serving and predict run)."""
    test = images(5, 4)
    detections = Detector(exported["bundle"]).score(list(test), return_maps=True, map_size="model")
    with torch.no_grad():
        scores, maps, _, glob = exported["graph"](torch.from_numpy(test))
    np.testing.assert_array_equal(scores.numpy(), [d.score for d in detections])
    np.testing.assert_array_equal(glob.numpy(), [d.global_score for d in detections])
    np.testing.assert_array_equal(maps.numpy(), np.stack([d.anomaly_map for d in detections]))


def test_exported_detector_gives_the_detectors_verdicts(exported: dict) -> None:
    """Images of other sizes, maps back at each image's size: the same Detection as the torch detector."""
    rng = np.random.default_rng(5)
    test = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((70, 90), (64, 64), (33, 120))]
    want = Detector(exported["bundle"]).score(test, return_maps=True)
    got = ExportedDetector(exported["onnx"], threads=1).score(test, return_maps=True)
    for w, g in zip(want, got, strict=True):
        assert g.is_anomaly == w.is_anomaly
        assert g.threshold == w.threshold
        assert_scores_close(np.array([g.score, g.local_score]), np.array([w.score, w.local_score]), "scores")
        assert g.anomaly_map.shape == w.anomaly_map.shape
        np.testing.assert_allclose(g.anomaly_map, w.anomaly_map, atol=1e-3 * float(np.abs(w.anomaly_map).max()))


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_metadata_travels_with_the_file(exported: dict, fmt: str) -> None:
    meta = read_metadata(exported[fmt])
    assert float(meta["threshold"]) == exported["threshold"]
    assert (meta["category"], meta["version"], meta["image_size"]) == ("blobs", "7", str(SIZE))
    assert '"layout_memory": true' in meta["scoring"]
    assert ExportedDetector(exported[fmt], threads=1).threshold == exported["threshold"]


def test_other_files_are_refused_with_their_name(exported: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"m\.pt: not an exported model"):
        ExportedDetector(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"gone\.onnx: no such file"):
        ExportedDetector(tmp_path / "gone.onnx")
    with pytest.raises(ValueError, match=r"\.xml"):
        onnx_to_openvino(exported["onnx"], tmp_path / "m.bin")


def _b64(image: np.ndarray, fmt: str = "PNG") -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_onnx_server_answers_as_the_pyfunc(exported: dict) -> None:
    """The onnxruntime server's answers and 4xx messages are those of the served pyfunc."""
    import json

    from pipelines.serving.onnx_server import Server

    limits = {"max_image_bytes": 300_000, "max_image_pixels": 1_000_000, "max_batch": 4}
    server = Server(ExportedDetector(exported["onnx"], threads=1), limits, "7", "blobs")
    test = images(3, 6)
    good = {"dataframe_split": {"columns": ["image"], "data": [[_b64(im)] for im in test]}}
    status, kind, text = server.invocations(json.dumps(good).encode(), "application/json")
    assert (status, kind) == (200, "application/json")
    rows = json.loads(text)["predictions"]
    want = Detector(exported["bundle"]).score(list(test))
    assert [r["model_version"] for r in rows] == ["7"] * 3
    assert [r["category"] for r in rows] == ["blobs"] * 3
    assert_scores_close(np.array([r["score"] for r in rows]), np.array([w.score for w in want]), "served")
    records = {"dataframe_records": [{"image": _b64(test[0])}], "params": {"return_map": True, "map_size": "model"}}
    status, _, text = server.invocations(json.dumps(records).encode(), "application/json")
    assert np.asarray(json.loads(text)["predictions"][0]["anomaly_map"]).shape == (SIZE, SIZE)
    one = _b64(test[0])
    cases = [
        (b'{"dataframe_split": {"columns": ["image"], ', "application/json", 400, "valid JSON"),
        (json.dumps({"dataframe_split": {"columns": ["img"], "data": [[one]]}}), "", 400, "missing inputs"),
        (json.dumps({"inputs": {"image": ["not base64!"]}}), "", 400, "not valid base64"),
        (json.dumps({"inputs": {"image": [""]}}), "", 400, "expected a non-empty base64 string"),
        (json.dumps({"inputs": {"image": [one] * 5}}), "", 400, "exceeds the limit of 4"),
        (json.dumps({"inputs": {"image": []}}), "", 400, "empty batch"),
        (json.dumps({"inputs": {"image": [one]}, "params": {"map_size": "huge"}}), "", 400, "map_size"),
        (b"image=abc", "text/plain", 415, "content types"),
    ]
    for body, content_type, code, phrase in cases:
        data = body if isinstance(body, bytes) else body.encode()
        status, _, text = server.invocations(data, content_type or "application/json")
        assert status == code, (phrase, text)
        assert phrase in text


def test_the_exported_path_imports_neither_torch_nor_mlflow(exported: dict) -> None:
    """glcf predict --model and the onnxruntime server load and score without torch or MLflow."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "import pipelines.serving.onnx_server, pipelines.predict\n"
        "from glcf.export.run import ExportedDetector\n"
        f"d = ExportedDetector({str(exported['onnx'])!r}, threads=1)\n"
        f"d.score([np.zeros((50, 70, 3), np.uint8)])\n"
        "print(json.dumps(sorted(m for m in ('torch', 'mlflow', 'timm', 'pandas') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_register_stage_refuses_a_format_it_cannot_export_before_registering(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the ``export`` extra, the stage fails in one line before it reads or registers anything."""
    import importlib.util

    from pipelines.params import parse_params
    from pipelines.stages.register import run_register

    find_spec = importlib.util.find_spec

    def without_openvino(name: str, *args: object) -> object:
        return None if name == "openvino" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_openvino)
    params = parse_params({"data": {"categories": ["a"]}, "register": {"export_formats": ["onnx", "openvino"]}})
    wanted = r"register.export_formats: onnx, openvino needs the optional extra 'export' \(missing: openvino\)"
    with pytest.raises(ValueError, match=wanted):
        run_register(params, params.category_paths("a", tmp_path))
    assert list(tmp_path.iterdir()) == []  # no file read or written: the prepared data does not even exist
