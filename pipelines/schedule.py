"""The ``schedule`` section of ``params.yaml``: ``glcf deploy``'s scheduled retraining (``pipelines.flows.deploy``).

A cron expression is checked for its five fields whenever the file is read; Prefect's own parser
checks it further only when the validation context asks for it (:data:`CHECK_CRONS`, ``glcf deploy``),
because importing Prefect takes seconds that every pipeline stage would pay.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, StrictStr, ValidationError, ValidationInfo

from pipelines.validation import Section, check_value

__all__ = ["CHECK_CRONS", "Cron", "ScheduleParams", "TimeZone"]

CHECK_CRONS = "check_crons"  # validation context key: check cron expressions with Prefect's parser


def _cron(value: str, info: ValidationInfo) -> str:
    if len(value.split()) != 5:
        msg = f"must be a cron expression of five fields (minute hour day month weekday), got {value!r}"
        raise ValueError(msg)
    if (info.context or {}).get(CHECK_CRONS):
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            why = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else exc
            msg = f"invalid cron expression {value!r}: {why}"
            raise ValueError(msg) from None
    return value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Berlin)"
        raise ValueError(msg) from None
    return value


Cron = Annotated[StrictStr, AfterValidator(_cron)]
TimeZone = Annotated[StrictStr, AfterValidator(_timezone)]


class ScheduleParams(Section):
    """The ``schedule`` section: ``glcf deploy``'s scheduled retraining (``pipelines.flows.deploy``).

    Attributes:
        cron: cron expression of every category's retraining (five fields).
        timezone: IANA time zone the cron is read in.
        crons: per-category cron expressions that replace ``cron``.
        gpu: deploy to the GPU work pool instead of the CPU pool.
    """

    cron: Cron = "0 2 * * *"
    timezone: TimeZone = "UTC"
    crons: dict[StrictStr, Cron] = Field(default_factory=dict)
    gpu: StrictBool = False

    def override(self, *, cron: str | None, timezone: str | None, gpu: bool | None) -> ScheduleParams:
        """This schedule with the command line's values (``--cron`` replaces ``crons`` too), each checked."""
        changes: dict[str, Any] = {}
        context = {CHECK_CRONS: True}
        if cron is not None:
            changes |= {"cron": check_value(Cron, cron, "--cron", context), "crons": {}}
        if timezone is not None:
            changes["timezone"] = check_value(TimeZone, timezone, "--timezone")
        if gpu is not None:
            changes["gpu"] = bool(gpu)
        return self.model_copy(update=changes)
