"""``glcf review``: pending promotion reviews, approve or reject them, the decision history, rollback.

MODEL is a registered model name (``glcf-pushpins``) or a category of ``params.yaml``. The tracking
store is ``MLFLOW_TRACKING_URI`` (on the team server, its user is the recorded reviewer), else the
project's ``mlflow.db``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Promotion reviews: list, show, approve, reject, history, rollback.", no_args_is_help=True)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="parameter file")]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="why (recorded in the history)")]
ModelArg = Annotated[str, typer.Argument(help="registered model name, or a category of params.yaml")]
VersionArg = Annotated[str, typer.Argument(help="model version")]


@contextmanager
def _session(command: str, params: Path) -> Iterator[Callable[[str], str]]:
    """Set up tracking; yields ``resolve(model)``; errors become one line on stderr and exit 1."""
    from mlflow.exceptions import MlflowException

    from pipelines import tracking
    from pipelines.commands.options import load_params_or_exit
    from pipelines.review.decisions import ReviewError

    loaded = load_params_or_exit(params, f"review {command}")
    for name in ("pipelines.registry", "pipelines.review"):
        logging.getLogger(name).setLevel(logging.WARNING)  # the command prints its own line per step
    tracking.configure_tracking(loaded.root)

    def resolve(model: str) -> str:
        return loaded.model_name(model) if model in loaded.data.categories else model

    try:
        yield resolve
    except ReviewError as exc:
        typer.echo(f"glcf review {command}: {exc}", err=True)
        raise typer.Exit(1) from None
    except MlflowException as exc:
        typer.echo(f"glcf review {command}: {_service_error(exc)}", err=True)
        raise typer.Exit(1) from None


def _service_error(exc: Exception) -> str:
    text = str(exc)
    if "401" in text or "nauthenticated" in text:
        return "the tracking server refused the credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME/PASSWORD"
    if "403" in text or "PERMISSION_DENIED" in text:
        return "the tracking server's user may not change this model (HTTP 403)"
    if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower():
        return text.splitlines()[0][:300]
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def list_pending(params: ParamsOpt = Path("params.yaml")) -> None:
    """Versions that passed the gate and await a decision (all categories)."""
    from pipelines.params import load_params
    from pipelines.review.decisions import pending_reviews

    with _session("list", params):
        prefix = load_params(params).register.model_name_prefix
        found = pending_reviews(prefix)
        if not found:
            typer.echo("no pending reviews")
        for p in found:
            champion = f"v{p.champion_version}" if p.champion_version else "none"
            gate = p.reason.removeprefix("promoted: ")  # the gate's reason, worded for automatic approval
            typer.echo(
                f"{p.model} v{p.version}  pending since {p.since or '?'}  champion {champion}  gate passed: {gate}"
            )


def show(model: ModelArg, version: VersionArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """The review of a version: its status and what changed against the champion."""
    import mlflow

    from pipelines.review import decisions

    with _session("show", params) as resolve:
        name = resolve(model)
        info = decisions.version_info(name, version)
        tags = info.tags
        typer.echo(f"{name} v{version}: {tags.get(decisions.STATUS_TAG, 'never reviewed')}")
        for key in ("glcf.promotion.reason", "glcf.review.by", "glcf.review.at", "glcf.review.comment"):
            if tags.get(key):
                typer.echo(f"  {key.rsplit('.', 1)[-1]}: {tags[key]}")
        report = tags.get(decisions.REPORT_TAG)
        if report:
            with tempfile.TemporaryDirectory() as tmp:
                path = mlflow.artifacts.download_artifacts(artifact_uri=f"{report}/review.md", dst_path=tmp)
                typer.echo("")
                typer.echo(Path(path).read_text(encoding="utf-8").rstrip())
            typer.echo(f"\nartifacts (gallery.png, comparison.json): {report}")


def _decide(command: str, action: Callable[..., Any], model: str, version: str, comment: str, params: Path) -> None:
    with _session(command, params) as resolve:
        event = action(resolve(model), version, comment)
        before, after = event.champion_before or "none", event.champion_after or "none"
        typer.echo(f"{event.model} v{event.version}: {event.event} by {event.by}; @champion {before} -> {after}")


def approve(
    model: ModelArg, version: VersionArg, comment: CommentOpt = "", params: ParamsOpt = Path("params.yaml")
) -> None:
    """Approve a pending version: @champion moves to it."""
    from pipelines.review.decisions import approve as act

    _decide("approve", act, model, version, comment, params)


def reject(
    model: ModelArg, version: VersionArg, comment: CommentOpt = "", params: ParamsOpt = Path("params.yaml")
) -> None:
    """Reject a pending version: @champion stays."""
    from pipelines.review.decisions import reject as act

    _decide("reject", act, model, version, comment, params)


def rollback(model: ModelArg, comment: CommentOpt = "", params: ParamsOpt = Path("params.yaml")) -> None:
    """Move @champion back to the champion it replaced."""
    from pipelines.review.decisions import rollback as act

    with _session("rollback", params) as resolve:
        event = act(resolve(model), comment)
        typer.echo(
            f"{event.model}: @champion rolled back v{event.champion_before} -> v{event.champion_after} by {event.by}"
        )


def history(model: ModelArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Every decision on the model, oldest first."""
    from pipelines.review import history as H

    with _session("history", params) as resolve:
        name = resolve(model)
        events = H.read(name)
        if not events:
            typer.echo(f"{name}: no recorded decisions")
        for e in events:
            champion = f"@champion {e.champion_before or 'none'} -> {e.champion_after or 'none'}"
            gate = f" gate {e.gate}" if e.gate else ""
            text = e.comment or e.reason or ""
            typer.echo(f"{e.at}  v{e.version}  {e.event}{gate}  by {e.by} via {e.via}  {champion}  {text}".rstrip())


app.command("list")(list_pending)
app.command("show")(show)
app.command("approve")(approve)
app.command("reject")(reject)
app.command("history")(history)
app.command("rollback")(rollback)
