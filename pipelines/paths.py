"""Where one category's pipeline reads and writes: ``paths`` of ``params.yaml`` and every file derived
from it (``dvc.yaml`` declares the same files; a unit test proves it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, StrictStr

from pipelines.validation import Section

__all__ = ["CategoryPaths", "PathsParams"]


def _inside_project(value: str) -> str:
    if not value or Path(value).is_absolute() or ".." in Path(value).parts:
        msg = f"must be a relative path inside the project, got {value!r}"
        raise ValueError(msg)
    return value


ProjectPath = Annotated[StrictStr, AfterValidator(_inside_project)]


class PathsParams(Section):
    """Where each stage writes, relative to the project root (``dvc.yaml`` uses the same keys)."""

    raw: ProjectPath = "data/raw"
    prepared: ProjectPath = "data/prepared"
    models: ProjectPath = "models"
    reports: ProjectPath = "reports"


@dataclass(frozen=True)
class CategoryPaths:
    """Every file of one category's pipeline, derived from ``paths`` (dvc.yaml declares the same)."""

    root: Path
    category: str
    paths: PathsParams

    @property
    def data(self) -> Path:
        return self.root / self.paths.raw / self.category

    @property
    def prepared(self) -> Path:
        return self.root / self.paths.prepared / self.category

    @property
    def manifest(self) -> Path:
        return self.prepared / "manifest.json"

    @property
    def model_dir(self) -> Path:
        return self.root / self.paths.models / self.category

    @property
    def checkpoint(self) -> Path:
        return self.model_dir / "model.pt"

    @property
    def train_metrics(self) -> Path:
        return self.model_dir / "train_metrics.json"

    @property
    def history(self) -> Path:
        return self.model_dir / "history.csv"

    @property
    def loss_plot(self) -> Path:
        return self.model_dir / "loss.png"

    @property
    def run_info(self) -> Path:
        return self.model_dir / "mlflow_run.json"

    @property
    def calibration(self) -> Path:
        return self.model_dir / "calibration.json"

    @property
    def report_dir(self) -> Path:
        return self.root / self.paths.reports / self.category

    @property
    def metrics(self) -> Path:
        """Every figure of the evaluation (the registry and the promotion review read it)."""
        return self.report_dir / "metrics.json"

    @property
    def headline(self) -> Path:
        """The dozen headline figures: the DVC metrics of the category."""
        return self.report_dir / "headline.json"

    @property
    def roc(self) -> Path:
        return self.report_dir / "roc"

    @property
    def plots(self) -> Path:
        return self.report_dir / "plots"

    @property
    def registration(self) -> Path:
        return self.report_dir / "registration.json"

    @property
    def promotion(self) -> Path:
        return self.report_dir / "promotion.json"

    @property
    def review_dir(self) -> Path:
        """The promotion review: ``review.md``, ``gallery.png``, ``comparison.json``."""
        return self.report_dir / "review"

    @property
    def resume_dir(self) -> Path:
        """Per-epoch resume checkpoints: outside DVC's outputs so that a killed run can resume."""
        return self.root / ".run" / "train" / self.category
