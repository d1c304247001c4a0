"""The promotion gate: may a challenger replace the champion? Pure logic, no MLflow.

Rules (``register`` section of params.yaml):

* every ``floors`` metric of the challenger must reach its floor (absolute);
* with no champion, clearing the floors promotes the first version;
* otherwise the ``primary_metric`` must improve by at least ``min_improvement`` and no
  ``guarded_metrics`` entry may regress by more than its tolerance (a guarded metric that neither
  model has, such as the LOCO types on MVTec AD data, does not apply; one that only one has fails).

Both models are compared on the same frozen test split: the caller re-evaluates the champion when
the split it was measured on differs from the challenger's (``pipelines.stages.promote``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from pipelines.params import RegisterParams

__all__ = ["Check", "GateDecision", "decide", "review_markdown"]


@dataclass(frozen=True)
class Check:
    """One rule of the gate and its outcome."""

    rule: str
    metric: str
    challenger: float | None
    champion: float | None
    limit: float | None
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The verdict with every check, both metric sets and a one-line reason."""

    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _value(metrics: Mapping[str, float] | None, name: str) -> float | None:
    if metrics is None or name not in metrics:
        return None
    value = metrics[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k in metrics if (v := _value(metrics, k)) is not None}


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    cfg: RegisterParams,
) -> GateDecision:
    """Apply the gate. ``champion`` is ``None`` when the registered model has no champion yet."""
    checks: list[Check] = []
    for metric, floor in sorted(cfg.floors.items()):
        value = _value(challenger, metric)
        ok = value is not None and value >= floor
        detail = "missing or not finite" if value is None else f"{value:.4f} {'>=' if ok else '<'} floor {floor:.4f}"
        checks.append(Check("floor", metric, value, None, float(floor), ok, detail))

    if champion is not None:
        primary = cfg.primary_metric
        new, old = _value(challenger, primary), _value(champion, primary)
        if new is None or old is None:
            who = "challenger" if new is None else "champion"
            checks.append(Check("improve", primary, new, old, cfg.min_improvement, False, f"missing for the {who}"))
        else:
            delta = new - old
            ok = delta >= cfg.min_improvement
            detail = f"{new:.4f} - {old:.4f} = {delta:+.4f} {'>=' if ok else '<'} margin {cfg.min_improvement:.4f}"
            checks.append(Check("improve", primary, new, old, cfg.min_improvement, ok, detail))
        for metric, tolerance in sorted(cfg.guarded_metrics.items()):
            new, old = _value(challenger, metric), _value(champion, metric)
            if new is None and old is None:
                checks.append(Check("guard", metric, None, None, float(tolerance), True, "not measured on this data"))
                continue
            if new is None or old is None:
                who = "challenger" if new is None else "champion"
                checks.append(Check("guard", metric, new, old, float(tolerance), False, f"missing for the {who}"))
                continue
            drop = old - new
            ok = drop <= tolerance
            detail = f"regression {drop:+.4f} {'<=' if ok else '>'} tolerance {tolerance:.4f}"
            checks.append(Check("guard", metric, new, old, float(tolerance), ok, detail))

    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.rule} {c.metric}: {c.detail}" for c in failed)
        reason = f"rejected: {reason}"
    elif champion is None:
        reason = "promoted: first version, all floors cleared" if cfg.floors else "promoted: first version (no floors)"
    else:
        reason = f"promoted: {cfg.primary_metric} improved by at least {cfg.min_improvement} with no guarded regression"
    return GateDecision(
        promote=not failed,
        reason=reason,
        checks=checks,
        challenger_metrics=_finite(challenger),
        champion_metrics=None if champion is None else _finite(champion),
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def review_markdown(
    decision: GateDecision,
    *,
    model_name: str,
    challenger_version: str,
    champion_version: str | None,
    split_hash: str,
    pending: bool = False,
) -> str:
    """The promotion review as markdown (logged to MLflow and as a Prefect artifact).

    ``pending``: the gate passed and the version awaits a person's approval (``register.approval: manual``).
    """
    verdict = "PROMOTED" if decision.promote else "REJECTED"
    if decision.promote and pending:
        verdict = "PASSED THE GATE, AWAITING APPROVAL"
    lines = [
        f"# Promotion review: {model_name} v{challenger_version}",
        "",
        f"**Decision: {verdict}** — {decision.reason}",
        "",
        f"- challenger: version {challenger_version}",
        f"- champion: {'version ' + champion_version if champion_version else 'none (first version)'}",
        f"- test split: `{split_hash}` (both measured on it)",
        "",
        "| rule | metric | challenger | champion | limit | result |",
        "|---|---|---|---|---|---|",
    ]
    for c in decision.checks:
        lines.append(
            f"| {c.rule} | {c.metric} | {_fmt(c.challenger)} | {_fmt(c.champion)} | {_fmt(c.limit)} | "
            f"{'pass' if c.passed else 'FAIL'}: {c.detail} |"
        )
    names = sorted(set(decision.challenger_metrics) | set(decision.champion_metrics or {}))
    lines += ["", "## All metrics", "", "| metric | challenger | champion | delta |", "|---|---|---|---|"]
    for name in names:
        new = decision.challenger_metrics.get(name)
        old = (decision.champion_metrics or {}).get(name)
        delta = None if new is None or old is None else new - old
        lines.append(f"| {name} | {_fmt(new)} | {_fmt(old)} | {'–' if delta is None else f'{delta:+.4f}'} |")
    return "\n".join(lines) + "\n"
