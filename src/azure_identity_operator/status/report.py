"""The next `status` of an object from its previous status and a reconcile `Outcome`.

Pure and deterministic for a given clock: the same outcome applied to the status it produced returns an
equal dict, so the handlers can skip the status patch entirely when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_identity_operator.status import conditions, reasons
from azure_identity_operator.status.outcome import Outcome


def next_status(
    previous: Mapping[str, Any] | None, result: Outcome, *, generation: int | None, now: str
) -> dict[str, Any]:
    status: dict[str, Any] = {key: value for key, value in (previous or {}).items()}
    for key, value in result.observed.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = conditions.set_condition(
        status.get("conditions"),
        type=conditions.READY,
        status="True" if result.ready else "False",
        reason=result.reason,
        message=result.message,
        observed_generation=generation,
        now=now,
    )
    status["conditions"] = _kstatus_conditions(status["conditions"], result, generation=generation, now=now)
    return status


def _kstatus_conditions(
    current: list[dict[str, Any]], result: Outcome, *, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """`Reconciling` and `Stalled`, the conditions kstatus (Flux, kubectl wait, cli-utils) reads: True while
    they apply, absent otherwise, so a Ready=False object is never mistaken for a settled one."""
    if result.ready or result.reason == reasons.PAUSED:
        # Paused is settled by the user's choice: neither progressing nor waiting for a fix.
        current = conditions.remove_condition(current, conditions.RECONCILING)
        return conditions.remove_condition(current, conditions.STALLED)
    applies, other = (
        (conditions.STALLED, conditions.RECONCILING)
        if result.needs_user_action
        else (conditions.RECONCILING, conditions.STALLED)
    )
    current = conditions.set_condition(
        current,
        type=applies,
        status="True",
        reason=result.reason,
        message=result.message,
        observed_generation=generation,
        now=now,
    )
    return conditions.remove_condition(current, other)


def status_patch(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch from `previous` to `current` (top-level keys only; removed keys become `None`)."""
    previous = previous or {}
    patch = {key: value for key, value in current.items() if previous.get(key) != value}
    patch.update({key: None for key in previous if key not in current})
    return patch


def ready_transition(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether the Ready condition's status or reason changed: the moments worth an Event."""
    before = conditions.find_condition((previous or {}).get("conditions"), conditions.READY) or {}
    after = conditions.find_condition(current.get("conditions"), conditions.READY) or {}
    return (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason"))
