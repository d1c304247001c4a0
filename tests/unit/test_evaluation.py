"""``evaluate_predictions``: metrics.json, the per-image CSV and the PNG plots for each layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from data_trees import H, W, make_folder, make_loco, make_mvtec
from PIL import Image

from glcf.data import load_mask, read_category
from glcf.evaluation import evaluate_predictions
from glcf.metrics import calibrate_threshold


def _assert_real_png(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width > 200
        assert img.height > 200
        arr = np.asarray(img.convert("L"), dtype=float)
    assert arr.std() > 5  # not a blank canvas


def test_loco_report_values_and_files(tmp_path):
    """Test order: good 000, 001; logical 000, 001; structural 000, 001.

    Model scores good {0.1, 0.2}, logical {0.3, 0.15}, structural {0.5, 0.05}:
      logical: 0.3 beats 2, 0.15 beats 1 -> 3/4; structural: 0.5 beats 2, 0.05 none -> 1/2; mean 0.625; total 5/8.
    Maps: 1 on the union of each image's PNGs except structural 001 (all 0), 0 elsewhere -> the sPRO values of
    the loco-eval hand case: logical 1.0, structural 0.5125, total 0.805 at FPR 0.05; map-max AUROC structural 0.75.
    Threshold 0.18: decisions good [0, 1], logical [1, 0], structural [1, 0] -> TP 2, FP 1, FN 2:
      precision 2/3, recall 1/2.
    """
    make_loco(tmp_path / "data")
    data = read_category(tmp_path / "data", "box", "loco")
    assert [s.anomaly_type for s in data.test] == ["good"] * 2 + ["logical_anomalies"] * 2 + [
        "structural_anomalies"
    ] * 2
    scores = [0.1, 0.2, 0.3, 0.15, 0.5, 0.05]
    maps = [load_mask(s).astype(np.float32) for s in data.test]
    maps[5][:] = 0.0
    thr = calibrate_threshold([0.1, 0.18, 0.18], quantile=1.0)
    res = evaluate_predictions(data, scores, maps, tmp_path / "out", threshold=thr, score_name="std")
    m = json.loads(res.metrics_path.read_text())
    assert m == res.metrics
    assert m["image_score"] == "std"
    assert m["image_auroc"] == pytest.approx(
        {"total": 5 / 8, "logical_anomalies": 0.75, "structural_anomalies": 0.5, "mean": 0.625}
    )
    assert m["image_auroc_map_max"]["structural_anomalies"] == pytest.approx(0.75)
    assert m["spro"]["logical_anomalies"]["0.05"] == pytest.approx(1.0)
    assert m["spro"]["structural_anomalies"]["0.05"] == pytest.approx(0.5125)
    assert m["spro"]["total"]["0.05"] == pytest.approx(0.805)
    assert m["spro"]["mean"]["0.05"] == pytest.approx(0.75625)
    assert m["pixel_auroc"] == pytest.approx(280 / 300)
    assert m["threshold"]["value"] == pytest.approx(0.18)
    total = m["classification"]["total"]
    assert (total["tp"], total["fp"], total["fn"], total["tn"]) == (2, 1, 2, 1)
    assert total["precision"] == pytest.approx(2 / 3)
    assert total["recall"] == pytest.approx(0.5)
    assert m["summary"]["spro_0.05_mean"] == pytest.approx(0.75625)
    with res.csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["type"] for r in rows] == [s.anomaly_type for s in data.test]
    assert [int(r["decision"]) for r in rows] == [0, 1, 1, 0, 1, 0]
    assert float(rows[4]["score"]) == 0.5
    assert float(rows[2]["map_max"]) == 1.0
    assert set(res.plots) == {"roc", "score_histogram", "spro_curves", "gallery"}
    for path in res.plots.values():
        _assert_real_png(path)


def test_mvtec_report_with_model_size_maps(tmp_path):
    """Maps given as one [N, 16, 16] array (model size) are resized to 32x24 for PRO and pixel AUROC."""
    make_mvtec(tmp_path / "data")
    data = read_category(tmp_path / "data", "widget", "mvtec")
    maps = np.zeros((len(data.test), 16, 16), np.float32)
    for i, s in enumerate(data.test):
        if s.label:
            small = Image.fromarray(load_mask(s).astype(np.uint8) * 255).resize((16, 16), Image.Resampling.NEAREST)
            maps[i] = np.asarray(small) / 255.0
    scores = maps.reshape(len(maps), -1).std(axis=1)
    res = evaluate_predictions(data, scores, maps, tmp_path / "out", plots=False)
    m = res.metrics
    assert set(m["pro"]) == {"crack", "scratch", "total"}
    assert set(m["pro"]["total"]) == {"0.3"}
    assert m["pro"]["total"]["0.3"] > 0.8  # near-perfect maps, blurred only by the resize
    assert m["pixel_auroc"] > 0.95
    assert m["n_regions"] == {"crack": 2, "scratch": 2, "total": 4}
    assert m["image_auroc"]["total"] == 1.0
    assert "spro" not in m
    assert res.plots == {}
    with pytest.raises(ValueError, match="expected 6 maps"):
        evaluate_predictions(data, scores, maps[:5], tmp_path / "out2")
    with pytest.raises(ValueError, match="expected 6 scores"):
        evaluate_predictions(data, scores[:5], maps, tmp_path / "out2")


def test_folder_layout_image_level_only(tmp_path):
    make_folder(tmp_path / "data")
    data = read_category(tmp_path / "data", "OCT", "folder")
    labels = np.array([s.label for s in data.test])
    scores = labels + np.linspace(0, 0.5, len(labels))
    maps = [np.full((H, W), sc, np.float32) for sc in scores]
    res = evaluate_predictions(data, scores, maps, tmp_path / "out", threshold=0.9, extra_scores={"local": -scores})
    m = res.metrics
    assert m["image_auroc"] == {"total": 1.0, "CNV": 1.0, "DME": 1.0}
    assert m["image_auroc_local"]["total"] == 0.0
    assert "pixel_auroc" not in m
    assert "pro" not in m
    assert m["classification"]["total"]["f1"] == 1.0
    assert set(res.plots) == {"roc", "score_histogram", "gallery"}
    for path in res.plots.values():
        _assert_real_png(path)
    header = res.csv_path.read_text().splitlines()[0]
    assert header == "path,label,type,defect,score,map_max,score_local,decision"


def test_evaluate_command_with_tiny_checkpoint_and_full_export(tmp_path):
    """``glcf evaluate`` end to end on a random-init tiny model: calibration on validation/good, then a full export."""
    import torch
    from typer.testing import CliRunner

    from glcf.model import build_glcf
    from glcf.model.checkpoint import export_full_model, save_checkpoint
    from glcf.model.stats import NormStats
    from glcf.presets import preset
    from pipelines.cli import app

    torch.manual_seed(0)
    make_loco(tmp_path / "data")
    model = build_glcf(preset("tiny"))
    ckpt = save_checkpoint(tmp_path / "model.pt", model, epoch=1)
    args = ["evaluate", "--checkpoint", str(ckpt), "--data-root", str(tmp_path / "data"), "--category", "box"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r1"), "--format", "loco", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert m["threshold"]["n_normal"] == 2  # validation/good, never test images
    assert set(m["spro"]) == {"logical_anomalies", "structural_anomalies", "total", "mean"}
    assert 0.0 <= m["pixel_auroc"] <= 1.0
    assert "image_auroc_local" in m
    assert "image_auroc_map_max" in m
    rows = (tmp_path / "r1" / "per_image.csv").read_text().splitlines()
    assert len(rows) == 7
    assert rows[1].startswith("box/test/")  # relative to the dataset root: the same file in every clone
    assert {p.name for p in (tmp_path / "r1" / "plots").iterdir()} == {
        "roc.png",
        "score_histogram.png",
        "spro_curves.png",
        "gallery.png",
    }
    # a full export carries its statistics and threshold: nothing is recalibrated
    stats = NormStats.from_dict(json.loads(json.dumps(_stats_of(tmp_path, model))))
    export = export_full_model(tmp_path / "full.pt", model, stats, threshold=123.0)
    args[2] = str(export)
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r2"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    m2 = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert m2["threshold"] == {"value": 123.0}
    assert m2["classification"]["total"]["tp"] + m2["classification"]["total"]["fp"] == 0
    assert m2["image_auroc"] == pytest.approx(m["image_auroc"])
    bad = CliRunner().invoke(app, [*args[:2], str(tmp_path / "nothing.pt"), *args[3:], "--out", str(tmp_path / "r3")])
    assert bad.exit_code == 1
    assert "nothing.pt" in bad.stderr


def _stats_of(tmp_path, model):
    from glcf.data.dataset import ImageDataset
    from glcf.inference import calibrate

    data = read_category(tmp_path / "data", "box", "loco")
    held_out = ImageDataset(data.validation, model.config.image_size, model.mean, model.std)
    return calibrate(model, held_out, device="cpu", progress=False).stats.to_dict()


def test_loco_per_defect_type_aurocs_and_the_sidecar(tmp_path):
    """Same tree and scores as above. Defects per test image: good, good, extra_part+missing_part (two PNGs),
    missing_part, scratch, scratch. Against the good scores {0.1, 0.2}: extra+missing 0.3 -> 1.0;
    missing_part 0.15 -> 0.5; scratch {0.5, 0.05} -> 0.5. The local score is the negated model score."""
    make_loco(tmp_path / "data")
    sidecar = [
        {"defect_name": "missing_part", "group": "logical", "relational": True},
        {"defect_name": "scratch", "group": "structural", "relational": False},
    ]
    (tmp_path / "data" / "box" / "defect_types.json").write_text(json.dumps(sidecar))
    data = read_category(tmp_path / "data", "box", "loco")
    scores = np.array([0.1, 0.2, 0.3, 0.15, 0.5, 0.05])
    res = evaluate_predictions(data, scores, None, tmp_path / "out", extra_scores={"local": -scores}, plots=False)
    m = res.metrics
    assert m["defect_types"] == {
        "extra_part+missing_part": {"group": "logical", "relational": False},
        "missing_part": {"group": "logical", "relational": True},
        "scratch": {"group": "structural", "relational": False},
    }
    assert m["image_auroc_defect"]["missing_part"] == pytest.approx({"model": 0.5, "local": 0.5})
    s = m["summary"]
    assert s["image_auroc_defect_extra_part_missing_part"] == 1.0  # "+" is no MLflow metric character
    assert s["image_auroc_local_defect_extra_part_missing_part"] == 0.0
    assert s["image_auroc_defect_scratch"] == pytest.approx(0.5)
    with res.csv_path.open() as f:
        assert [r["defect"] for r in csv.DictReader(f)][2:4] == ["extra_part+missing_part", "missing_part"]


def test_a_bad_defect_types_sidecar_names_the_file_and_field(tmp_path):
    from glcf.data import DatasetLayoutError
    from glcf.data.defects import read_defect_types

    make_loco(tmp_path / "data")
    path = tmp_path / "data" / "box" / "defect_types.json"
    path.write_text(json.dumps([{"defect_name": "scratch", "group": "cosmetic"}]))
    with pytest.raises(DatasetLayoutError, match=r"defect_types.json\[0\].group: must be one of"):
        read_defect_types(path.parent)
    path.write_text("{not json")
    with pytest.raises(DatasetLayoutError, match=r"defect_types\.json: not readable JSON"):
        read_defect_types(path.parent)
