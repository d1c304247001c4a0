"""Stage ``train``: fit GLCF on the category's normal training images.

Per-epoch checkpoints go to ``.run/train/<category>/<fingerprint>/`` (outside DVC's outputs, which
DVC deletes before a stage runs), so a run that was killed resumes from its last completed epoch and
continues the same MLflow run. The final checkpoint holds the resolved config, library versions and
only the trainable weights.
"""

from __future__ import annotations

import csv
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.io import read_json, sha256_json, write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.stages.common import dataset, load_prepared

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The trained model's files and figures."""

    checkpoint: Path
    train_id: str
    run_id: str
    epochs: int
    resumed_from_epoch: int
    seconds: float
    images_per_second: float
    final_loss: float


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    keys = sorted({k for rec in history for k in rec} - {"epoch"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *[k.replace("/", ".") for k in keys]])
        for rec in history:
            writer.writerow([rec["epoch"], *[rec.get(k, "") for k in keys]])


def _epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    from pipelines.tracking import TRAIN_METRICS

    return {f"{TRAIN_METRICS}{k.replace('/', '.')}": float(v) for k, v in record.items() if k != "epoch"}


def resume_key(params: PipelineParams, manifest: dict[str, Any]) -> str:
    """Folder name of the resume state: same settings, same training data and same owner.

    The owner (output folder and variant) keeps two trainings with equal settings apart, e.g. the
    pipeline's and a benchmark variant's: one must never resume, and log into, the other's run.
    """
    owner = sha256_json({"models": params.paths.models, "variant": params.register.variant})[:8]
    return f"{params.fingerprint('model', 'loss', 'train')}-{manifest['hashes']['train'][:12]}-{owner}"


def build_training(params: PipelineParams, samples: Any) -> tuple[Any, Any]:
    """The seeded model and the cached training set: the same on every rank of a multi-process run."""
    from glcf.model import build_glcf
    from glcf.runtime import seed_everything

    seed_everything(params.glcf.train.seed)  # model initialisation is part of the seeded run
    model = build_glcf(params.glcf)
    return model, dataset(samples, model, cache=True)


def plot_loss_history(history: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """The total loss and each of its terms (``loss/<term>``) per epoch, on a log scale, as a PNG."""
    from matplotlib.figure import Figure

    epochs = [rec["epoch"] for rec in history]
    keys = ["loss", *sorted({k for rec in history for k in rec if k.startswith("loss/")})]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for key in keys:
        values = [rec.get(key, float("nan")) for rec in history]
        ax.plot(epochs, values, lw=2 if key == "loss" else 1.2, label=key.removeprefix("loss/"))
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    if all(rec.get(k, 1.0) > 0 for rec in history for k in keys):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return path


def write_training(paths: CategoryPaths, model: Any, result: Any, extra: dict[str, Any], n_images: int) -> dict:
    """The stage's files: ``model.pt``, ``history.csv``, ``loss.png`` and ``train_metrics.json`` (returned)."""
    from glcf.model.checkpoint import save_checkpoint

    history = result.history
    save_checkpoint(paths.checkpoint, model, epoch=result.final_epoch, history=history, extra=extra)
    _write_history(paths.history, history)
    plot_loss_history(history, paths.loss_plot, title=f"{paths.category}: training loss")
    summary = {
        "epochs": result.final_epoch,
        "resumed_from_epoch": result.final_epoch - result.epochs_run,
        "seconds": round(result.seconds, 3),
        "images_per_second": round(result.images_per_second, 3),
        "final_loss": history[-1]["loss"] if history else float("nan"),
        "train_images": n_images,
    }
    write_json(paths.train_metrics, summary)
    return summary


def run_train(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> TrainResult:
    """Train one category; resumes an interrupted run with the same settings and data."""
    import mlflow

    from glcf.training.engine import CHECKPOINT_NAME, fit
    from pipelines import tracking

    data, manifest = load_prepared(params, paths)
    resume_dir = paths.resume_dir / resume_key(params, manifest)
    state_file = resume_dir / "state.json"
    last = resume_dir / CHECKPOINT_NAME
    resume = last if last.exists() and state_file.exists() else None
    train_id = read_json(state_file)["train_id"] if resume else uuid.uuid4().hex
    resume_dir.mkdir(parents=True, exist_ok=True)
    write_json(state_file, {"train_id": train_id, "category": paths.category})

    model, train_set = build_training(params, data.train)
    logger.info("%s: %d training images, %s", paths.category, len(train_set), "resuming" if resume else "new run")
    with tracking.category_run(
        params, paths, stage="train", data_hash=manifest["hashes"]["data"], new_train_id=train_id
    ) as run:
        mlflow.set_tag("glcf.resumed", "false" if resume is None else "true")
        result = fit(
            model,
            train_set,
            params.glcf.train,
            checkpoint_dir=resume_dir,
            resume_from=resume,
            on_epoch_end=lambda rec: mlflow.log_metrics(_epoch_metrics(rec), step=int(rec["epoch"])),
            progress=progress,
        )
        extra = {"category": paths.category, "train_id": train_id, "data_hash": manifest["hashes"]["data"]}
        summary = write_training(paths, model, result, extra, len(train_set))
        mlflow.log_metrics({f"{tracking.TRAIN_METRICS}final.{k}": float(v) for k, v in summary.items()})
        write_json(paths.run_info, {"train_id": train_id, "run_id": run.info.run_id})
        run_id = run.info.run_id
    shutil.rmtree(resume_dir, ignore_errors=True)
    where = paths.checkpoint.relative_to(paths.root)
    epochs = f"{result.final_epoch} epoch{'' if result.final_epoch == 1 else 's'}"
    done = f"{epochs} in {result.seconds:.0f} s, final loss {summary['final_loss']:.4g}"
    logger.info("%s: %s -> %s", paths.category, done, where)
    return TrainResult(
        checkpoint=paths.checkpoint,
        train_id=train_id,
        run_id=run_id,
        epochs=result.final_epoch,
        resumed_from_epoch=summary["resumed_from_epoch"],
        seconds=result.seconds,
        images_per_second=result.images_per_second,
        final_loss=float(summary["final_loss"]),
    )
