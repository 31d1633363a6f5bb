"""Contract of Microsoft.Resources and the generic resources the operator touches: resource groups,
provider metadata (api-version discovery), VMs and App Service sites/slots with `identity` blocks
(system-assigned principals created and deleted with them, user-assigned maps merged by PATCH, the VM LRO),
plain resources (vaults, storage accounts) and a type without managed-identity support (virtual networks).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.mgmt.authorization.aio import AuthorizationManagementClient as AsyncAuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient as AsyncResourceManagementClient
from azure.mgmt.resource.resources.models import GenericResource, Identity

from fixtures.azure_emulator import AzureEmulatorInfo

COMPUTE = "2024-07-01"
WEB = "2023-12-01"


def _group_id(info: AzureEmulatorInfo, group: str) -> str:
    return f"/subscriptions/{info.subscription_id}/resourceGroups/{group}"


def _principals(info: AzureEmulatorInfo) -> set[str]:
    return {p["object_id"] for p in info.state()["world"]["principals"]}


def _identity(resource: GenericResource) -> Identity:
    assert resource.identity is not None
    return resource.identity


def _properties(resource: GenericResource) -> dict[str, Any]:
    assert isinstance(resource.properties, dict)
    return resource.properties


def _api_version(resource_client: ResourceManagementClient, namespace: str, resource_type: str) -> str:
    """How the operator discovers api-versions: providers.get(namespace).resourceTypes[].apiVersions."""
    provider = resource_client.providers.get(namespace)
    for entry in provider.resource_types or []:
        if (entry.resource_type or "").lower() == resource_type.lower():
            version: str = (entry.api_versions or [])[0]
            return version
    raise AssertionError(f"{namespace}/{resource_type} is not in the provider metadata")


def test_resource_group_lifecycle(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient
) -> None:
    name = f"rg-life-{uuid.uuid4().hex[:6]}"
    path = f"/subscriptions/{azure_emulator.subscription_id}/resourcegroups/{name}?api-version=2022-09-01"
    created = azure_emulator.raw("PUT", path, {"location": "westus", "tags": {"env": "test"}})
    assert created.status == 201
    assert created.body == {
        "id": f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{name}",
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": "westus",
        "tags": {"env": "test"},
        "properties": {"provisioningState": "Succeeded"},
    }
    assert azure_emulator.raw("PUT", path, {"location": "westus"}).status == 200
    assert resource_client.resource_groups.check_existence(name)
    assert name in [g.name for g in resource_client.resource_groups.list()]
    resource_client.resource_groups.update(name, {"tags": {"owner": "me"}})
    assert resource_client.resource_groups.get(name).tags == {"owner": "me"}
    resource_client.resource_groups.begin_delete(name).result()
    assert not resource_client.resource_groups.check_existence(name)
    with pytest.raises(ResourceNotFoundError) as raised:
        resource_client.resource_groups.get(name)
    assert raised.value.error is not None
    assert raised.value.error.code == "ResourceGroupNotFound"


def test_deleting_a_group_deletes_its_identities_and_principals(
    azure_emulator: AzureEmulatorInfo,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
) -> None:
    name = f"rg-gone-{uuid.uuid4().hex[:6]}"
    resource_client.resource_groups.create_or_update(name, {"location": "westus"})
    identity = msi_client.user_assigned_identities.create_or_update(name, "inside", {"location": "westus"})
    assert identity.principal_id in _principals(azure_emulator)
    resource_client.resource_groups.begin_delete(name).result()
    assert identity.principal_id not in _principals(azure_emulator)
    resource_client.resource_groups.create_or_update(name, {"location": "westus"})
    assert list(msi_client.user_assigned_identities.list_by_resource_group(name)) == []


def test_provider_metadata_for_api_version_discovery(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient
) -> None:
    expected = {
        ("Microsoft.Compute", "virtualMachines"),
        ("Microsoft.Web", "sites"),
        ("Microsoft.Web", "sites/slots"),
        ("Microsoft.ManagedIdentity", "userAssignedIdentities"),
        ("Microsoft.Authorization", "roleAssignments"),
        ("Microsoft.KeyVault", "vaults"),
        ("Microsoft.Storage", "storageAccounts"),
        ("Microsoft.Network", "virtualNetworks"),
    }
    for namespace, resource_type in expected:
        version = _api_version(resource_client, namespace, resource_type)
        assert version[:4].isdigit()
    assert (
        _api_version(resource_client, "Microsoft.ManagedIdentity", "userAssignedIdentities") == "2024-11-30"
    )
    namespaces = {p.namespace for p in resource_client.providers.list()}
    assert {n for n, _ in expected} <= namespaces
    with pytest.raises(ResourceNotFoundError) as raised:
        resource_client.providers.get("Microsoft.DoesNotExist")
    assert raised.value.error is not None
    assert raised.value.error.code == "InvalidResourceNamespace"


def test_unknown_type_and_namespace_in_resource_requests(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    base = _group_id(azure_emulator, resource_group)
    unknown_type = azure_emulator.raw(
        "GET", f"{base}/providers/Microsoft.Compute/spaceships/x?api-version={COMPUTE}"
    )
    assert (unknown_type.status, unknown_type.error_code()) == (400, "InvalidResourceType")
    unknown_namespace = azure_emulator.raw(
        "GET", f"{base}/providers/Contoso.Widgets/widgets/x?api-version=2024-01-01"
    )
    assert (unknown_namespace.status, unknown_namespace.error_code()) == (400, "InvalidResourceNamespace")
    missing = azure_emulator.raw(
        "GET", f"{base}/providers/Microsoft.Compute/virtualMachines/none?api-version={COMPUTE}"
    )
    assert (missing.status, missing.error_code()) == (404, "ResourceNotFound")
    assert "Microsoft.Compute/virtualMachines/none" in missing.body["error"]["message"]


def test_vm_system_assigned_identity_via_generic_client(
    azure_emulator: AzureEmulatorInfo,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    version = _api_version(resource_client, "Microsoft.Compute", "virtualMachines")
    vm_id = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Compute/virtualMachines/vm-sys"
    created = resource_client.resources.begin_create_or_update_by_id(
        vm_id,
        {"location": "westus", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}}},
        api_version=version,
    ).result()
    assert created.identity is None
    assert _properties(created)["hardwareProfile"] == {"vmSize": "Standard_B1s"}

    enabled = resource_client.resources.begin_update_by_id(
        vm_id, {"identity": {"type": "SystemAssigned"}}, api_version=version
    ).result()
    assert _identity(enabled).type == "SystemAssigned"
    principal = _identity(enabled).principal_id
    assert _identity(enabled).tenant_id == azure_emulator.tenant_id
    assert principal in _principals(azure_emulator)
    again = resource_client.resources.begin_update_by_id(
        vm_id, {"identity": {"type": "SystemAssigned"}}, api_version=version
    ).result()
    assert _identity(again).principal_id == principal  # stable while enabled
    system = msi_client.system_assigned_identities.get_by_scope(vm_id)
    assert system.principal_id == principal
    assert system.type == "Microsoft.ManagedIdentity/Identities"
    assert system.client_id
    assert _properties(resource_client.resources.get_by_id(vm_id, api_version=version))["hardwareProfile"]

    disabled = resource_client.resources.begin_update_by_id(
        vm_id, {"identity": {"type": "None"}}, api_version=version
    ).result()
    assert disabled.identity is None
    assert principal not in _principals(azure_emulator)
    with pytest.raises(ResourceNotFoundError):
        msi_client.system_assigned_identities.get_by_scope(vm_id)
    assert resource_client.resources.check_existence_by_id(vm_id, api_version=version)
    assert not resource_client.resources.check_existence_by_id(f"{vm_id}-absent", api_version=version)


def test_vm_user_assigned_map_merge_and_detach(
    azure_emulator: AzureEmulatorInfo,
    resource_client: ResourceManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    first = msi_client.user_assigned_identities.create_or_update(
        resource_group, "uai-one", {"location": "westus"}
    )
    second = msi_client.user_assigned_identities.create_or_update(
        resource_group, "uai-two", {"location": "westus"}
    )
    vm_path = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Compute/virtualMachines/vm-ua"
    url = f"{vm_path}?api-version={COMPUTE}"
    assert azure_emulator.raw("PUT", url, {"location": "westus"}).status == 201

    both = azure_emulator.raw(
        "PATCH",
        url,
        {"identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {first.id: {}}}},
    )
    assert both.status == 200
    assert both.body["identity"]["type"] == "SystemAssigned, UserAssigned"  # Compute's spelling
    # Compute reports the keys lower-cased, whatever casing was sent.
    assert both.body["identity"]["userAssignedIdentities"] == {
        first.id.lower(): {"principalId": first.principal_id, "clientId": first.client_id}
    }
    merged = azure_emulator.raw(
        "PATCH",
        url,
        {"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {second.id: {}}}},
    )
    assert set(merged.body["identity"]["userAssignedIdentities"]) == {first.id.lower(), second.id.lower()}
    detached = azure_emulator.raw(
        "PATCH",
        url,
        {"identity": {"type": "UserAssigned", "userAssignedIdentities": {first.id: None}}},
    )
    assert detached.body["identity"]["type"] == "UserAssigned"
    assert set(detached.body["identity"]["userAssignedIdentities"]) == {second.id.lower()}
    assert "principalId" not in detached.body["identity"]
    tags_only = azure_emulator.raw("PATCH", url, {"tags": {"k": "v"}})
    assert set(tags_only.body["identity"]["userAssignedIdentities"]) == {second.id.lower()}

    identities = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.ManagedIdentity"
    ghost = f"{identities}/userAssignedIdentities/ghost"
    missing = azure_emulator.raw(
        "PATCH", url, {"identity": {"type": "UserAssigned", "userAssignedIdentities": {ghost: {}}}}
    )
    assert (missing.status, missing.error_code()) == (400, "FailedIdentityOperation")
    bad_type = azure_emulator.raw("PATCH", url, {"identity": {"type": "Everything"}})
    assert (bad_type.status, bad_type.error_code()) == (400, "InvalidIdentityType")
    empty_map = azure_emulator.raw(
        "PATCH", url, {"identity": {"type": "UserAssigned", "userAssignedIdentities": {}}}
    )
    assert empty_map.status == 200  # the current map is kept by a PATCH


def test_vm_patch_long_running_operation(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    vm_id = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Compute/virtualMachines/vm-lro"
    resource_client.resources.begin_create_or_update_by_id(
        vm_id, {"location": "westus"}, api_version=COMPUTE
    ).result()
    azure_emulator.update_settings(lro_seconds=0.5)
    try:
        initial = azure_emulator.raw("PATCH", f"{vm_id}?api-version={COMPUTE}", {"tags": {"a": "b"}})
        assert initial.status == 200
        assert initial.body["properties"]["provisioningState"] == "Updating"
        assert (
            "/providers/Microsoft.Compute/locations/westus/operations/"
            in initial.headers["azure-asyncoperation"]
        )
        poller = resource_client.resources.begin_update_by_id(
            vm_id, {"identity": {"type": "SystemAssigned"}}, api_version=COMPUTE
        )
        result = poller.result()
        assert poller.status() == "Succeeded"
        assert _properties(result)["provisioningState"] == "Succeeded"
        assert _identity(result).type == "SystemAssigned"
    finally:
        azure_emulator.update_settings(lro_seconds=0)


def test_web_site_and_slot_identities(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    site = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Web/sites/shop"
    slot = f"{site}/slots/staging"
    orphan = azure_emulator.raw("PUT", f"{site}-none/slots/staging?api-version={WEB}", {"location": "westus"})
    assert (orphan.status, orphan.error_code()) == (404, "ParentResourceNotFound")
    resource_client.resources.begin_create_or_update_by_id(
        site, {"location": "westus", "kind": "app", "identity": {"type": "SystemAssigned"}}, api_version=WEB
    ).result()
    slot_body = resource_client.resources.begin_create_or_update_by_id(
        slot, {"location": "westus", "identity": {"type": "SystemAssigned"}}, api_version=WEB
    ).result()
    assert slot_body.name == "shop/staging"
    assert slot_body.type == "Microsoft.Web/sites/slots"
    site_body = resource_client.resources.get_by_id(site, api_version=WEB)
    assert site_body.kind == "app"
    assert _identity(slot_body).principal_id != _identity(site_body).principal_id
    slots = azure_emulator.raw("GET", f"{site}/slots?api-version={WEB}")
    assert [s["name"] for s in slots.body["value"]] == ["shop/staging"]

    resource_client.resources.begin_delete_by_id(site, api_version=WEB).result()
    principals = _principals(azure_emulator)
    assert _identity(site_body).principal_id not in principals
    assert _identity(slot_body).principal_id not in principals
    gone = azure_emulator.raw("GET", f"{slot}?api-version={WEB}")
    assert gone.status == 404


@pytest.mark.parametrize(
    ("namespace", "resource_type", "body"),
    [
        ("Microsoft.KeyVault", "vaults", {"properties": {"sku": {"family": "A", "name": "standard"}}}),
        ("Microsoft.Storage", "storageAccounts", {"kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),
    ],
)
def test_plain_resources(
    azure_emulator: AzureEmulatorInfo,
    resource_client: ResourceManagementClient,
    resource_group: str,
    namespace: str,
    resource_type: str,
    body: dict[str, Any],
) -> None:
    version = _api_version(resource_client, namespace, resource_type)
    name = f"plain{uuid.uuid4().hex[:6]}"
    resource_id = f"{_group_id(azure_emulator, resource_group)}/providers/{namespace}/{resource_type}/{name}"
    created = azure_emulator.raw(
        "PUT", f"{resource_id}?api-version={version}", {"location": "westus", **body}
    )
    assert created.status == 201
    assert created.body["id"] == resource_id
    assert created.body["type"] == f"{namespace}/{resource_type}"
    fetched = resource_client.resources.get_by_id(resource_id, api_version=version)
    assert fetched.location == "westus"
    listed = azure_emulator.raw(
        "GET",
        f"/subscriptions/{azure_emulator.subscription_id}/providers/{namespace}/{resource_type}?api-version={version}",
    )
    assert resource_id in [r["id"] for r in listed.body["value"]]
    assert azure_emulator.raw("DELETE", f"{resource_id}?api-version={version}").status == 200
    assert azure_emulator.raw("DELETE", f"{resource_id}?api-version={version}").status == 204


def test_virtual_network_has_no_identity_support(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    version = _api_version(resource_client, "Microsoft.Network", "virtualNetworks")
    vnet = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Network/virtualNetworks/net"
    resource_client.resources.begin_create_or_update_by_id(
        vnet,
        {"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}},
        api_version=version,
    ).result()
    patched = resource_client.resources.begin_update_by_id(
        vnet, {"identity": {"type": "SystemAssigned"}}, api_version=version
    ).result()
    assert patched.identity is None
    assert resource_client.resources.get_by_id(vnet, api_version=version).identity is None


def test_changing_tags_behind_the_back(
    msi_client: ManagedServiceIdentityClient, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "drifty", {"location": "westus", "tags": {"managed-by": "operator"}}
    )
    resource_client.resources.begin_update_by_id(
        identity.id, {"tags": {"edited": "by-hand"}}, api_version="2023-01-31"
    ).result()
    assert msi_client.user_assigned_identities.get(resource_group, "drifty").tags == {"edited": "by-hand"}
    with pytest.raises(HttpResponseError):
        resource_client.resources.get_by_id(identity.id, api_version="2000-01-01")


async def _operator_style_session(info: AzureEmulatorInfo, group: str) -> dict[str, Any]:
    """What the operator does with the async SDK: discover the api-version, enable a VM's identity with
    the generic client's LRO, and grant that identity a role."""
    async with (
        AsyncClientSecretCredential(
            info.tenant_id,
            info.client_id,
            info.client_secret,
            authority=info.authority_host,
            disable_instance_discovery=True,
            connection_verify=info.ca_file,
        ) as credential,
        AsyncResourceManagementClient(credential, info.subscription_id, **info.client_options()) as resources,
        AsyncAuthorizationManagementClient(
            credential, info.subscription_id, **info.client_options()
        ) as authorization,
    ):
        provider = await resources.providers.get("Microsoft.Compute")
        version = next(
            t.api_versions[0]
            for t in provider.resource_types or []
            if t.resource_type == "virtualMachines" and t.api_versions
        )
        vm_id = f"{_group_id(info, group)}/providers/Microsoft.Compute/virtualMachines/vm-async"
        await (
            await resources.resources.begin_create_or_update_by_id(
                vm_id, {"location": "westus"}, api_version=version
            )
        ).result()
        poller = await resources.resources.begin_update_by_id(
            vm_id, {"identity": {"type": "SystemAssigned"}}, api_version=version
        )
        updated = await poller.result()
        assert updated.identity is not None
        principal = updated.identity.principal_id
        assignment = await authorization.role_assignments.create(
            vm_id,
            str(uuid.uuid4()),
            {
                "role_definition_id": f"/subscriptions/{info.subscription_id}/providers/"
                "Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
                "principal_id": principal,
                "principal_type": "ServicePrincipal",
            },
        )
        listed = [
            a.name async for a in authorization.role_assignments.list_for_scope(vm_id, filter="atScope()")
        ]
        return {"version": version, "principal": principal, "assignment": assignment.name, "listed": listed}


def test_async_clients_as_the_operator_uses_them(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    outcome = asyncio.run(_operator_style_session(azure_emulator, resource_group))
    assert outcome["version"] == "2024-11-01"
    assert outcome["principal"] in _principals(azure_emulator)
    assert outcome["assignment"] in outcome["listed"]


def test_vm_etags_from_2023_09_01_and_if_match_on_writes(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    vm = f"{_group_id(azure_emulator, resource_group)}/providers/Microsoft.Compute/virtualMachines/vm-etag"
    created = azure_emulator.raw("PUT", f"{vm}?api-version={COMPUTE}", {"location": "westus"})
    etag = created.body["etag"]
    assert etag.startswith('"')
    old = azure_emulator.raw("GET", f"{vm}?api-version=2023-07-01")
    assert "etag" not in old.body  # older api-versions have no etag
    assert azure_emulator.raw("GET", f"{vm}?api-version={COMPUTE}").body["etag"] == etag

    tagged = azure_emulator.raw(
        "PATCH", f"{vm}?api-version={COMPUTE}", {"tags": {"k": "v"}}, headers={"If-Match": etag}
    )
    assert tagged.status == 200
    assert tagged.body["etag"] != etag
    stale = azure_emulator.raw(
        "PATCH", f"{vm}?api-version={COMPUTE}", {"tags": {"k": "w"}}, headers={"If-Match": etag}
    )
    assert (stale.status, stale.error_code()) == (412, "PreconditionFailed")
    anything = azure_emulator.raw(
        "PATCH", f"{vm}?api-version={COMPUTE}", {"tags": {"k": "w"}}, headers={"If-Match": "*"}
    )
    assert anything.status == 200
    absent = azure_emulator.raw(
        "PUT", f"{vm}-absent?api-version={COMPUTE}", {"location": "westus"}, headers={"If-Match": "*"}
    )
    assert (absent.status, absent.error_code()) == (412, "PreconditionFailed")
