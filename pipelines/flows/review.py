"""The manual promotion review inside a Prefect run: a paused flow run with a typed form.

When the promote stage leaves a version pending (``register.approval: manual``), the category flow
starts the subflow ``glcf-review`` (run name ``review-<model>-v<version>``), which pauses with
``pause_flow_run(wait_for_input=ReviewInput)``: the Prefect UI shows it as Paused, with the review as
the form's description, an approve/reject choice, a comment and the reviewer's name. Resuming it
with that input approves or rejects the version. Nobody answering within
``register.review_timeout_s`` fails that subflow run (Prefect's pause timeout); the category flow
then records the review as expired, leaves the champion and completes. Without a Prefect server
(local mode) there is nobody to resume a run: the version stays pending for ``glcf review``.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from pipelines.params import PipelineParams

#: How often the paused run asks the server whether it was resumed (seconds).
POLL_S = 5


class ReviewInput(RunInput):
    """The reviewer's answer: ``approve`` moves ``@champion`` to the version, ``reject`` does not."""

    decision: Literal["approve", "reject"]
    comment: str = ""
    reviewer: str = ""


def has_server() -> bool:
    """Whether runs report to a Prefect server someone can open (not the temporary local one)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


@flow(name="glcf-review", flow_run_name="review-{model}-v{version}", log_prints=True)
def review_flow(model: str, version: str, description: str, timeout_s: int) -> str:
    """Pause for a person's decision on a pending version, then act on it; returns the review's status.

    Nobody answering within ``timeout_s`` fails this run (Prefect: "paused and never resumed"); the
    calling flow records the review as expired.
    """
    from pipelines.review import decisions

    log = get_run_logger()
    log.info("%s v%s passed the gate: paused for a reviewer (timeout %d s)", model, version, timeout_s)
    form = ReviewInput.with_initial_data(description=description[:20000], comment="")
    answer = pause_flow_run(
        wait_for_input=form, timeout=timeout_s, poll_interval=min(POLL_S, timeout_s), key=f"review-{model}-v{version}"
    )
    by = answer.reviewer.strip() or None
    try:
        if answer.decision == "approve":
            decisions.approve(model, version, answer.comment, via="prefect", by=by)
        else:
            decisions.reject(model, version, answer.comment, via="prefect", by=by)
    except decisions.ReviewError as exc:
        log.warning("%s", exc)  # decided from the command line while the run was paused
        return _status(model, version)
    return "approved" if answer.decision == "approve" else "rejected"


def await_review(result: Any, params: PipelineParams) -> str:
    """The review of a ``PromoteResult``: a paused ``glcf-review`` subflow run when it is pending."""
    from pipelines.review import decisions  # MLflow: imported only when a review runs

    if not getattr(result, "pending", False):
        return result.status or ("promoted" if result.promoted else "rejected")
    name, version = result.model_name, result.challenger_version
    if not has_server():
        get_run_logger().info(
            "%s v%s awaits approval: glcf review approve %s %s --comment ...", name, version, name, version
        )
        return decisions.PENDING
    state = review_flow(name, version, result.review_markdown, params.register.review_timeout_s, return_state=True)
    if state.is_completed():
        return state.result()
    error = state.result(raise_on_failure=False)
    if not (isinstance(error, FlowPauseTimeout) or "never resumed" in (state.message or "")):
        raise error if isinstance(error, BaseException) else RuntimeError(state.message)
    expired = decisions.expire(name, version, via="prefect")
    get_run_logger().info("%s v%s: review %s", name, version, "expired" if expired else "decided elsewhere")
    return "expired" if expired else _status(name, version)


def _status(name: str, version: str) -> str:
    from pipelines import registry
    from pipelines.review import decisions

    return registry.get_version(name, version).tags.get(decisions.STATUS_TAG, "unknown")
