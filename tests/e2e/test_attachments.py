"""`UserAssignedIdentity.spec.attachTo` end to end: attach to resources that carry other identities, detach
without disturbing them, repair drift, converge under concurrent changes, and report bad targets.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from e2e.helpers import api_version, apply_all, create_resource, identity_of, is_ready
from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import (
    ready_condition,
    wait_for,
    wait_gone,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e


def attached(client: ResourceManagementClient, resource_id: str) -> list[str]:
    """Lower-cased IDs of the user-assigned identities on the resource, sorted."""
    return sorted(key.lower() for key in identity_of(client, resource_id).get("userAssignedIdentities") or {})


def uai_manifest(
    name: str, resource_group: str, attach_to: list[str], policy: str = "Delete"
) -> dict[str, Any]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "UserAssignedIdentity",
        "metadata": {"name": name},
        "spec": {
            "resourceGroup": resource_group,
            "location": "westus",
            "attachTo": attach_to,
            "deletionPolicy": policy,
        },
    }


def attachment_states(body: dict[str, Any]) -> dict[str, str]:
    return {a["resourceId"]: a["state"] for a in body["status"].get("attachments") or ()}


def test_attach_to_two_resources_with_other_identities_then_detach_without_disturbing_them(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    kube = kube_emulator
    base = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}/providers"
    vm = f"{base}/Microsoft.Compute/virtualMachines/shared-vm"
    slot = f"{base}/Microsoft.Web/sites/shared-app/slots/blue"
    theirs = msi_client.user_assigned_identities.create_or_update(
        resource_group, "theirs", {"location": "westus"}
    )
    create_resource(
        resource_client,
        vm,
        {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {theirs.id: {}}},
    )
    create_resource(resource_client, f"{base}/Microsoft.Web/sites/shared-app")
    create_resource(resource_client, slot, {"type": "SystemAssigned"})
    vm_principal = identity_of(resource_client, vm)["principalId"]
    slot_principal = identity_of(resource_client, slot)["principalId"]

    apply_all(kube, namespace, uai_manifest("worker", resource_group, [vm, slot]))
    body = wait_ready(kube, namespace, "uai/worker")
    ours = body["status"]["id"].lower()
    assert attachment_states(body) == {vm: "Attached", slot: "Attached"}
    assert attached(resource_client, vm) == sorted([theirs.id.lower(), ours])
    assert attached(resource_client, slot) == [ours]
    vm_identity, slot_identity = identity_of(resource_client, vm), identity_of(resource_client, slot)
    assert vm_identity["type"] == slot_identity["type"] == "SystemAssigned, UserAssigned"
    assert (vm_identity["principalId"], slot_identity["principalId"]) == (vm_principal, slot_principal)

    # The next drift passes read both resources and write nothing.
    azure_emulator.reset_counts()
    wait_for(
        lambda: azure_emulator.request_counts().get(f"GET {slot}", 0) >= 2,
        timeout=20,
        what="two drift passes over the slot",
    )
    assert azure_emulator.arm_write_count("shared-") == 0

    # Detached behind the operator's back: attached again by the drift check.
    resource_client.resources.begin_update_by_id(
        slot, api_version=api_version(slot), parameters={"identity": {"type": "SystemAssigned"}}
    ).result()
    wait_for(lambda: attached(resource_client, slot) == [ours], timeout=20, what="the slot to be re-attached")

    # The identity deleted in Azure and created again by the operator (same ID, new principal): the
    # resources still name the old principal, so the attachment is renewed.
    old_principal = body["status"]["principalId"]
    msi_client.user_assigned_identities.delete(resource_group, "worker")

    def renewed() -> str | None:
        entries = identity_of(resource_client, vm).get("userAssignedIdentities") or {}
        principal = next((v.get("principalId") for k, v in entries.items() if k.lower() == ours), None)
        return principal if principal not in (None, old_principal) else None

    new_principal = wait_for(renewed, timeout=20, what="the VM to hold the re-created identity")
    # The status follows (written after the attachments, in the same pass).
    wait_object(
        kube,
        namespace,
        "uai/worker",
        lambda b: b["status"].get("principalId") == new_principal and is_ready(b),
        what="the status to report the new principal",
    )

    # Removed from the list: detached from the slot only; the slot keeps its system-assigned identity.
    apply_all(kube, namespace, uai_manifest("worker", resource_group, [vm]))
    wait_for(lambda: attached(resource_client, slot) == [], timeout=20, what="the slot to be detached")
    slot_identity = identity_of(resource_client, slot)
    assert slot_identity["type"] == "SystemAssigned"
    assert slot_identity["principalId"] == slot_principal

    body = wait_object(
        kube,
        namespace,
        "uai/worker",
        lambda body: attachment_states(body) == {vm: "Attached"},
        timeout=20,
        what="status.attachments to drop the slot",
    )
    assert ready_condition(body)["status"] == "True"

    # The object deleted: detached from the VM (keeping its other identities), then deleted in Azure.
    kube.kubectl("delete", "-n", namespace, "uai/worker", "--timeout=30s", timeout=40)
    assert attached(resource_client, vm) == [theirs.id.lower()]
    vm_identity = identity_of(resource_client, vm)
    assert vm_identity["type"] == "SystemAssigned, UserAssigned"
    assert vm_identity["principalId"] == vm_principal
    assert [i.name for i in msi_client.user_assigned_identities.list_by_resource_group(resource_group)] == [
        "theirs"
    ]


def test_a_system_assigned_identity_and_two_attachments_at_once_converge(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
) -> None:
    kube = kube_emulator
    group = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    vm = f"{group}/providers/Microsoft.Compute/virtualMachines/busy"
    create_resource(resource_client, vm)
    azure_emulator.update_settings(lro_seconds=0.5)  # slow writes widen the window for lost updates
    try:
        apply_all(
            kube,
            namespace,
            uai_manifest("first", resource_group, [vm]),
            uai_manifest("second", resource_group, [vm]),
            {
                "apiVersion": "identityoperator.dev/v1alpha1",
                "kind": "SystemAssignedIdentity",
                "metadata": {"name": "busy"},
                "spec": {"resourceId": vm},
            },
        )
        first = wait_ready(kube, namespace, "uai/first")
        second = wait_ready(kube, namespace, "uai/second")
        system = wait_ready(kube, namespace, "sai/busy")
    finally:
        azure_emulator.update_settings(lro_seconds=0)
    identity = identity_of(resource_client, vm)
    assert identity["type"] == "SystemAssigned, UserAssigned"
    assert identity["principalId"] == system["status"]["principalId"]
    assert attached(resource_client, vm) == sorted(
        [first["status"]["id"].lower(), second["status"]["id"].lower()]
    )

    # All three deleted at once: each removes only its own part, and the type ends up None.
    kube.kubectl(
        "delete", "-n", namespace, "uai/first", "uai/second", "sai/busy", "--timeout=40s", timeout=50
    )
    identity = identity_of(resource_client, vm)
    assert identity.get("type", "None") == "None", identity
    assert not identity.get("userAssignedIdentities")


def test_bad_attachment_targets_are_reported_per_resource_and_recover(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
) -> None:
    kube = kube_emulator
    base = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}/providers"
    app = f"{base}/Microsoft.Web/sites/fine-app"
    missing = f"{base}/Microsoft.Compute/virtualMachines/missing-vm"
    vnet = f"{base}/Microsoft.Network/virtualNetworks/plain-net"
    create_resource(resource_client, app)
    resource_client.resources.begin_create_or_update_by_id(
        vnet, api_version="2024-05-01", parameters={"location": "westus"}
    ).result()

    rejected = kube.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(uai_manifest("typo", resource_group, ["not-an-arm-id"])),
        check=False,
    )
    assert rejected.returncode != 0
    assert "attachTo" in rejected.stderr

    apply_all(kube, namespace, uai_manifest("picky", resource_group, [app, missing, vnet]))
    body = wait_reason(kube, namespace, "uai/picky", "ResourceNotFound")
    states = {a["resourceId"]: a for a in body["status"]["attachments"]}
    assert states[app]["state"] == "Attached"
    assert (states[missing]["state"], states[missing]["reason"]) == ("Failed", "ResourceNotFound")
    assert (states[vnet]["state"], states[vnet]["reason"]) == ("Failed", "UnsupportedResource")
    assert "Microsoft.Network/virtualNetworks" in states[vnet]["message"]
    message = ready_condition(body)["message"]
    assert missing in message
    assert vnet in message
    assert "principalId" in body["status"], "the identity itself exists; only attachments failed"

    apply_all(kube, namespace, uai_manifest("picky", resource_group, [app]))
    body = wait_ready(kube, namespace, "uai/picky")
    assert attachment_states(body) == {app: "Attached"}
    kube.kubectl("delete", "-n", namespace, "uai/picky", "--timeout=30s", timeout=40)
    wait_gone(kube, namespace, "uai/picky")
    assert attached(resource_client, app) == []
