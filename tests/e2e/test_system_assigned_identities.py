"""SystemAssignedIdentity end to end: the real operator process, both emulators, real kubectl.

Resources (VMs, apps, slots) are created in the Azure emulator with the real sync SDK, as their owners
would; the operator only ever touches their identity block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from e2e.helpers import api_version, apply_all, create_resource, identity_of
from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import (
    events_for,
    get_object,
    ready_condition,
    wait_for,
    wait_object,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.e2e

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def resource_path(subscription: str, group: str, kind: str, name: str) -> str:
    base = f"/subscriptions/{subscription}/resourceGroups/{group}/providers"
    if kind == "vm":
        return f"{base}/Microsoft.Compute/virtualMachines/{name}"
    if kind == "app":
        return f"{base}/Microsoft.Web/sites/{name}"
    app, slot = name.split("/")
    return f"{base}/Microsoft.Web/sites/{app}/slots/{slot}"


def sai_manifest(name: str, resource_id: str, policy: str = "Delete") -> dict[str, Any]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "SystemAssignedIdentity",
        "metadata": {"name": name},
        "spec": {"resourceId": resource_id, "deletionPolicy": policy},
    }


def reader_for(name: str, identity: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "RoleAssignment",
        "metadata": {"name": name},
        "spec": {
            "principal": {"identityRef": {"kind": "SystemAssignedIdentity", "name": identity}},
            "role": "Reader",
            "scope": scope,
        },
    }


def sai(kube: KubeEmulatorInfo, namespace: str, name: str) -> dict[str, Any] | None:
    return get_object(kube, namespace, f"systemassignedidentity/{name}")


def writes_to(azure: AzureEmulatorInfo, resource_id: str) -> int:
    return azure.arm_write_count(resource_id.split("/resourceGroups/", 1)[1])


def test_enable_on_a_vm_an_app_and_a_slot_grant_a_role_then_disable(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
    authorization_client: AuthorizationManagementClient,
) -> None:
    kube, subscription = kube_emulator, azure_emulator.subscription_id
    theirs = msi_client.user_assigned_identities.create_or_update(
        resource_group, "theirs", {"location": "westus"}
    )
    vm = resource_path(subscription, resource_group, "vm", "vm1")
    app = resource_path(subscription, resource_group, "app", "app1")
    slot = resource_path(subscription, resource_group, "slot", "app1/staging")
    # The VM already carries someone else's user-assigned identity; the operator must keep it.
    create_resource(resource_client, vm, {"type": "UserAssigned", "userAssignedIdentities": {theirs.id: {}}})
    create_resource(resource_client, app)
    create_resource(resource_client, slot)

    azure_emulator.update_settings(lro_seconds=0.5)  # VM writes are long-running operations, as in Azure
    try:
        apply_all(
            kube,
            namespace,
            sai_manifest("vm", vm),
            sai_manifest("app", app),
            sai_manifest("slot", slot, policy="Orphan"),
        )
        bodies = {name: wait_ready(kube, namespace, f"sai/{name}") for name in ("vm", "app", "slot")}
    finally:
        azure_emulator.update_settings(lro_seconds=0)

    for name, resource_id, expected_name in (
        ("vm", vm, "vm1"),
        ("app", app, "app1"),
        ("slot", slot, "app1/staging"),
    ):
        status = bodies[name]["status"]
        identity = identity_of(resource_client, resource_id)
        assert "SystemAssigned" in identity["type"]
        assert status["principalId"] == identity["principalId"]
        assert status["tenantId"] == azure_emulator.tenant_id
        assert status["resourceName"] == expected_name
        assert status["observedGeneration"] == 1
    vm_identity = identity_of(resource_client, vm)
    assert vm_identity["type"] == "SystemAssigned, UserAssigned"
    assert [k.lower() for k in vm_identity["userAssignedIdentities"]] == [theirs.id.lower()]

    # Level-based: drift passes (every few seconds) re-read Azure and write nothing.
    azure_emulator.reset_counts()

    def app_reads() -> int:
        return sum(n for k, n in azure_emulator.request_counts().items() if k == f"GET {app}")

    wait_for(lambda: app_reads() >= 2, timeout=20, what="two drift passes over the app")
    assert (
        writes_to(azure_emulator, vm) + writes_to(azure_emulator, app) + writes_to(azure_emulator, slot) == 0
    )

    # A role for the app's system-assigned identity, found through this kind's principal index.
    scope = f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
    apply_all(kube, namespace, reader_for("app-reader", "app", scope))
    wait_ready(kube, namespace, "roleassignment/app-reader")
    app_principal = identity_of(resource_client, app)["principalId"]
    grants = list(
        authorization_client.role_assignments.list_for_scope(
            scope, filter=f"principalId eq '{app_principal}'"
        )
    )
    assert [g.role_definition_id.rsplit("/", 1)[-1] for g in grants] == [READER]

    # Delete disables (keeping the other identity on the VM); Orphan leaves the slot's enabled.
    kube.kubectl("delete", "-n", namespace, "roleassignment/app-reader", "--timeout=30s", timeout=40)
    kube.kubectl("delete", "-n", namespace, "sai/vm", "sai/app", "sai/slot", "--timeout=30s", timeout=40)
    vm_identity = identity_of(resource_client, vm)
    assert vm_identity["type"] == "UserAssigned"
    assert [k.lower() for k in vm_identity["userAssignedIdentities"]] == [theirs.id.lower()]
    assert identity_of(resource_client, app).get("type", "None") == "None"
    assert identity_of(resource_client, slot)["type"] == "SystemAssigned"


def test_drift_is_repaired_and_a_deleted_resource_is_reported_with_its_dependants(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
) -> None:
    kube = kube_emulator
    app = resource_path(azure_emulator.subscription_id, resource_group, "app", "drifty")
    create_resource(resource_client, app)
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    apply_all(kube, namespace, sai_manifest("drifty", app), reader_for("drifty-reader", "drifty", scope))
    first_principal = wait_ready(kube, namespace, "sai/drifty")["status"]["principalId"]
    wait_ready(kube, namespace, "roleassignment/drifty-reader")

    # Disabled behind the operator's back: the drift check enables it again (with a new principal).
    resource_client.resources.begin_update_by_id(
        app, api_version=api_version(app), parameters={"identity": {"type": "None"}}
    ).result()

    repaired = wait_object(
        kube,
        namespace,
        "systemassignedidentity/drifty",
        lambda body: (body.get("status") or {}).get("principalId") not in (None, first_principal),
        timeout=20,
        what="the identity to be enabled again",
    )
    assert repaired["status"]["principalId"] == identity_of(resource_client, app)["principalId"]

    # The app deleted in Azure: the principal went with it; the status and the dependant say so.
    resource_client.resources.begin_delete_by_id(app, api_version=api_version(app)).result()
    gone = wait_reason(kube, namespace, "sai/drifty", "ResourceNotFound", timeout=20)
    assert "principalId" not in gone["status"]
    assert "does not exist" in ready_condition(gone)["message"]

    dependant = wait_object(
        kube,
        namespace,
        "roleassignment/drifty-reader",
        lambda body: ready_condition(body).get("status") == "False",
        timeout=20,
        what="the role assignment to report its identity is gone",
    )
    assert ready_condition(dependant)["reason"] == "WaitingForIdentity"
    assert any(e.get("reason") == "ResourceNotFound" for e in events_for(kube, namespace, "drifty"))

    # Deleting the object with its resource gone does not hang.
    kube.kubectl(
        "delete", "-n", namespace, "roleassignment/drifty-reader", "sai/drifty", "--timeout=30s", timeout=40
    )


def test_bad_resource_ids_get_clear_reasons(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
) -> None:
    kube, subscription = kube_emulator, azure_emulator.subscription_id
    base = f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers"
    vnet = f"{base}/Microsoft.Network/virtualNetworks/net1"
    resource_client.resources.begin_create_or_update_by_id(
        vnet, api_version="2024-05-01", parameters={"location": "westus"}
    ).result()

    # Not a resource ID at all: rejected at admission, nothing is stored.
    group_id = f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
    rejected = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(sai_manifest("group", group_id)), check=False
    )
    assert rejected.returncode != 0
    assert "resourceId" in rejected.stderr
    assert sai(kube, namespace, "group") is None

    cases = {
        "bad-subscription": (
            f"/subscriptions/not-a-guid/resourceGroups/{resource_group}/providers/Microsoft.Web/sites/a",
            "InvalidSpec",
            "GUID",
        ),
        "no-such-app": (f"{base}/Microsoft.Web/sites/no-such-app", "ResourceNotFound", "does not exist"),
        "vnet": (vnet, "UnsupportedResource", "Microsoft.Network/virtualNetworks"),
        "no-such-type": (f"{base}/Microsoft.Compute/virtualThings/x", "UnsupportedResource", "virtualThings"),
        "no-such-provider": (f"{base}/Contoso.Widgets/widgets/x", "UnsupportedResource", "Contoso.Widgets"),
    }
    apply_all(kube, namespace, *(sai_manifest(name, rid) for name, (rid, _, _) in cases.items()))
    for name, (_, reason, fragment) in cases.items():
        condition = ready_condition(wait_reason(kube, namespace, f"sai/{name}", reason))
        assert condition["status"] == "False"
        assert fragment in condition["message"], condition["message"]
        events = events_for(kube, namespace, name)
        assert any(e.get("reason") == reason and e.get("type") == "Warning" for e in events), events
    assert "PATCH" not in " ".join(k for k in azure_emulator.request_counts() if "virtualThings" in k)

    kube.kubectl("delete", "-n", namespace, "sai", "--all", "--timeout=30s", timeout=40)


def test_an_identity_two_objects_declare_stays_until_the_last_one_is_deleted(
    operator: Any,
    kube_emulator: KubeEmulatorInfo,
    azure_emulator: AzureEmulatorInfo,
    namespace: str,
    resource_group: str,
    resource_client: ResourceManagementClient,
) -> None:
    kube = kube_emulator
    app = resource_path(azure_emulator.subscription_id, resource_group, "app", "twice")
    create_resource(resource_client, app)
    apply_all(kube, namespace, sai_manifest("one", app), sai_manifest("two", app))
    one = wait_ready(kube, namespace, "sai/one")
    two = wait_ready(kube, namespace, "sai/two")
    assert one["status"]["principalId"] == two["status"]["principalId"]

    kube.kubectl("delete", "-n", namespace, "sai/one", "--timeout=30s", timeout=40)
    assert identity_of(resource_client, app)["principalId"] == two["status"]["principalId"]
    kube.kubectl("delete", "-n", namespace, "sai/two", "--timeout=30s", timeout=40)
    assert identity_of(resource_client, app).get("type", "None") == "None"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("system-assigned*.yaml")), ids=lambda p: p.name)
def test_examples_are_accepted_by_the_api_server(
    operator: Any, kube_emulator: KubeEmulatorInfo, namespace: str, example: Path
) -> None:
    result = kube_emulator.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert result.stdout.count("(server dry run)") == len(
        [d for d in yaml.safe_load_all(example.read_text()) if d]
    )
