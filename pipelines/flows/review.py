"""The manual promotion review inside a Prefect flow run: the run pauses with a typed form.

When the promote stage leaves a version pending (``register.approval: manual``), the category flow
pauses (``pause_flow_run(wait_for_input=ReviewInput)``): the Prefect UI shows the run as Paused with
the review as the form's description and an approve/reject choice and a comment; resuming it with
that input approves or rejects the version. Nobody answering within ``register.review_timeout_s``
records the review as expired and leaves the champion. Without a Prefect server (local mode), there
is nobody to resume the run: the version stays pending for ``glcf review approve`` instead.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from pipelines.params import PipelineParams
from pipelines.review import decisions

logger = logging.getLogger(__name__)

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


def await_review(result: Any, params: PipelineParams) -> str:
    """Pause for the review of a pending ``PromoteResult``; returns the review's status."""
    if not getattr(result, "pending", False):
        return result.status or ("promoted" if result.promoted else "rejected")
    name, version = result.model_name, result.challenger_version
    log = get_run_logger()
    if not has_server():
        log.info("%s v%s awaits approval: glcf review approve %s %s --comment ...", name, version, name, version)
        return decisions.PENDING
    log.info(
        "%s v%s passed the gate: pausing for a reviewer (timeout %d s)", name, version, params.register.review_timeout_s
    )
    form = ReviewInput.with_initial_data(description=result.review_markdown[:20000], comment="")
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=params.register.review_timeout_s,
            poll_interval=min(POLL_S, params.register.review_timeout_s),
            key=f"review-{name}-v{version}",
        )
    except FlowPauseTimeout:
        expired = decisions.expire(name, version, via="prefect")
        log.info("%s v%s: review %s", name, version, "expired" if expired else "decided elsewhere before the timeout")
        return "expired" if expired else _status(name, version)
    by = answer.reviewer.strip() or None
    try:
        if answer.decision == "approve":
            decisions.approve(name, version, answer.comment, via="prefect", by=by)
        else:
            decisions.reject(name, version, answer.comment, via="prefect", by=by)
    except decisions.ReviewError as exc:
        log.warning("%s", exc)  # decided from the command line while the run was paused
        return _status(name, version)
    return "approved" if answer.decision == "approve" else "rejected"


def _status(name: str, version: str) -> str:
    from pipelines import registry

    return registry.get_version(name, version).tags.get(decisions.STATUS_TAG, "unknown")
