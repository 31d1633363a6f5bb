"""What one reconcile concluded, in plain data: the Ready condition it implies, the Azure facts it observed,
and whether and when to try again.

Reconcilers return an `Outcome`; the handlers turn it into a status patch, an Event on transitions and,
for retryable outcomes, a kopf retry. Nothing here knows about kopf or the Azure SDK.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from azure_identity_operator.status import reasons


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One change the operator made in Azure, for a Normal Event and an INFO log line."""

    reason: str
    """CamelCase, e.g. `Created`, `DriftRepaired`, `Recreated`, `Replaced`, `Deleted`."""
    message: str
    """What changed, naming the Azure resource."""
    warning: bool = False
    """A change a person should look at (a Warning Event), e.g. a subscription nearing a limit."""


CREATED = "Created"
ADOPTED = "Adopted"
UPDATED = "Updated"
DRIFT_REPAIRED = "DriftRepaired"
RECREATED = "Recreated"
REPLACED = "Replaced"
DELETED = "Deleted"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    ready: bool
    reason: str
    message: str
    retry_after: float | None = None
    """Seconds until the operator should try again by itself; `None` means it waits for a change (of the
    spec, of a referenced object, or the next drift check)."""
    observed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Status fields (camelCase, as in the CRD) that reflect what Azure holds now. Fields not named keep
    their previous value; a field set to `None` is removed."""
    changes: tuple[Change, ...] = ()
    """What this reconcile changed in Azure, in order."""

    @property
    def needs_user_action(self) -> bool:
        """Not ready, and only a person can change that (the operator may still retry, slowly, to notice
        the fix): kstatus `Stalled`, a Warning Event."""
        return not self.ready and self.reason not in reasons.PROGRESSING and self.reason != reasons.PAUSED

    def with_changes(self, *changes: Change) -> Outcome:
        """This outcome, after `changes` (made before the step that produced it)."""
        return dataclasses.replace(self, changes=(*changes, *self.changes))


def succeeded(
    message: str, observed: Mapping[str, Any] | None = None, *, changes: tuple[Change, ...] = ()
) -> Outcome:
    return Outcome(
        ready=True, reason=reasons.SUCCEEDED, message=message, observed=dict(observed or {}), changes=changes
    )


def not_ready(
    reason: str,
    message: str,
    *,
    retry_after: float | None = None,
    observed: Mapping[str, Any] | None = None,
    changes: tuple[Change, ...] = (),
) -> Outcome:
    return Outcome(
        ready=False,
        reason=reason,
        message=message,
        retry_after=retry_after,
        observed=dict(observed or {}),
        changes=changes,
    )
