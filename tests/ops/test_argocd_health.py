"""The Argo CD health check's logic on status objects of every shape the operator writes.

Objects captured from a real operator run are checked in test_e2e_observability.py; this covers each branch:
no status yet, an unobserved generation, deletion (and a blocked one), Ready=True, a paused object, and
Ready=False for every other reason the operator reports, each classified as progressing on its own or
needing a person.
"""

from __future__ import annotations

from typing import Any

import pytest

from azure_identity_operator.status import outcome, reasons, report

from .argocd import ArgoHealthCheck
from .flux import FluxHealthCheck, kstatus

# Ready=False reasons that heal without anyone acting; every other reason is Degraded.
TRANSIENT = reasons.PROGRESSING
"""The operator's own list of reasons that heal by themselves: the script must agree with it."""
SUSPENDED = {reasons.PAUSED}
ALL_REASONS = {value for name, value in vars(reasons).items() if name.isupper() and isinstance(value, str)}


@pytest.fixture(scope="module")
def health() -> ArgoHealthCheck:
    return ArgoHealthCheck()


def resource(
    *, generation: int = 1, status: dict[str, Any] | None = None, deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "app", "namespace": "team-a", "generation": generation}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    obj: dict[str, Any] = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "UserAssignedIdentity",
        "metadata": metadata,
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def ready(status: str, reason: str, *, generation: int = 1, message: str = "details") -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }


def test_every_reason_is_known_to_the_test() -> None:
    assert TRANSIENT <= ALL_REASONS
    assert SUSPENDED <= ALL_REASONS
    assert not TRANSIENT & SUSPENDED
    assert reasons.SUCCEEDED in ALL_REASONS


def test_no_status_yet_is_progressing(health: ArgoHealthCheck) -> None:
    assert health(resource()).status == "Progressing"
    assert health(resource(status={})).status == "Progressing"
    assert health(resource(status={"conditions": []})).status == "Progressing"


def test_ready_for_the_current_generation_is_healthy(health: ArgoHealthCheck) -> None:
    result = health(resource(status=ready("True", reasons.SUCCEEDED, message="identity exists")))
    assert (result.status, result.message) == ("Healthy", "identity exists")


def test_a_status_for_an_older_generation_is_progressing(health: ArgoHealthCheck) -> None:
    stale = resource(generation=3, status=ready("True", reasons.SUCCEEDED, generation=2))
    result = health(stale)
    assert result.status == "Progressing"
    assert "generation 3" in result.message
    # Even a failure reported for the old spec says nothing about the new one.
    assert health(
        resource(generation=3, status=ready("False", reasons.INVALID_SPEC, generation=2))
    ).status == ("Progressing")


def test_top_level_observed_generation_counts_when_the_condition_has_none(health: ArgoHealthCheck) -> None:
    status = ready("True", reasons.SUCCEEDED, generation=2)
    del status["conditions"][0]["observedGeneration"]
    assert health(resource(generation=2, status=status)).status == "Healthy"
    assert health(resource(generation=3, status=status)).status == "Progressing"


@pytest.mark.parametrize("reason", sorted(ALL_REASONS - {reasons.SUCCEEDED}))
def test_ready_false_is_progressing_only_for_reasons_that_heal_on_their_own(
    health: ArgoHealthCheck, reason: str
) -> None:
    result = health(resource(status=ready("False", reason, message="what happened")))
    if reason in TRANSIENT:
        assert result.status == "Progressing"
        assert result.message == "what happened"
    elif reason in SUSPENDED:
        assert (result.status, result.message) == ("Suspended", "what happened")
    else:
        assert result.status == "Degraded"
        assert result.message == f"{reason}: what happened"


def test_a_paused_object_is_suspended_with_the_ready_message(health: ArgoHealthCheck) -> None:
    paused = outcome.not_ready(reasons.PAUSED, "reconcile-policy is 'skip': Azure is left alone")
    obj = resource(status=report.next_status(None, paused, generation=1, now="2026-01-01T00:00:00Z"))
    result = health(obj)
    assert (result.status, result.message) == ("Suspended", "reconcile-policy is 'skip': Azure is left alone")
    # A spec changed while paused is Progressing until the operator has reported the new generation
    # (it does, still as Paused), and a paused object being deleted is Progressing: it is released at once.
    assert health(resource(generation=2, status=obj["status"])).status == "Progressing"
    assert health(resource(deleting=True, status=obj["status"])).status == "Progressing"
    # Only Ready=False counts as paused.
    assert health(resource(status=ready("Unknown", reasons.PAUSED))).status == "Progressing"


def test_an_unknown_reason_is_degraded(health: ArgoHealthCheck) -> None:
    assert health(resource(status=ready("False", "SomethingNew"))).status == "Degraded"


def test_ready_unknown_is_progressing(health: ArgoHealthCheck) -> None:
    assert health(resource(status=ready("Unknown", reasons.RECONCILING))).status == "Progressing"


def test_deletion_is_progressing_unless_blocked(health: ArgoHealthCheck) -> None:
    assert health(resource(deleting=True, status=ready("True", reasons.SUCCEEDED))).status == "Progressing"
    blocked = health(
        resource(deleting=True, status=ready("False", reasons.DELETION_BLOCKED, message="locked"))
    )
    assert (blocked.status, blocked.message) == ("Degraded", "locked")


# kstatus has no "suspended": a paused object, with neither `Reconciling` nor `Stalled`, is Current.
ARGO_TO_FLUX = {
    "Healthy": "Current",
    "Suspended": "Current",
    "Progressing": "InProgress",
    "Degraded": "Failed",
}


@pytest.mark.parametrize("reason", sorted(ALL_REASONS))
def test_the_documented_flux_expressions_agree_with_the_argo_cd_check(
    health: ArgoHealthCheck, reason: str
) -> None:
    flux = FluxHealthCheck()
    for condition_status in ("True", "False", "Unknown"):
        obj = resource(status=ready(condition_status, reason))
        assert flux(obj) == ARGO_TO_FLUX[health(obj).status], (condition_status, reason)
    stale = resource(generation=2, status=ready("True", reason, generation=1))
    assert flux(stale) == "InProgress"


@pytest.mark.parametrize("reason", sorted(ALL_REASONS))
def test_plain_kstatus_agrees_with_the_argo_cd_check_on_the_status_the_operator_writes(
    health: ArgoHealthCheck, reason: str
) -> None:
    """Flux without health check expressions reads `Reconciling`/`Stalled`, which the operator writes
    next to `Ready` from the same outcome."""
    if reason == reasons.SUCCEEDED:
        result = outcome.succeeded("Azure matches the spec")
    else:
        result = outcome.not_ready(reason, "details")
    obj = resource(status=report.next_status(None, result, generation=1, now="2026-01-01T00:00:00Z"))
    assert kstatus(obj) == ARGO_TO_FLUX[health(obj).status]
