"""params.yaml parsing: defaults, overrides, and errors that name the file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_project_params_file_is_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.categories
    assert params.glcf.encoder.weights == "offline-package"
    assert params.experiment_name.startswith(params.register.experiment_prefix + "/")
    flat = params.flat()
    assert flat["model.bottleneck.layout"] == params.glcf.bottleneck.layout
    assert flat["train.epochs"] == params.glcf.train.epochs
    assert all(not k.startswith("model.train") for k in flat)


def test_project_params_hold_the_default_preset() -> None:
    """params.yaml spells out the ``default`` preset: the two must not drift apart."""
    from glcf.config import config_to_dict
    from glcf.presets import preset

    assert config_to_dict(load_params(ROOT / "params.yaml").glcf) == config_to_dict(preset("default"))


def test_overrides_and_preset(tmp_path: Path) -> None:
    path = write(tmp_path, {"data": {"categories": ["a"]}, "model": {"preset": "tiny"}, "train": {"epochs": 3}})
    params = load_params(path, overrides={"model.bottleneck.layout": "pgs", "data.root": "somewhere"})
    assert params.glcf.image_size == 64
    assert params.glcf.train.epochs == 3
    assert params.glcf.bottleneck.layout == "pgs"
    assert params.data.root == "somewhere"
    assert params.data.dataset_name == "somewhere"
    assert params.category_paths("a").checkpoint == tmp_path / "models" / "a" / "model.pt"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"data": {"categories": ["a"]}, "trian": {}}, "trian: unknown section"),
        ({"data": {"categories": []}}, "data.categories: must list at least one category"),
        ({"data": {"categories": ["a", "a"]}}, "data.categories: lists a category twice"),
        ({"data": {"categories": ["../x"]}}, "data.categories[0]"),
        ({"data": {"categories": ["a"], "format": "coco"}}, "data.format"),
        ({"data": {"categories": ["a"], "holdout_fraction": 1.5}}, "data.holdout_fraction"),
        ({"data": {"categories": ["a"]}, "train": {"lr": 0}}, "train.lr: must be a positive"),
        ({"data": {"categories": ["a"]}, "model": {"bottleneck": {"layout": "xyz"}}}, "model.bottleneck.layout"),
        ({"data": {"categories": ["a"]}, "model": {"preset": "huge"}}, "model.preset: unknown preset 'huge'"),
        ({"data": {"categories": ["a"]}, "loss": {"local_estimation": -1}}, "loss.local_estimation"),
        ({"data": {"categories": ["a"]}, "calibrate": {"threshold": {"quantile": 2}}}, "calibrate.threshold.quantile"),
        ({"data": {"categories": ["a"]}, "register": {"floors": {"x": "high"}}}, "register.floors.x"),
        ({"data": {"categories": ["a"]}, "serve": {"port": 70000}}, "serve.port"),
        ({"data": {"categories": ["a"]}, "paths": {"models": "/abs"}}, "paths.models"),
        ({"data": {"categories": ["a"]}, "evaluate": {"gallery": 3}}, "evaluate.gallery: unknown key"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, data: dict, needle: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="parameter file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_unknown_category_is_an_error(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {"data": {"categories": ["a"]}}))
    with pytest.raises(ParamsError, match="'b' is not a configured category"):
        params.category_paths("b")
