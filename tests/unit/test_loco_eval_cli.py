"""``glcf loco-eval`` run as a real subprocess on a generated LOCO tree with .tiff and .npy maps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from data_trees import H, W, make_loco

from glcf.data import load_mask, read_category

GLCF = str(Path(sys.executable).parent / "glcf")


@pytest.fixture
def loco_maps(tmp_path):
    """Maps that find every defect (1 on the union, 0 elsewhere) except structural 001, which is all 0.

    Good maps are written at half resolution (12x16, zeros) so that they must be resized.
    """
    make_loco(tmp_path / "data")
    data = read_category(tmp_path / "data", "box", "loco")
    maps_dir = tmp_path / "maps"
    for s in data.test:
        folder = maps_dir / "box" / "test" / s.anomaly_type
        folder.mkdir(parents=True, exist_ok=True)
        if s.anomaly_type == "good":
            tifffile.imwrite(folder / f"{s.stem}.tiff", np.zeros((H // 2, W // 2), np.float32))
        elif s.anomaly_type == "structural_anomalies":
            m = load_mask(s).astype(np.float32) if s.stem == "000" else np.zeros((H, W), np.float32)
            np.save(folder / f"{s.stem}.npy", m)
        else:
            tifffile.imwrite(folder / f"{s.stem}.tiff", load_mask(s).astype(np.float32))
    return tmp_path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GLCF, "loco-eval", *args], capture_output=True, text=True, timeout=120, check=False)


def _run_in_process(*args: str):
    """The same Typer app in this process (the error paths; spares a ~5 s interpreter start each)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    return CliRunner().invoke(app, ["loco-eval", *args])


def test_loco_eval_values_worked_out_by_hand(loco_maps):
    """Expected values (all negatives score 0; found defects score 1; structural 001 scores 0 everywhere).

    Image AUROC (map max): logical {1, 1} vs good {0, 0} -> 1; structural {1, 0} -> (2 + 0.5 + 0.5) / 4 = 0.75;
    mean 0.875; total: positives {1, 1, 1, 0} vs {0, 0}: (2 + 2 + 2 + 1) / 8 = 0.875.
    sPRO logical: all 3 defects at score 1 above every negative -> 1 at FPR 0 -> 1.0 at every limit.
    sPRO structural: curve (0,0) (0,1/2) (1,1): up to 0.05, y(0.05) = 0.525 -> (0.5 + 0.525) / 2 = 0.5125.
    sPRO total: 4 of 5 defects at FPR 0 -> (0, 0.8) then (1, 1): y(0.05) = 0.81 -> 0.805.
    Pixel AUROC: positives 260 at 1 and 40 (structural 001) tied with all negatives at 0:
    (260 + 40 * 0.5) / 300 = 0.933333.
    """
    out = loco_maps / "metrics.json"
    proc = _run(
        "--anomaly-maps-dir",
        str(loco_maps / "maps"),
        "--dataset-base-dir",
        str(loco_maps / "data"),
        "--category",
        "box",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == result
    auroc = result["classification"]["auc_roc"]
    assert auroc["logical_anomalies"] == pytest.approx(1.0)
    assert auroc["structural_anomalies"] == pytest.approx(0.75)
    assert auroc["mean"] == pytest.approx(0.875)
    assert auroc["total"] == pytest.approx(0.875)
    spro = result["localization"]["auc_spro"]
    assert spro["logical_anomalies"]["0.05"] == pytest.approx(1.0)
    assert spro["structural_anomalies"]["0.05"] == pytest.approx(0.5125)
    assert spro["structural_anomalies"]["1.0"] == pytest.approx(0.75)  # (0.5 + 1) / 2
    assert spro["mean"]["0.05"] == pytest.approx((1.0 + 0.5125) / 2)
    assert spro["total"]["0.05"] == pytest.approx(0.805)
    assert set(spro["total"]) == {"0.01", "0.05", "0.1", "0.3", "1.0"}
    assert result["localization"]["pixel_auroc"] == pytest.approx(280 / 300)
    assert result["n_defects"] == {"logical_anomalies": 3, "structural_anomalies": 2, "total": 5}
    assert result["resized_maps"] == 2
    assert "2 of 6 anomaly maps were resized" in proc.stderr
    assert result["summary"]["spro_0.05_mean"] == pytest.approx(0.75625)


def test_missing_map_is_an_error_naming_the_file(loco_maps):
    (loco_maps / "maps" / "box" / "test" / "good" / "001.tiff").unlink()
    res = _run_in_process(
        "--anomaly-maps-dir",
        str(loco_maps / "maps"),
        "--dataset-base-dir",
        str(loco_maps / "data"),
        "--category",
        "box",
    )
    assert res.exit_code == 1
    assert "missing anomaly map" in res.stderr
    assert str(Path("box", "test", "good", "001.tiff")) in res.stderr


def test_no_resize_rejects_maps_of_another_size(loco_maps):
    res = _run_in_process(
        "--anomaly-maps-dir",
        str(loco_maps / "maps"),
        "--dataset-base-dir",
        str(loco_maps / "data"),
        "--category",
        "box",
        "--no-resize",
    )
    assert res.exit_code == 1
    assert "good/000.tiff: map size 16x12 differs from the image size 32x24" in res.stderr
