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


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"schedule": {"every": "day"}}, "schedule.every: unknown key (known: cron, crons, gpu, timezone)"),
        ({"schedule": {"gpu": "yes"}}, "schedule.gpu: must be true or false, got 'yes'"),
        ({"schedule": {"cron": 2}}, "schedule.cron: must be a string, got 2"),
        ({"schedule": {"crons": {"b": "0 2 * * *"}}}, "schedule.crons.b: not a category of data.categories (a)"),
        ({"schedule": ["0 2 * * *"]}, "schedule: must be a mapping, got list"),
        ({"serve": {"port": "5001"}}, "serve.port: must be an integer, got '5001'"),
        ({"serve": {"max_batch": True}}, "serve.max_batch: must be an integer, got True"),
        ({"register": {"floors": [0.9]}}, "register.floors: must be a mapping, got list"),
        ({"register": {"min_improvement": -1}}, "register.min_improvement: must be >= 0, got -1"),
        (
            {"register": {"export_formats": ["onnx", "tflite"]}},
            "register.export_formats[1]: must be one of onnx, openvino; got 'tflite'",
        ),
        ({"evaluate": {"max_fpr_limits": [0.1, 2]}}, "evaluate.max_fpr_limits[1]: must be <= 1, got 2"),
        ({"calibrate": {"threshold": {"k": float("nan")}}}, "calibrate.threshold.k: must be a finite number, got nan"),
        (
            {"calibrate": {"threshold": {"method": "median"}}},
            "calibrate.threshold.method: must be one of quantile, mean_std, gumbel; got 'median'",
        ),
        ({"model": {"scoring": {"alpha": -1}}}, "model.scoring.alpha: must be a non-negative finite number, got -1.0"),
        ({"model": {"scoring": {"alfa": 1}}}, "model.scoring.alfa: unknown key (known: alpha, beta, coreset_fraction,"),
        ({"model": ["tiny"]}, "model: must be a mapping, got list"),
    ],
)
def test_errors_are_one_line_naming_the_file_and_the_dotted_key(tmp_path: Path, data: dict, line: str) -> None:
    path = write(tmp_path, {"data": {"categories": ["a"]}, **data})
    with pytest.raises(ParamsError) as info:
        load_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {line}")
    assert "\n" not in message


def test_a_yaml_syntax_error_is_one_line_too(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  categories: [a\n  format: loco\n")
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    assert str(info.value).startswith(f"{bad}: not valid YAML: ")
    assert "\n" not in str(info.value)


def test_sections_built_in_code_are_checked_and_frozen() -> None:
    from pydantic import ValidationError

    from pipelines.params import RegisterParams, ServeParams

    with pytest.raises(ValidationError, match="approval"):
        RegisterParams(approval="sometimes")  # type: ignore[arg-type]
    serve = ServeParams(port=8080)
    assert serve.limits() == {"max_image_bytes": 20_000_000, "max_image_pixels": 40_000_000, "max_batch": 32}
    with pytest.raises(ValidationError, match="frozen"):
        serve.port = 1  # type: ignore[misc]


def test_the_model_sections_take_their_defaults_from_the_model_configuration(tmp_path: Path) -> None:
    """``model``, ``loss`` and ``train`` have no defaults of their own: a preset of ``glcf.presets``."""
    from glcf.presets import preset

    params = load_params(write(tmp_path, {"data": {"categories": ["a"]}, "model": {"preset": "paper"}}))
    assert params.glcf == preset("paper")
    params = load_params(write(tmp_path, {"data": {"categories": ["a"]}, "model": None, "train": {"epochs": 2}}))
    assert params.glcf == preset("default", train={"epochs": 2})


def test_the_gated_metrics_are_the_primary_guarded_and_floor_metrics() -> None:
    register = load_params(ROOT / "params.yaml").register
    assert register.gated_metrics == (
        "image_auroc_total",
        "image_auroc_logical_anomalies",
        "image_auroc_structural_anomalies",
        "pixel_auroc",
    )
