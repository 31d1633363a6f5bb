"""The operator's metrics: ARM operation names, reconcile results, objects by Ready state, exposition.

Covers `observability.metrics` on a fresh registry per test, read back through prometheus-client's own
text exposition, so what is asserted is what Prometheus would scrape.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from azure_identity_operator.observability import metrics

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"


def samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        (
            "PUT",
            f"{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app",
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
        ),
        (
            "GET",
            f"{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        ),
        (
            "DELETE",
            f"{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"
            "/federatedIdentityCredentials/web",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
        ),
        (
            "PUT",
            f"{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/"
            "Microsoft.Authorization/roleAssignments/0f4c1b3e-5f1a-4d43-9a5b-0c8a3e3c2a11",
            "Microsoft.Authorization/roleAssignments/write",
        ),
        (
            "GET",
            "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "Microsoft.Authorization/roleDefinitions/read",
        ),
        (
            "PATCH",
            f"{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/app/slots/staging",
            "Microsoft.Web/sites/slots/write",
        ),
        (
            "POST",
            f"{SUB}/providers/Microsoft.ManagedIdentity/register",
            "Microsoft.ManagedIdentity/register/action",
        ),
        (
            "POST",
            f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/start",
            "Microsoft.Compute/virtualMachines/start/action",
        ),
        ("GET", f"{SUB}/resourcegroups/rg", "Microsoft.Resources/resourceGroups/read"),
        ("GET", SUB, "Microsoft.Resources/subscriptions/read"),
    ],
)
def test_arm_operation_is_the_rbac_action_without_names(method: str, path: str, operation: str) -> None:
    assert metrics.arm_operation(method, path) == operation
    assert metrics.arm_operation(method, path + "?api-version=2024-11-30") == operation


def test_reconciles_are_counted_by_kind_result_and_reason_with_durations() -> None:
    recorded = metrics.OperatorMetrics(process_metrics=False)
    recorded.record_reconcile(
        kind="UserAssignedIdentity", ready=True, needs_user=False, reason="Succeeded", seconds=0.2
    )
    recorded.record_reconcile(
        kind="UserAssignedIdentity", ready=True, needs_user=False, reason="Succeeded", seconds=0.4
    )
    recorded.record_reconcile(
        kind="RoleAssignment", ready=False, needs_user=False, reason="WaitingForPrincipal", seconds=1.5
    )
    recorded.record_reconcile(
        kind="RoleAssignment", ready=False, needs_user=True, reason="InvalidSpec", seconds=0.01
    )
    found = samples(recorded.registry)
    prefix = "azure_identity_operator"
    uai = (("kind", "UserAssignedIdentity"), ("reason", "Succeeded"), ("result", "success"))
    assert found[(f"{prefix}_reconciles_total", uai)] == 2
    retry = (("kind", "RoleAssignment"), ("reason", "WaitingForPrincipal"), ("result", "retry"))
    assert found[(f"{prefix}_reconciles_total", retry)] == 1
    blocked = (("kind", "RoleAssignment"), ("reason", "InvalidSpec"), ("result", "needs_user"))
    assert found[(f"{prefix}_reconciles_total", blocked)] == 1
    duration = (("kind", "UserAssignedIdentity"), ("result", "success"))
    assert found[(f"{prefix}_reconcile_duration_seconds_count", duration)] == 2
    assert found[(f"{prefix}_reconcile_duration_seconds_sum", duration)] == pytest.approx(0.6)


def test_arm_requests_and_throttling_waits() -> None:
    recorded = metrics.OperatorMetrics(process_metrics=False)
    operation = "Microsoft.ManagedIdentity/userAssignedIdentities/write"
    recorded.record_arm_request(operation=operation, method="PUT", status_code=429, seconds=0.01)
    recorded.record_throttle(operation=operation, wait_seconds=7)
    recorded.record_arm_request(operation=operation, method="PUT", status_code=201, seconds=0.03)
    recorded.record_arm_request(operation=operation, method="PUT", status_code=None, seconds=5.0)
    found = samples(recorded.registry)
    prefix = "azure_identity_operator"
    for code in ("429", "201", "none"):
        labels = (("method", "PUT"), ("operation", operation), ("status_code", code))
        assert found[(f"{prefix}_arm_requests_total", labels)] == 1
    latency = (("method", "PUT"), ("operation", operation))
    assert found[(f"{prefix}_arm_request_duration_seconds_count", latency)] == 3
    throttled = (("operation", operation),)
    assert found[(f"{prefix}_arm_throttle_wait_seconds_count", throttled)] == 1
    assert found[(f"{prefix}_arm_throttle_wait_seconds_sum", throttled)] == 7


def ready_status(status: str, reason: str) -> dict[str, object]:
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}]}


def test_objects_by_ready_state_follow_observations_and_deletions() -> None:
    recorded = metrics.OperatorMetrics(process_metrics=False)
    states = recorded.ready_states
    states.observe(uid="a", kind="UserAssignedIdentity", status=None)
    states.observe(uid="b", kind="UserAssignedIdentity", status=ready_status("True", "Succeeded"))
    states.observe(uid="c", kind="UserAssignedIdentity", status=ready_status("True", "Succeeded"))
    states.observe(uid="d", kind="RoleAssignment", status=ready_status("False", "AuthorizationFailed"))
    found = samples(recorded.registry)
    name = "azure_identity_operator_objects"
    assert found[(name, (("kind", "UserAssignedIdentity"), ("ready", "Unknown"), ("reason", "")))] == 1
    assert found[(name, (("kind", "UserAssignedIdentity"), ("ready", "True"), ("reason", "Succeeded")))] == 2
    assert (
        found[(name, (("kind", "RoleAssignment"), ("ready", "False"), ("reason", "AuthorizationFailed")))]
        == 1
    )

    # An object moves between states, another is deleted: the gauge counts what exists now.
    states.observe(uid="a", kind="UserAssignedIdentity", status=ready_status("True", "Succeeded"))
    states.forget("d")
    found = samples(recorded.registry)
    assert found[(name, (("kind", "UserAssignedIdentity"), ("ready", "True"), ("reason", "Succeeded")))] == 3
    assert not [key for key in found if key[0] == name and ("kind", "RoleAssignment") in key[1]]
    assert not [key for key in found if key[0] == name and ("ready", "Unknown") in key[1]]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, ("Unknown", "")),
        ({}, ("Unknown", "")),
        ({"conditions": [{"type": "Other", "status": "True"}]}, ("Unknown", "")),
        (
            {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "Reconciling"}]},
            ("Unknown", "Reconciling"),
        ),
        (ready_status("False", "Throttled"), ("False", "Throttled")),
    ],
)
def test_ready_of_reads_the_ready_condition(
    status: dict[str, object] | None, expected: tuple[str, str]
) -> None:
    assert metrics.ready_of(status) == expected
