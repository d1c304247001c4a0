"""What several stages share: the category's data as the prepared manifest describes it."""

from __future__ import annotations

from typing import Any

from glcf.data.types import CategoryData
from pipelines.io import read_json
from pipelines.params import CategoryPaths, PipelineParams


class StageInputError(RuntimeError):
    """A stage's input is missing or does not match what an earlier stage recorded."""


def read_data(params: PipelineParams, paths: CategoryPaths, *, check: str = "header") -> CategoryData:
    """Read the category in its layout (``check`` = how deeply each image file is checked)."""
    from glcf.data import read_category

    return read_category(
        paths.data.parent,
        paths.category,
        params.data.format,
        holdout_fraction=params.data.holdout_fraction,
        seed=params.data.split_seed,
        normal_class=params.data.normal_class,
        check=check,  # type: ignore[arg-type]
    )


def manifest_files(data: CategoryData, split: str) -> list[str]:
    base = data.path
    return [s.path.relative_to(base).as_posix() for s in getattr(data, split)]


def load_prepared(params: PipelineParams, paths: CategoryPaths) -> tuple[CategoryData, dict[str, Any]]:
    """The category's data and its manifest, checked to list the same files in the same splits."""
    manifest = read_json(paths.manifest, "manifest (run the prepare stage first)")
    data = read_data(params, paths)
    for split in ("train", "validation", "test"):
        listed = [entry["path"] for entry in manifest["splits"][split]]
        found = manifest_files(data, split)
        if listed != found:
            missing = sorted(set(listed) - set(found))[:5]
            extra = sorted(set(found) - set(listed))[:5]
            msg = (
                f"{paths.data}: the {split} split differs from {paths.manifest} "
                f"(missing {missing}, new {extra}); re-run the prepare stage"
            )
            raise StageInputError(msg)
    return data, manifest


def dataset(samples: Any, model: Any, *, cache: bool = False) -> Any:
    from glcf.data.dataset import ImageDataset

    return ImageDataset(samples, model.config.image_size, model.mean, model.std, cache=cache)


def numeric_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of an evaluation's ``summary`` (``metrics.json``) as floats: what MLflow and the gate take."""
    return {k: float(v) for k, v in metrics["summary"].items() if isinstance(v, int | float)}
