"""Kubernetes-style conditions (`metav1.Condition`): computing the next list from the previous one.

`lastTransitionTime` changes only when a condition's `status` flips, so `kubectl wait`, kstatus and
dashboards see real transitions, and writing the same outcome twice produces the identical list (which is
what lets the handlers skip a status patch when nothing changed).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal

READY = "Ready"
RECONCILING = "Reconciling"
"""kstatus' abnormal-true condition: present (True) only while the operator is still making progress."""
STALLED = "Stalled"
"""kstatus' abnormal-true condition: present (True) only while progress needs the user's action."""

ConditionStatus = Literal["True", "False", "Unknown"]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float | None:
    """Unix time of an RFC 3339 timestamp as conditions carry it; `None` if it is not one."""
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Return a new list with `type` set; every other condition is kept as it was, in its place."""
    previous = find_condition(conditions, type)
    transitioned = previous is None or previous.get("status") != status
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now
        if transitioned or previous is None
        else previous.get("lastTransitionTime", now),
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    result: list[dict[str, Any]] = []
    replaced = False
    for existing in conditions or ():
        if existing.get("type") == type:
            result.append(condition)
            replaced = True
        else:
            result.append(dict(existing))
    if not replaced:
        result.append(condition)
    return result


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> list[dict[str, Any]]:
    return [dict(condition) for condition in conditions or () if condition.get("type") != type]


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type:
            return condition
    return None


def is_ready(status: Mapping[str, Any] | None) -> bool:
    condition = find_condition((status or {}).get("conditions"), READY)
    return condition is not None and condition.get("status") == "True"
