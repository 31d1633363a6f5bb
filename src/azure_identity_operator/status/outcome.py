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

    @property
    def needs_user_action(self) -> bool:
        """Not ready, and nothing but the user changes that: neither a retry nor a known wait is pending."""
        return not self.ready and self.retry_after is None and self.reason not in reasons.PROGRESSING


def succeeded(message: str, observed: Mapping[str, Any] | None = None) -> Outcome:
    return Outcome(ready=True, reason=reasons.SUCCEEDED, message=message, observed=dict(observed or {}))


def not_ready(
    reason: str,
    message: str,
    *,
    retry_after: float | None = None,
    observed: Mapping[str, Any] | None = None,
) -> Outcome:
    return Outcome(
        ready=False, reason=reason, message=message, retry_after=retry_after, observed=dict(observed or {})
    )
