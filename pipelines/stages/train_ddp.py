"""The train stage on several processes: ``torchrun --nproc-per-node N -m pipelines.stages.train_ddp CATEGORY``.

Every rank joins the ``torchrun`` process group (:func:`glcf.training.distributed.init_distributed`: NCCL on GPUs, one
GPU per rank; gloo on CPUs). Rank 0 runs the ordinary train stage (:func:`pipelines.stages.train.run_train`:
MLflow run, checkpoints, resume after a kill, ``model.pt``, history); inside the process group its
:func:`glcf.training.engine.fit` trains data-parallel by itself. The other ranks build the same model on the
same data and only train: the global batch ``train.batch_size`` is split over the N ranks, DDP averages
the gradients, and the epoch to resume from is rank 0's. Outputs and ``dvc.yaml`` are the train stage's;
with one process (``WORLD_SIZE`` unset or 1) this is exactly ``glcf stage train CATEGORY``.

Example (two GPUs)::

    torchrun --standalone --nproc-per-node 2 -m pipelines.stages.train_ddp pushpins --params params.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.params import CategoryPaths, PipelineParams, load_params


def follow_train(params: PipelineParams, paths: CategoryPaths) -> None:
    """A rank other than 0: the model and data of ``run_train``, training only (rank 0 tracks and writes)."""
    from glcf.training.engine import fit
    from pipelines.settings import apply_torch_threads
    from pipelines.stages.common import load_prepared
    from pipelines.stages.train import build_training

    apply_torch_threads()
    data, _ = load_prepared(params, paths)
    model, train_set = build_training(params, data.train)  # rank 0's model and data (DDP also broadcasts weights)
    fit(model, train_set, params.glcf.train, progress=False)


def run_train_ddp(category: str, params_file: str | Path = "params.yaml", *, progress: bool = True) -> Any:
    """Run this process's part of the multi-process train stage; returns rank 0's ``TrainResult`` (else None)."""
    from glcf.training.distributed import init_distributed, shutdown_distributed
    from pipelines.stages.runner import run_stage

    params = load_params(params_file)
    paths = params.category_paths(category)
    env = init_distributed(params.glcf.train.device)
    try:
        if env.is_main:
            return run_stage("train", category, params, progress=progress)
        follow_train(params, paths)
        return None
    finally:
        shutdown_distributed()


def main(
    category: Annotated[str, typer.Argument(help="a category listed in data.categories")],
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Train one category on every process of a ``torchrun`` job; rank 0 prints the result as JSON."""
    from glcf.training.distributed import dist_env
    from pipelines.logs import setup_logging
    from pipelines.stages.runner import result_dict

    rank = dist_env().rank
    setup_logging(None if rank == 0 else "WARNING")
    result = run_train_ddp(category, params, progress=rank == 0 and not quiet and sys.stderr.isatty())
    if result is not None:
        typer.echo(json.dumps(result_dict(result), indent=2, default=str))


if __name__ == "__main__":
    typer.run(main)
