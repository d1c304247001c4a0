"""``params.yaml`` -> typed, validated pipeline parameters (the single source of truth).

``dvc.yaml`` templates its paths and ``foreach`` lists from the same file, the Prefect flows and the
stage commands read it through :func:`load_params`, so DVC and Prefect run one DAG with one set of
values. Each section is a pydantic model that rejects unknown keys (:class:`ParamsFile`); the ``model``,
``loss`` and ``train`` sections are the model's configuration, parsed by :mod:`glcf.config` on top of a
preset, so each of their defaults and choices is defined there once. Every error is one line naming the
file and the dotted key, e.g. ``params.yaml: calibrate.threshold.quantile: must be <= 1, got 2``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from glcf.config import GLCFConfig, config_from_dict, config_to_dict
from glcf.data.readers import DataFormat
from glcf.export.formats import ExportFormat
from glcf.metrics.threshold import Method
from glcf.presets import preset
from glcf.serving.requests import DEFAULT_LIMITS
from pipelines.paths import CategoryPaths, PathsParams
from pipelines.schedule import CHECK_CRONS, ScheduleParams
from pipelines.validation import Section, one_line

__all__ = [
    "CalibrateParams",
    "CategoryPaths",
    "DataParams",
    "EvaluateParams",
    "ParamsError",
    "ParamsFile",
    "PathsParams",
    "PipelineParams",
    "RegisterParams",
    "ScheduleParams",
    "ServeParams",
    "ThresholdParams",
    "load_params",
    "parse_params",
]

CATEGORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ParamsError(ValueError):
    """A parameter file that cannot be used; the message names the file and the dotted key."""


def _name(value: str) -> str:
    if not CATEGORY_RE.match(value):
        msg = f"must be a folder name (letters, digits, _ - .), got {value!r}"
        raise ValueError(msg)
    return value


def _categories(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        msg = "must list at least one category"
        raise ValueError(msg)
    if len(set(value)) != len(value):
        msg = f"lists a category twice: {list(value)}"
        raise ValueError(msg)
    return value


Name = Annotated[StrictStr, AfterValidator(_name)]
Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(ge=1)]
NonNegative = Annotated[StrictFloat, Field(ge=0)]


class DataParams(Section):
    """Which data the pipeline runs on.

    Attributes:
        root: ``null`` uses the embedded generator (``generator`` section); otherwise an existing
            dataset root in ``format`` layout holding one folder per category.
        format: ``loco`` (MVTec LOCO AD), ``mvtec`` (MVTec AD) or ``folder`` (one folder per class).
        categories: the product categories, one model each.
        holdout_fraction: fraction of ``train/good`` held out for normalisation statistics and the
            threshold when the layout has no ``validation/good``.
        split_seed: seed of that hold-out split.
        normal_class: the normal class of the ``folder`` layout (case-insensitive).
        generator: settings of ``glcf generate`` (see ``glcf.synth``), used when ``root`` is null.
    """

    root: Annotated[StrictStr, Field(min_length=1)] | None = None
    format: DataFormat = "loco"
    categories: Annotated[tuple[Name, ...], AfterValidator(_categories)] = ()
    holdout_fraction: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.15
    split_seed: Count = 0
    normal_class: StrictStr = "normal"
    generator: dict[str, Any] = Field(default_factory=dict)

    @field_validator("format")
    @classmethod
    def _generator_layout(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("root", "") is None and value != "loco":
            msg = "the embedded generator writes the loco layout; set data.root for other formats"
            raise ValueError(msg)
        return value

    @property
    def dataset_name(self) -> str:
        """Name of the MLflow experiment's dataset: ``synthetic-loco`` or the root folder's name."""
        return "synthetic-loco" if self.root is None else Path(self.root).resolve().name


class ThresholdParams(Section):
    """Decision threshold from held-out normal image scores only (never from test anomalies).

    Attributes:
        method: ``quantile`` of the normal scores, ``mean_std`` (mean + k * std) or ``gumbel`` (the
            quantile of a Gumbel fitted to them).
        quantile: the quantile for ``quantile`` and ``gumbel`` (1 - the target false-alarm rate).
        k: the multiplier for ``mean_std``.
    """

    method: Method = "quantile"
    quantile: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.99
    k: NonNegative = 3.0


class CalibrateParams(Section):
    """Normalisation statistics and threshold calibration."""

    batch_size: Positive = 16
    threshold: ThresholdParams = Field(default_factory=ThresholdParams)


class EvaluateParams(Section):
    """Evaluation on the test split."""

    batch_size: Positive = 16
    gallery_size: Count = 12
    max_fpr_limits: Annotated[tuple[Annotated[StrictFloat, Field(gt=0, le=1)], ...], Field(min_length=1)] = (
        0.01,
        0.05,
        0.1,
        0.3,
        1.0,
    )


class RegisterParams(Section):
    """MLflow registration and the promotion gate.

    Attributes:
        model_name_prefix: registered model name is ``<prefix>-<category>``.
        experiment_prefix: experiment name is ``<prefix>/<dataset>``.
        variant: name of this model variant in run names and tags.
        primary_metric: the metric the challenger must improve over the champion.
        min_improvement: the margin by which it must improve (absolute).
        guarded_metrics: metric -> largest allowed regression (absolute) against the champion.
        floors: metric -> minimum absolute value; the first version is promoted only above them
            (and every challenger must clear them too).
        approval: ``auto`` moves ``@champion`` when the gate passes; ``manual`` leaves the version
            pending until a person approves it (``glcf review``, or the paused Prefect flow run).
        review_timeout_s: how long a paused Prefect flow run waits for the decision before the
            review expires (the champion stays).
        review_gallery: test images in the review's gallery of disagreements (0: no gallery).
        export_formats: also export the registered version as these files (``onnx``, ``openvino``)
            and log them with it (``export/model.onnx``, ...), so that it ships in every format.
    """

    model_name_prefix: Name = "glcf"
    experiment_prefix: Name = "glcf"
    variant: Name = "default"
    primary_metric: Name = "image_auroc_total"
    min_improvement: NonNegative = 0.005
    guarded_metrics: dict[StrictStr, NonNegative] = Field(default_factory=dict)
    floors: dict[StrictStr, NonNegative] = Field(default_factory=dict)
    approval: Literal["auto", "manual"] = "auto"
    review_timeout_s: Positive = 86400
    review_gallery: Count = 8
    export_formats: tuple[ExportFormat, ...] = ()

    @property
    def gated_metrics(self) -> tuple[str, ...]:
        """The metrics the gate compares: the primary one, the guarded ones and those with a floor."""
        return tuple(dict.fromkeys([self.primary_metric, *self.guarded_metrics, *self.floors]))


class ServeParams(Section):
    """The served champion model (also written into the logged pyfunc's model config)."""

    host: StrictStr = "127.0.0.1"
    port: Annotated[StrictInt, Field(gt=0, lt=65536)] = 5001
    max_image_bytes: Positive = DEFAULT_LIMITS["max_image_bytes"]
    max_image_pixels: Positive = DEFAULT_LIMITS["max_image_pixels"]
    max_batch: Positive = DEFAULT_LIMITS["max_batch"]

    def limits(self) -> dict[str, int]:
        """The request limits, by the names the served model reads (``glcf.serving.requests``)."""
        return {name: getattr(self, name) for name in DEFAULT_LIMITS}


class ParamsFile(Section):
    """``params.yaml`` as written: one field per section (an absent or empty section takes the defaults)."""

    paths: PathsParams
    data: DataParams
    model: dict[str, Any]
    loss: dict[str, Any]
    train: dict[str, Any]
    calibrate: CalibrateParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")  # the plain name is taken by the metaclass (ABC)
    serve: ServeParams
    schedule: ScheduleParams
    _glcf: GLCFConfig = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        absent: dict[str, Any] = {f.alias or name: {} for name, f in cls.model_fields.items()}
        return absent | {k: {} if v is None else v for k, v in raw.items()}

    @model_validator(mode="after")
    def _resolve(self) -> ParamsFile:
        self._glcf = _glcf_config(self.model, self.loss, self.train)
        categories = self.data.categories
        for category in self.schedule.crons:
            if category not in categories:
                msg = f"schedule.crons.{category}: not a category of data.categories ({', '.join(categories)})"
                raise ValueError(msg)
        return self

    @property
    def glcf(self) -> GLCFConfig:
        """The model configuration: the preset of ``model.preset`` with ``model``, ``loss`` and ``train`` on top."""
        return self._glcf


def _glcf_config(model: Mapping[str, Any], loss: Mapping[str, Any], train: Mapping[str, Any]) -> GLCFConfig:
    """The sections parsed by :mod:`glcf.config`; its errors, relative to ``GLCFConfig``, named as in the file."""
    model = dict(model)
    name = model.pop("preset", "default")
    if not isinstance(name, str):
        msg = f"model.preset: must be a preset name, got {name!r}"
        raise ValueError(msg)
    try:
        base = preset(name)
    except ValueError as exc:
        msg = f"model.preset: {str(exc).split(': ', 1)[-1]}"
        raise ValueError(msg) from None
    try:
        return config_from_dict({**model, "loss": loss, "train": train}, base=base)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(("loss", "train")) else f"model.{message}") from None


@dataclass(frozen=True)
class PipelineParams:
    """All sections of ``params.yaml``. ``glcf`` is the resolved model configuration."""

    paths: PathsParams
    data: DataParams
    glcf: GLCFConfig
    calibrate: CalibrateParams
    evaluate: EvaluateParams
    register: RegisterParams
    serve: ServeParams
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def category_paths(self, category: str, root: Path | None = None) -> CategoryPaths:
        if category not in self.data.categories:
            msg = f"data.categories: {category!r} is not a configured category ({', '.join(self.data.categories)})"
            raise ParamsError(msg)
        return CategoryPaths(root if root is not None else self.root, category, self.paths)

    @property
    def root(self) -> Path:
        """The project folder: the params file's folder (the working directory for params built in code)."""
        return self.source.parent if self.source else Path.cwd()

    def model_name(self, category: str) -> str:
        return f"{self.register.model_name_prefix}-{category}"

    @property
    def experiment_name(self) -> str:
        return f"{self.register.experiment_prefix}/{self.data.dataset_name}"

    def flat(self) -> dict[str, Any]:
        """Flattened dotted parameters for MLflow (``model.bottleneck.depth`` -> 6); ``schedule`` is not one."""
        resolved = {
            "paths": self.paths.model_dump(),
            "data": self.data.model_dump(),
            "model": {k: v for k, v in config_to_dict(self.glcf).items() if k not in ("loss", "train")},
            "loss": config_to_dict(self.glcf.loss),
            "train": config_to_dict(self.glcf.train),
            "calibrate": self.calibrate.model_dump(),
            "evaluate": self.evaluate.model_dump(),
            "register": self.register.model_dump(),
            "serve": self.serve.model_dump(),
        }
        return _flatten(resolved)

    def fingerprint(self, *sections: str) -> str:
        """A short stable hash of the given flattened sections (all when none are given)."""
        flat = self.flat()
        keep = {k: v for k, v in flat.items() if not sections or k.split(".", 1)[0] in sections}
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple | Mapping) else value
    return out


def parse_params(raw: Mapping[str, Any], source: Path | None = None, *, check_crons: bool = False) -> PipelineParams:
    """Validate a parsed ``params.yaml`` mapping.

    Args:
        raw: the file's sections.
        source: the file (its folder is the project folder).
        check_crons: also check ``schedule``'s cron expressions with Prefect's parser (imports Prefect).

    Raises:
        ValueError: one line naming the dotted key.
    """
    try:
        parsed = ParamsFile.model_validate(raw, context={CHECK_CRONS: check_crons})
    except ValidationError as exc:
        raise ValueError(one_line(exc, ParamsFile)) from None
    sections = {name: getattr(parsed, name) for name in ("paths", "data", "calibrate", "evaluate", "serve", "schedule")}
    return PipelineParams(**sections, register=parsed.register_, glcf=parsed.glcf, source=source, raw=dict(raw))


def load_params(
    path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None, *, check_crons: bool = False
) -> PipelineParams:
    """Read and validate a params file; ``overrides`` are dotted keys (``{"train.epochs": 2}``).

    ``check_crons``: as :func:`parse_params` (``glcf deploy``).

    Raises:
        ParamsError: one line naming the file and the dotted key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        msg = f"{path}: parameter file not found"
        raise ParamsError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{path}: not valid YAML: {' '.join(str(exc).split())}"  # one line
        raise ParamsError(msg) from None
    if not isinstance(raw, Mapping):
        msg = f"{path}: must hold a mapping of sections"
        raise ParamsError(msg)
    raw = dict(raw)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    try:
        return parse_params(raw, source=path.resolve(), check_crons=check_crons)
    except ValueError as exc:
        msg = f"{path}: {exc}"
        raise ParamsError(msg) from None


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, Mapping) else {}
        node = node[part]
    node[parts[-1]] = value
