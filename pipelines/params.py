"""``params.yaml`` -> typed, validated pipeline parameters (the single source of truth).

``dvc.yaml`` templates its paths and ``foreach`` lists from the same file, the Prefect flows and the
stage commands read it through :func:`load_params`, so DVC and Prefect run one DAG with one set of
values. Every error names the dotted key, e.g. ``train.lr: must be a positive finite number``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from glcf.config import GLCFConfig, config_from_dict, config_to_dict, from_mapping
from glcf.metrics.threshold import METHODS
from glcf.presets import preset
from glcf.serving.requests import DEFAULT_LIMITS
from glcf.typed import check_literals
from glcf.typed import fail as _fail
from pipelines.paths import CategoryPaths, PathsParams

__all__ = [
    "CalibrateParams",
    "CategoryPaths",
    "DataParams",
    "EvaluateParams",
    "ParamsError",
    "PathsParams",
    "PipelineParams",
    "RegisterParams",
    "ServeParams",
    "ThresholdParams",
    "load_params",
]

CATEGORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ParamsError(ValueError):
    """A parameter file that cannot be used; the message names the file and the dotted key."""


@dataclass(frozen=True)
class DataParams:
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

    root: str | None = None
    format: Literal["loco", "mvtec", "folder"] = "loco"
    categories: tuple[str, ...] = ()
    holdout_fraction: float = 0.15
    split_seed: int = 0
    normal_class: str = "normal"
    generator: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "data") -> None:
        if self.root is not None and (not isinstance(self.root, str) or not self.root):
            _fail(f"{path}.root", f"must be null (embedded generator) or a dataset folder, got {self.root!r}")
        if self.format not in ("loco", "mvtec", "folder"):
            _fail(f"{path}.format", f"must be one of loco, mvtec, folder; got {self.format!r}")
        if self.root is None and self.format != "loco":
            _fail(f"{path}.format", "the embedded generator writes the loco layout; set data.root for other formats")
        if not self.categories:
            _fail(f"{path}.categories", "must list at least one category")
        for i, cat in enumerate(self.categories):
            if not isinstance(cat, str) or not CATEGORY_RE.match(cat):
                _fail(f"{path}.categories[{i}]", f"must be a folder name (letters, digits, _ - .); got {cat!r}")
        if len(set(self.categories)) != len(self.categories):
            _fail(f"{path}.categories", f"lists a category twice: {list(self.categories)}")
        if not (0.0 < self.holdout_fraction < 1.0):
            _fail(f"{path}.holdout_fraction", f"must be in (0, 1), got {self.holdout_fraction!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0:
            _fail(f"{path}.split_seed", f"must be a non-negative integer, got {self.split_seed!r}")
        if not isinstance(self.generator, Mapping):
            _fail(f"{path}.generator", "must be a mapping")

    @property
    def dataset_name(self) -> str:
        """Name of the MLflow experiment's dataset: ``synthetic-loco`` or the root folder's name."""
        return "synthetic-loco" if self.root is None else Path(self.root).resolve().name


@dataclass(frozen=True)
class ThresholdParams:
    """Decision threshold from held-out normal image scores only (never from test anomalies).

    Attributes:
        method: ``quantile`` of the normal scores, ``mean_std`` (mean + k * std) or ``gumbel`` (the
            quantile of a Gumbel fitted to them).
        quantile: the quantile for ``quantile`` and ``gumbel`` (1 - the target false-alarm rate).
        k: the multiplier for ``mean_std``.
    """

    method: Literal["quantile", "mean_std", "gumbel"] = "quantile"
    quantile: float = 0.99
    k: float = 3.0

    def validate(self, path: str = "calibrate.threshold") -> None:
        if self.method not in METHODS:
            _fail(f"{path}.method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not (0.0 < self.quantile <= 1.0):
            _fail(f"{path}.quantile", f"must be in (0, 1], got {self.quantile!r}")
        if not (self.k >= 0):
            _fail(f"{path}.k", f"must be non-negative, got {self.k!r}")


@dataclass(frozen=True)
class CalibrateParams:
    """Normalisation statistics and threshold calibration."""

    batch_size: int = 16
    threshold: ThresholdParams = field(default_factory=ThresholdParams)

    def validate(self, path: str = "calibrate") -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            _fail(f"{path}.batch_size", f"must be a positive integer, got {self.batch_size!r}")
        self.threshold.validate(f"{path}.threshold")


@dataclass(frozen=True)
class EvaluateParams:
    """Evaluation on the test split."""

    batch_size: int = 16
    gallery_size: int = 12
    max_fpr_limits: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3, 1.0)

    def validate(self, path: str = "evaluate") -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            _fail(f"{path}.batch_size", f"must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.gallery_size, int) or self.gallery_size < 0:
            _fail(f"{path}.gallery_size", f"must be a non-negative integer, got {self.gallery_size!r}")
        if not self.max_fpr_limits or any(not (0 < v <= 1) for v in self.max_fpr_limits):
            _fail(f"{path}.max_fpr_limits", f"must be numbers in (0, 1], got {self.max_fpr_limits!r}")


@dataclass(frozen=True)
class RegisterParams:
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
    """

    model_name_prefix: str = "glcf"
    experiment_prefix: str = "glcf"
    variant: str = "default"
    primary_metric: str = "image_auroc_total"
    min_improvement: float = 0.005
    guarded_metrics: dict[str, float] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=dict)
    approval: Literal["auto", "manual"] = "auto"
    review_timeout_s: int = 86400
    review_gallery: int = 8

    def validate(self, path: str = "register") -> None:
        for name in ("model_name_prefix", "experiment_prefix", "variant", "primary_metric"):
            value = getattr(self, name)
            if not isinstance(value, str) or not CATEGORY_RE.match(value):
                _fail(f"{path}.{name}", f"must be a simple name, got {value!r}")
        if not (self.min_improvement >= 0):
            _fail(f"{path}.min_improvement", f"must be non-negative, got {self.min_improvement!r}")
        for section in ("guarded_metrics", "floors"):
            mapping = getattr(self, section)
            if not isinstance(mapping, Mapping):
                _fail(f"{path}.{section}", "must be a mapping of metric name to number")
            for key, value in mapping.items():
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    _fail(f"{path}.{section}.{key}", f"must be a non-negative number, got {value!r}")
        check_literals(self, path)  # approval
        for name, low in (("review_timeout_s", 1), ("review_gallery", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                _fail(f"{path}.{name}", f"must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class ServeParams:
    """The served champion model (also written into the logged pyfunc's model config)."""

    host: str = "127.0.0.1"
    port: int = 5001
    max_image_bytes: int = DEFAULT_LIMITS["max_image_bytes"]
    max_image_pixels: int = DEFAULT_LIMITS["max_image_pixels"]
    max_batch: int = DEFAULT_LIMITS["max_batch"]

    def limits(self) -> dict[str, int]:
        """The request limits, by the names the served model reads (``glcf.serving.requests``)."""
        return {name: getattr(self, name) for name in DEFAULT_LIMITS}

    def validate(self, path: str = "serve") -> None:
        if not isinstance(self.port, int) or not (0 < self.port < 65536):
            _fail(f"{path}.port", f"must be a TCP port, got {self.port!r}")
        for name in DEFAULT_LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {value!r}")


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
        """Flattened dotted parameters for MLflow (``model.bottleneck.depth`` -> 6)."""
        resolved = {
            "paths": config_to_dict(self.paths),
            "data": config_to_dict(self.data),
            "model": {k: v for k, v in config_to_dict(self.glcf).items() if k not in ("loss", "train")},
            "loss": config_to_dict(self.glcf.loss),
            "train": config_to_dict(self.glcf.train),
            "calibrate": config_to_dict(self.calibrate),
            "evaluate": config_to_dict(self.evaluate),
            "register": config_to_dict(self.register),
            "serve": config_to_dict(self.serve),
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


def _glcf_config(raw: Mapping[str, Any]) -> GLCFConfig:
    model = dict(raw.get("model") or {})
    name = model.pop("preset", "default")
    if not isinstance(name, str):
        _fail("model.preset", f"must be a preset name, got {name!r}")
    try:
        base = preset(name)
    except ValueError as exc:
        _fail("model.preset", str(exc).split(": ", 1)[-1])
    merged = {**model, "loss": raw.get("loss") or {}, "train": raw.get("train") or {}}
    try:
        return config_from_dict(merged, base=base)
    except ValueError as exc:
        # config paths are relative to GLCFConfig: map them onto the params.yaml sections
        message = str(exc)
        if not message.startswith(("loss", "train")):
            message = f"model.{message}"
        raise ValueError(message) from None


def parse_params(raw: Mapping[str, Any], source: Path | None = None) -> PipelineParams:
    """Validate a parsed ``params.yaml`` mapping."""
    known = {"paths", "data", "model", "loss", "train", "calibrate", "evaluate", "register", "serve", "schedule"}
    unknown = sorted(set(raw) - known)
    if unknown:
        _fail(unknown[0], f"unknown section (known: {', '.join(sorted(known))})")
    sections: dict[str, Any] = {}
    for name, cls in (
        ("paths", PathsParams),
        ("data", DataParams),
        ("calibrate", CalibrateParams),
        ("evaluate", EvaluateParams),
        ("register", RegisterParams),
        ("serve", ServeParams),
    ):
        value = raw.get(name) or {}
        if not isinstance(value, Mapping):
            _fail(name, f"must be a mapping, got {type(value).__name__}")
        obj = from_mapping(cls, value, name)
        obj.validate(name)
        sections[name] = obj
    schedule = raw.get("schedule") or {}
    if not isinstance(schedule, Mapping):
        _fail("schedule", f"must be a mapping, got {type(schedule).__name__}")  # cron details: glcf deploy
    return PipelineParams(glcf=_glcf_config(raw), source=source, raw=dict(raw), **sections)


def load_params(path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None) -> PipelineParams:
    """Read and validate a params file; ``overrides`` are dotted keys (``{"train.epochs": 2}``).

    Raises:
        ParamsError: naming the file and the dotted key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        msg = f"{path}: parameter file not found"
        raise ParamsError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{path}: not valid YAML: {exc}"
        raise ParamsError(msg) from None
    if not isinstance(raw, Mapping):
        msg = f"{path}: must hold a mapping of sections"
        raise ParamsError(msg)
    raw = dict(raw)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    try:
        return parse_params(raw, source=path.resolve())
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
