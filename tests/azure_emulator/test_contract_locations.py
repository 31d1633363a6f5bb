"""Contract of ARM's location check as the real SDK sees it: a create in a location the resource type (or a
resource group) is not offered in is refused with 400 `LocationNotAvailableForResourceType` /
`LocationNotAvailableForResourceGroup`, a region is accepted by name or display name in any case and reads
back as its name (`westeurope`), and the providers' metadata lists each type's regions by display name.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from fixtures.azure_emulator import AzureEmulatorInfo

IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
UNOFFERED = ["west-europe", "nowhere", "West Europe 2", "eastus2euap"]
SPELLINGS = ["westeurope", "West Europe", "west europe", "WESTEUROPE", "WestEurope"]


def _refusal(raised: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int | None, str | None, str]:
    error = raised.value.error
    assert error is not None
    return raised.value.status_code, error.code, error.message or ""


@pytest.mark.parametrize("location", UNOFFERED)
def test_an_identity_in_an_unoffered_location_is_refused(
    msi_client: ManagedServiceIdentityClient, resource_group: str, location: str
) -> None:
    with pytest.raises(HttpResponseError) as raised:
        msi_client.user_assigned_identities.create_or_update(resource_group, "placed", {"location": location})
    status, code, message = _refusal(raised)
    assert (status, code) == (400, "LocationNotAvailableForResourceType")
    prefix = (
        f"The provided location '{location}' is not available for resource type '{IDENTITY_TYPE}'. "
        "List of available regions for the resource type is '"
    )
    assert message.startswith(prefix)
    regions = message.removeprefix(prefix).removesuffix("'.").split(",")
    assert {"westeurope", "eastus", "westus"} <= set(regions)
    with pytest.raises(ResourceNotFoundError):
        msi_client.user_assigned_identities.get(resource_group, "placed")


@pytest.mark.parametrize("location", SPELLINGS)
def test_an_identity_is_accepted_in_either_spelling_of_a_region(
    msi_client: ManagedServiceIdentityClient, resource_group: str, location: str
) -> None:
    created = msi_client.user_assigned_identities.create_or_update(
        resource_group, "placed", {"location": location}
    )
    assert created.principal_id
    assert created.location == "westeurope"  # ARM answers with the region's name, whatever the spelling
    # Re-sending the region in another spelling is the same region, not a move.
    again = msi_client.user_assigned_identities.create_or_update(
        resource_group, "placed", {"location": "West Europe"}
    )
    assert again.principal_id == created.principal_id
    assert msi_client.user_assigned_identities.get(resource_group, "placed").location == "westeurope"


def test_an_unoffered_location_is_refused_before_the_location_change(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    msi_client.user_assigned_identities.create_or_update(resource_group, "pinned", {"location": "westus"})
    path = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        f"/providers/{IDENTITY_TYPE}/pinned?api-version=2024-11-30"
    )
    refused = azure_emulator.raw("PUT", path, {"location": "nowhere"})
    assert (refused.status, refused.error_code()) == (400, "LocationNotAvailableForResourceType")
    assert set(refused.body["error"]) == {"code", "message"}


@pytest.mark.parametrize("location", UNOFFERED)
def test_a_resource_group_in_an_unoffered_location_is_refused(
    resource_client: ResourceManagementClient, location: str
) -> None:
    name = f"rg-loc-{uuid.uuid4().hex[:8]}"
    with pytest.raises(HttpResponseError) as raised:
        resource_client.resource_groups.create_or_update(name, {"location": location})
    status, code, message = _refusal(raised)
    assert (status, code) == (400, "LocationNotAvailableForResourceGroup")
    prefix = (
        f"The provided location '{location}' is not available for resource group. "
        "List of available regions is '"
    )
    assert message.startswith(prefix)
    assert "westeurope" in message.removeprefix(prefix).removesuffix("'.").split(",")
    assert not resource_client.resource_groups.check_existence(name)


@pytest.mark.parametrize("location", SPELLINGS)
def test_a_resource_group_is_accepted_in_either_spelling_of_a_region(
    resource_client: ResourceManagementClient, location: str
) -> None:
    name = f"rg-loc-{uuid.uuid4().hex[:8]}"
    try:
        created = resource_client.resource_groups.create_or_update(name, {"location": location})
        assert created.location == "westeurope"
        assert resource_client.resource_groups.get(name).location == "westeurope"
        updated = resource_client.resource_groups.create_or_update(
            name, {"location": "West Europe", "tags": {}}
        )
        assert updated.name == name
    finally:
        resource_client.resource_groups.begin_delete(name).result()


_TYPES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Microsoft.Compute/virtualMachines",
        "2024-07-01",
        {"properties": {"hardwareProfile": {"vmSize": "B1s"}}},
    ),
    ("Microsoft.Web/sites", "2023-12-01", {"kind": "app"}),
    ("Microsoft.KeyVault/vaults", "2023-07-01", {"properties": {"sku": {"family": "A", "name": "standard"}}}),
    (
        "Microsoft.Storage/storageAccounts",
        "2023-05-01",
        {"kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    ),
    ("Microsoft.Network/virtualNetworks", "2024-05-01", {}),
]


@pytest.mark.parametrize(("resource_type", "api_version", "body"), _TYPES)
def test_other_resource_types_check_the_location_too(
    azure_emulator: AzureEmulatorInfo,
    resource_client: ResourceManagementClient,
    resource_group: str,
    resource_type: str,
    api_version: str,
    body: dict[str, Any],
) -> None:
    resource_id = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        f"/providers/{resource_type}/placed{uuid.uuid4().hex[:6]}"
    )
    with pytest.raises(HttpResponseError) as raised:
        resource_client.resources.begin_create_or_update_by_id(
            resource_id, {"location": "mars", **body}, api_version=api_version
        ).result()
    status, code, message = _refusal(raised)
    assert (status, code) == (400, "LocationNotAvailableForResourceType")
    assert f"is not available for resource type '{resource_type}'." in message
    assert not resource_client.resources.check_existence_by_id(resource_id, api_version=api_version)

    created = resource_client.resources.begin_create_or_update_by_id(
        resource_id, {"location": "North Europe", **body}, api_version=api_version
    ).result()
    assert created.id == resource_id
    assert created.location == "northeurope"
    assert resource_client.resources.get_by_id(resource_id, api_version=api_version).location == "northeurope"


def test_a_slot_checks_its_own_location(
    azure_emulator: AzureEmulatorInfo, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    site = (
        f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
        "/providers/Microsoft.Web/sites/app"
    )
    resource_client.resources.begin_create_or_update_by_id(
        site, {"location": "westus"}, api_version="2023-12-01"
    ).result()
    refused = azure_emulator.raw(
        "PUT", f"{site}/slots/staging?api-version=2023-12-01", {"location": "west us 9"}
    )
    assert (refused.status, refused.error_code()) == (400, "LocationNotAvailableForResourceType")
    assert "resource type 'Microsoft.Web/sites/slots'" in refused.body["error"]["message"]


def test_providers_list_each_types_regions_by_display_name(resource_client: ResourceManagementClient) -> None:
    provider = resource_client.providers.get("Microsoft.ManagedIdentity")
    locations = {entry.resource_type: entry.locations for entry in provider.resource_types or []}
    offered = locations["userAssignedIdentities"] or []
    assert {"West Europe", "East US", "West US", "North Europe"} <= set(offered)
    assert all(name != name.lower() for name in offered)  # display names, not `westeurope`
    assert locations["operations"] == []  # a global type is offered in no region
    compute = resource_client.providers.get("Microsoft.Compute")
    vm_locations = next(
        e.locations for e in compute.resource_types or [] if e.resource_type == "virtualMachines"
    )
    assert "West Europe" in (vm_locations or [])


def test_every_listed_region_is_accepted(
    msi_client: ManagedServiceIdentityClient, resource_client: ResourceManagementClient, resource_group: str
) -> None:
    provider = resource_client.providers.get("Microsoft.ManagedIdentity")
    offered = next(
        e.locations for e in provider.resource_types or [] if e.resource_type == "userAssignedIdentities"
    )
    for index, display_name in enumerate(offered or []):
        created = msi_client.user_assigned_identities.create_or_update(
            resource_group, f"region-{index}", {"location": display_name}
        )
        assert created.id
