"""Correct under change, whatever the object's history or its status says: the real operator process, both
emulators and real kubectl.

Covers: a spec change reverted while a retry backoff is pending is reconciled (not stuck on the old
generation); a fix made during a backoff is acted on at once; a drift check that fails on a transient ARM
error keeps the last known good status and does not cascade to dependants; an object arriving with a
copied `last-handled-configuration` annotation is reconciled; a forged `status.principalId` grants nothing
to the false principal and removes nothing; a forged `status.id` never makes a deletion remove another
object's identity; a scope written `/SUBSCRIPTIONS/...` is accepted; the pause annotation stops all Azure
traffic for the object and says so, and removing it resumes.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from e2e.helpers import arm_reads, identity_manifest, is_ready
from e2e.test_role_assignments import (
    assignments_of,
    identity_principal,
    raw_principal,
    rg_scope,
    role_assignment,
)
from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import (
    SessionOperator,
    apply,
    events_for,
    get_object,
    ready_condition,
    wait_gone,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e

UNKNOWN_PRINCIPAL = "0d7c4a3e-5b1f-4c2a-9e8d-7f6a5b4c3d2e"


def patch_status(kube: KubeEmulatorInfo, namespace: str, resource: str, status: dict[str, Any]) -> None:
    """What anyone allowed to write `/status` can do."""
    kube.kubectl(
        "patch", "-n", namespace, resource, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def current(body: dict[str, Any]) -> bool:
    return bool(body["status"].get("observedGeneration") == body["metadata"]["generation"])


def test_a_change_reverted_during_a_backoff_is_reconciled(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    good = role_assignment("reader", scope, principal=identity_principal("app"))
    apply(kube_emulator, namespace, identity_manifest("app", resource_group) + "---\n" + good)
    principal_id = wait_ready(kube_emulator, namespace, "uai/app")["status"]["principalId"]
    wait_ready(kube_emulator, namespace, "roleassignment/reader")

    # A principal Azure does not know: retried with backoff.
    unknown = raw_principal(UNKNOWN_PRINCIPAL, None)
    apply(kube_emulator, namespace, role_assignment("reader", scope, principal=unknown))
    wait_reason(kube_emulator, namespace, "roleassignment/reader", "WaitingForPrincipal")
    apply(kube_emulator, namespace, good)  # reverted while the retry is pending

    body = wait_object(
        kube_emulator,
        namespace,
        "roleassignment/reader",
        lambda b: is_ready(b) and current(b),
        timeout=10,
        what="the reverted spec to be reconciled",
    )
    assert body["metadata"]["generation"] == 3
    assert body["status"]["principalId"] == principal_id
    assert len(assignments_of(authorization_client, scope, principal_id)) == 1
    assert assignments_of(authorization_client, scope, UNKNOWN_PRINCIPAL) == []


def test_a_fix_made_during_a_backoff_is_acted_on_at_once(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    unknown = raw_principal(UNKNOWN_PRINCIPAL, None)
    apply(kube_emulator, namespace, role_assignment("grant", scope, principal=unknown))
    wait_reason(kube_emulator, namespace, "roleassignment/grant", "WaitingForPrincipal")
    time.sleep(2)  # several failed attempts: the backoff has grown past the drift interval's share
    real = azure_emulator.create_service_principal(f"fixed-{uuid.uuid4().hex[:6]}").object_id
    fixed_at = time.monotonic()
    apply(kube_emulator, namespace, role_assignment("grant", scope, principal=raw_principal(real, None)))
    wait_object(
        kube_emulator,
        namespace,
        "roleassignment/grant",
        lambda b: is_ready(b) and current(b),
        timeout=10,
        what="the fixed spec to be reconciled",
    )
    assert time.monotonic() - fixed_at < 2.5, "a spec change waited for the old backoff"
    assert len(assignments_of(authorization_client, scope, real)) == 1


def test_a_failed_drift_check_keeps_the_last_known_good_status(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        identity_manifest("steady", resource_group)
        + "---\n"
        + role_assignment("steady", scope, principal=identity_principal("steady")),
    )
    identity = wait_ready(kube_emulator, namespace, "uai/steady")
    assignment = wait_ready(kube_emulator, namespace, "roleassignment/steady")
    # Waiting for an identity applied in the same batch is progress, not something a person must fix.
    assert all(e["type"] == "Normal" for e in events_for(kube_emulator, namespace, "steady"))
    azure_emulator.inject_fault(
        path_regex=f"{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/steady$",
        method="GET",
        status=503,
        code="ServiceUnavailable",
        count=1000,
    )
    events_before = {name: events_for(kube_emulator, namespace, name) for name in ("steady",)}
    try:
        reads = arm_reads(azure_emulator, resource_group)
        time.sleep(3 * operator.sync_interval)
        assert arm_reads(azure_emulator, resource_group) > reads, "drift checks ran (and failed)"
        for resource, before in (("uai/steady", identity), ("roleassignment/steady", assignment)):
            after = get_object(kube_emulator, namespace, resource)
            assert after is not None
            assert ready_condition(after) == ready_condition(before), f"{resource} kept its Ready"
            assert after["status"].get("principalId") == before["status"].get("principalId")
    finally:
        azure_emulator.clear_faults()
    for name, before in events_before.items():
        assert events_for(kube_emulator, namespace, name) == before, "no Event: nothing changed"


def test_a_copied_last_handled_annotation_does_not_skip_the_object(
    operator: SessionOperator, kube_emulator: KubeEmulatorInfo, namespace: str, resource_group: str
) -> None:
    spec = {"resourceGroup": resource_group, "location": "westeurope"}
    manifest = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "UserAssignedIdentity",
        "metadata": {
            "name": "restored",
            # As `kubectl get -o yaml` from another cluster, or a backup, carries it.
            "annotations": {
                "kopf.identityoperator.dev/last-handled-configuration": json.dumps({"spec": spec}),
            },
        },
        "spec": spec,
    }
    apply(kube_emulator, namespace, json.dumps(manifest))
    body = wait_ready(kube_emulator, namespace, "uai/restored", timeout=15)
    assert body["status"]["principalId"]


def test_a_forged_status_principal_moves_nothing_in_azure(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    apply(
        kube_emulator,
        namespace,
        identity_manifest("victim", resource_group)
        + "---\n"
        + role_assignment("victim", scope, principal=identity_principal("victim")),
    )
    real = wait_ready(kube_emulator, namespace, "uai/victim")["status"]["principalId"]
    wait_ready(kube_emulator, namespace, "roleassignment/victim")
    forged = str(uuid.uuid4())
    patch_status(kube_emulator, namespace, "uai/victim", {"principalId": forged})

    deadline = time.monotonic() + 3 * operator.sync_interval
    while time.monotonic() < deadline:
        assert assignments_of(authorization_client, scope, forged) == [], "granted to the forged principal"
        assert len(assignments_of(authorization_client, scope, real)) == 1, "the real grant was removed"
        time.sleep(0.2)
    wait_object(
        kube_emulator,
        namespace,
        "uai/victim",
        lambda b: b["status"].get("principalId") == real,
        timeout=10,
        what="the status to be corrected from Azure",
    )
    assert wait_ready(kube_emulator, namespace, "roleassignment/victim")["status"]["principalId"] == real


def test_a_forged_status_id_never_deletes_another_identity(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(
        kube_emulator,
        namespace,
        identity_manifest("mine", resource_group) + "---\n" + identity_manifest("theirs", resource_group),
    )
    wait_ready(kube_emulator, namespace, "uai/mine")
    theirs = wait_ready(kube_emulator, namespace, "uai/theirs")["status"]["id"]
    patch_status(kube_emulator, namespace, "uai/mine", {"id": theirs})
    kube_emulator.kubectl("delete", "-n", namespace, "uai/mine", "--timeout=30s")
    names = sorted(i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group))
    assert names == ["theirs"], "deleting an object deletes its own identity, and only that"


def test_a_scope_in_upper_case_is_the_same_scope(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    namespace: str,
    resource_group: str,
) -> None:
    principal_id = azure_emulator.create_service_principal(f"upper-{uuid.uuid4().hex[:6]}").object_id
    scope = rg_scope(azure_emulator, resource_group)
    shouted = scope.replace("/subscriptions/", "/SUBSCRIPTIONS/").replace(
        "/resourceGroups/", "/RESOURCEGROUPS/"
    )
    apply(
        kube_emulator, namespace, role_assignment("shouted", shouted, principal=raw_principal(principal_id))
    )
    wait_ready(kube_emulator, namespace, "roleassignment/shouted")
    assert len(assignments_of(authorization_client, scope, principal_id)) == 1
    kube_emulator.kubectl("delete", "-n", namespace, "roleassignment/shouted", "--timeout=30s")
    assert assignments_of(authorization_client, scope, principal_id) == []


def test_pause_stops_every_azure_call_and_resuming_repairs(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    apply(kube_emulator, namespace, identity_manifest("quiet", resource_group))
    wait_ready(kube_emulator, namespace, "uai/quiet")
    kube_emulator.kubectl(
        "annotate", "-n", namespace, "uai/quiet", "identityoperator.dev/reconcile-policy=skip"
    )
    paused = wait_reason(kube_emulator, namespace, "uai/quiet", "Paused", timeout=10)
    assert "reconcile-policy" in ready_condition(paused)["message"]
    msi_client.user_assigned_identities.delete(resource_group, "quiet")  # behind the operator's back
    reads = arm_reads(azure_emulator, resource_group)
    time.sleep(2 * operator.sync_interval)
    assert arm_reads(azure_emulator, resource_group) == reads, "a paused object is not read from Azure"
    assert [i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group)] == []

    kube_emulator.kubectl("annotate", "-n", namespace, "uai/quiet", "identityoperator.dev/reconcile-policy-")
    wait_ready(kube_emulator, namespace, "uai/quiet", timeout=10)
    assert [i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group)] == [
        "quiet"
    ]
    kube_emulator.kubectl("delete", "-n", namespace, "uai/quiet", "--timeout=30s")
    wait_gone(kube_emulator, namespace, "uai/quiet")


def test_kubectl_get_shows_the_role_asked_for_while_it_cannot_be_resolved(
    operator: SessionOperator,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
) -> None:
    scope = rg_scope(azure_emulator, resource_group)
    principal = raw_principal(str(uuid.uuid4()))
    apply(kube_emulator, namespace, role_assignment("typo", scope, principal=principal, role="role: Reedr"))
    body = wait_reason(kube_emulator, namespace, "roleassignment/typo", "RoleNotFound")
    assert body["status"]["roleName"] == "Reedr"
    [event] = events_for(kube_emulator, namespace, "typo")
    assert (event["type"], event["reason"]) == ("Warning", "RoleNotFound")
    printed = kube_emulator.kubectl("get", "-n", namespace, "roleassignment/typo").stdout
    assert "Reedr" in printed
    assert scope not in printed, "the scope shows with -o wide only"
