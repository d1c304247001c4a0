"""The decision history of a registered model, and who is deciding.

Every event (a gate result, an approval, a rejection, an expiry, a rollback) is one tag of the
registered model, ``glcf.history.<UTC time>.<random>`` holding the event as JSON: one write per
event, never a read-modify-write, so concurrent writers cannot lose each other's events, and
unlike version tags nothing is overwritten. The registry API alone reads it back, in time order.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from mlflow.tracking import MlflowClient

HISTORY_PREFIX = "glcf.history."
#: Registry tag values are stored in columns of 5000 characters: long texts are cut to fit.
_MAX_TEXT = 1500


@dataclass(frozen=True)
class Event:
    """One decision about a registered model.

    Attributes:
        at: UTC time, ISO 8601.
        model: the registered model.
        version: the version decided on (for a rollback: the version restored).
        event: ``gate`` (the promotion gate judged a challenger), ``pending`` (it passed and awaits a
            person), ``approved``, ``rejected``, ``expired`` or ``rollback``.
        gate: ``passed`` or ``failed`` (the gate's verdict on ``version``), or None.
        reason: the gate's one-line reason, or None.
        by: who decided: the authenticated tracking-server user, else the local user; ``gate`` for
            the automatic decision.
        via: ``pipeline``, ``cli`` or ``prefect``.
        comment: the reviewer's comment.
        champion_before: the ``@champion`` version before the event (None: no champion).
        champion_after: the ``@champion`` version after it.
        recorded_by: the identity that wrote the event (the tracking server's user, else the local
            login); differs from ``by`` when the reviewer answered a Prefect form.
    """

    at: str
    model: str
    version: str
    event: str
    gate: str | None
    reason: str | None
    by: str
    via: str
    comment: str
    champion_before: str | None
    champion_after: str | None
    recorded_by: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("reason", "comment"):
            if data[key] and len(data[key]) > _MAX_TEXT:
                data[key] = data[key][: _MAX_TEXT - 1] + "…"
        return json.dumps(data, sort_keys=True)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reviewer() -> str:
    """Who acts: the tracking server's user when there is one (the server authenticates every
    request with it, so a wrong password fails before anything changes), else the local login."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if uri.startswith(("http://", "https://")) and user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def append(event: Event, client: MlflowClient | None = None) -> str:
    """Record ``event`` as a new tag of its registered model; returns the tag's key."""
    client = client or MlflowClient()
    stamp = event.at.replace(":", "").replace("-", "")  # 20261207T053000.123456Z: sorts as time
    key = f"{HISTORY_PREFIX}{stamp}.{secrets.token_hex(3)}"
    client.set_registered_model_tag(event.model, key, event.to_json())
    return key


def read(model: str, client: MlflowClient | None = None) -> list[Event]:
    """Every recorded event of ``model``, oldest first."""
    client = client or MlflowClient()
    tags = client.get_registered_model(model).tags or {}
    events = [_parse(tags[k]) for k in sorted(k for k in tags if k.startswith(HISTORY_PREFIX))]
    return sorted((e for e in events if e is not None), key=lambda e: e.at)


def _parse(text: str) -> Event | None:
    try:
        data: dict[str, Any] = json.loads(text)
        return Event(**{k: data.get(k) for k in Event.__dataclass_fields__})
    except (ValueError, TypeError):
        return None
