"""Static knowledge the emulator serves: Azure's public regions, resource providers, their resource types,
api-versions and locations, and the built-in role definitions with their real GUIDs and permission sets
(custom roles are part of the world, in `state`).

The provider catalogue drives four things at once: `GET /subscriptions/{s}/providers[/{namespace}]`,
api-version validation of every resource request, the locations a resource may be created in, and which
resource types accept an `identity` block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


def location_slug(location: str) -> str:
    """ARM matches locations case-insensitively and ignoring spaces: `West US` and `westus` are one region."""
    return "".join(location.split()).lower()


@dataclasses.dataclass(frozen=True)
class Region:
    name: str  # "westeurope": the form ARM returns in `location` and lists in its errors
    display_name: str  # "West Europe": the form `providers` list in `resourceTypes[].locations`


# Azure's public-cloud regions open to every subscription (restricted ones such as `germanynorth` or
# `southafricawest` and the `*euap` canaries are left out, as ARM leaves them out of a resource group's
# list). Each resource provider registers its own subset in Azure; here every regional type offers all.
PUBLIC_REGIONS: tuple[Region, ...] = (
    Region("eastus", "East US"),
    Region("eastus2", "East US 2"),
    Region("southcentralus", "South Central US"),
    Region("westus2", "West US 2"),
    Region("westus3", "West US 3"),
    Region("australiaeast", "Australia East"),
    Region("southeastasia", "Southeast Asia"),
    Region("northeurope", "North Europe"),
    Region("swedencentral", "Sweden Central"),
    Region("uksouth", "UK South"),
    Region("westeurope", "West Europe"),
    Region("centralus", "Central US"),
    Region("southafricanorth", "South Africa North"),
    Region("centralindia", "Central India"),
    Region("eastasia", "East Asia"),
    Region("indonesiacentral", "Indonesia Central"),
    Region("japaneast", "Japan East"),
    Region("japanwest", "Japan West"),
    Region("koreacentral", "Korea Central"),
    Region("malaysiawest", "Malaysia West"),
    Region("newzealandnorth", "New Zealand North"),
    Region("canadacentral", "Canada Central"),
    Region("austriaeast", "Austria East"),
    Region("belgiumcentral", "Belgium Central"),
    Region("francecentral", "France Central"),
    Region("germanywestcentral", "Germany West Central"),
    Region("italynorth", "Italy North"),
    Region("norwayeast", "Norway East"),
    Region("polandcentral", "Poland Central"),
    Region("spaincentral", "Spain Central"),
    Region("switzerlandnorth", "Switzerland North"),
    Region("mexicocentral", "Mexico Central"),
    Region("uaenorth", "UAE North"),
    Region("brazilsouth", "Brazil South"),
    Region("chilecentral", "Chile Central"),
    Region("israelcentral", "Israel Central"),
    Region("qatarcentral", "Qatar Central"),
    Region("northcentralus", "North Central US"),
    Region("westus", "West US"),
    Region("westcentralus", "West Central US"),
    Region("canadaeast", "Canada East"),
    Region("koreasouth", "Korea South"),
    Region("southindia", "South India"),
    Region("westindia", "West India"),
    Region("jioindiawest", "Jio India West"),
    Region("ukwest", "UK West"),
    Region("australiasoutheast", "Australia Southeast"),
    Region("australiacentral", "Australia Central"),
    Region("australiacentral2", "Australia Central 2"),
)
RESOURCE_GROUP_REGIONS = PUBLIC_REGIONS


def find_region(location: str, offered: tuple[Region, ...]) -> Region | None:
    """The region of `offered` that `location` names, in either spelling (`westeurope`, `West Europe`)."""
    slug = location_slug(location)
    return next((r for r in offered if r.name == slug), None)


@dataclasses.dataclass(frozen=True)
class ResourceTypeInfo:
    """One resource type of a provider, as `providers.get` reports it, plus how the emulator serves it."""

    name: str  # e.g. "virtualMachines" or "sites/slots"
    api_versions: tuple[str, ...]  # newest first, as ARM lists them
    # How the RP spells the combined identity type (Compute/Web: with a space; newer RPs: without).
    identity_combined_spelling: str | None = None
    # Whether the emulator stores instances of this type (PUT/GET/PATCH/DELETE); False for types that
    # are only listed in the catalogue (operations, locations...).
    served: bool = True
    # Write operations on this type are long-running in Azure (PUT/PATCH answer with an async operation).
    long_running: bool = False
    # The RP reports `identity.userAssignedIdentities` keys lower-cased, whatever casing the caller sent
    # (Compute does for VMs and scale sets, so callers must compare them case-insensitively).
    lowercases_user_assigned_ids: bool = False
    # From this api-version on, bodies carry an `etag` and writes honour `If-Match` (412 on a mismatch).
    etags_since: str | None = None
    # Regions the type is offered in; ARM refuses to create one anywhere else. Global types (operations,
    # role assignments...) list none.
    locations: tuple[Region, ...] = ()

    @property
    def supports_identity(self) -> bool:
        return self.identity_combined_spelling is not None


@dataclasses.dataclass(frozen=True)
class ProviderInfo:
    namespace: str
    resource_types: tuple[ResourceTypeInfo, ...]

    def resource_type(self, name: str) -> ResourceTypeInfo | None:
        lowered = name.lower()
        return next((t for t in self.resource_types if t.name.lower() == lowered), None)


_COMPUTE_VERSIONS = ("2024-11-01", "2024-07-01", "2024-03-01", "2023-09-01", "2023-07-01", "2023-03-01")
_WEB_VERSIONS = ("2024-04-01", "2023-12-01", "2023-01-01", "2022-09-01", "2022-03-01", "2021-02-01")
_MSI_VERSIONS = ("2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview", "2018-11-30")
_KEYVAULT_VERSIONS = ("2024-11-01", "2023-07-01", "2023-02-01", "2022-07-01", "2021-10-01")
_STORAGE_VERSIONS = ("2024-01-01", "2023-05-01", "2023-01-01", "2022-09-01", "2021-09-01")
_NETWORK_VERSIONS = ("2024-05-01", "2024-03-01", "2023-11-01", "2023-09-01", "2023-06-01")
_ROLE_ASSIGNMENT_VERSIONS = (
    "2022-04-01",
    "2022-01-01-preview",
    "2020-10-01-preview",
    "2020-08-01-preview",
    "2020-04-01-preview",
    "2018-09-01-preview",
    "2015-07-01",
)
_ROLE_DEFINITION_VERSIONS = ("2022-05-01-preview", "2022-04-01", "2018-01-01-preview", "2015-07-01")
# Microsoft.Resources (resource groups, providers, subscriptions): azure-mgmt-resource 26 sends 2025-04-01,
# the CLI 2022-09-01, azure-core's provider registration policy 2016-02-01.
RESOURCES_API_VERSIONS = (
    "2025-04-01",
    "2025-03-01",
    "2024-11-01",
    "2024-07-01",
    "2024-03-01",
    "2023-07-01",
    "2022-12-01",
    "2022-09-01",
    "2021-04-01",
    "2021-01-01",
    "2020-06-01",
    "2019-10-01",
    "2019-08-01",
    "2018-05-01",
    "2016-09-01",
    "2016-02-01",
)

PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo(
        "Microsoft.ManagedIdentity",
        (
            ResourceTypeInfo("userAssignedIdentities", _MSI_VERSIONS, locations=PUBLIC_REGIONS),
            ResourceTypeInfo(
                "userAssignedIdentities/federatedIdentityCredentials", _MSI_VERSIONS, locations=PUBLIC_REGIONS
            ),
            ResourceTypeInfo("Identities", _MSI_VERSIONS, served=False, locations=PUBLIC_REGIONS),
            ResourceTypeInfo("operations", _MSI_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.Authorization",
        (
            ResourceTypeInfo("roleAssignments", _ROLE_ASSIGNMENT_VERSIONS, served=False),
            ResourceTypeInfo("roleDefinitions", _ROLE_DEFINITION_VERSIONS, served=False),
            ResourceTypeInfo("permissions", _ROLE_ASSIGNMENT_VERSIONS, served=False),
            ResourceTypeInfo("operations", _ROLE_ASSIGNMENT_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.Compute",
        (
            ResourceTypeInfo(
                "virtualMachines",
                _COMPUTE_VERSIONS,
                identity_combined_spelling="SystemAssigned, UserAssigned",
                long_running=True,
                lowercases_user_assigned_ids=True,
                etags_since="2023-09-01",
                locations=PUBLIC_REGIONS,
            ),
            ResourceTypeInfo(
                "locations/operations", _COMPUTE_VERSIONS, served=False, locations=PUBLIC_REGIONS
            ),
            ResourceTypeInfo("operations", _COMPUTE_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.Web",
        (
            ResourceTypeInfo(
                "sites",
                _WEB_VERSIONS,
                identity_combined_spelling="SystemAssigned, UserAssigned",
                locations=PUBLIC_REGIONS,
            ),
            ResourceTypeInfo(
                "sites/slots",
                _WEB_VERSIONS,
                identity_combined_spelling="SystemAssigned, UserAssigned",
                locations=PUBLIC_REGIONS,
            ),
            ResourceTypeInfo("operations", _WEB_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.KeyVault",
        (
            ResourceTypeInfo("vaults", _KEYVAULT_VERSIONS, locations=PUBLIC_REGIONS),
            ResourceTypeInfo("operations", _KEYVAULT_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.Storage",
        (
            ResourceTypeInfo("storageAccounts", _STORAGE_VERSIONS, locations=PUBLIC_REGIONS),
            ResourceTypeInfo("operations", _STORAGE_VERSIONS, served=False),
        ),
    ),
    ProviderInfo(
        "Microsoft.Network",
        (
            ResourceTypeInfo("virtualNetworks", _NETWORK_VERSIONS, locations=PUBLIC_REGIONS),
            ResourceTypeInfo("operations", _NETWORK_VERSIONS, served=False),
        ),
    ),
)

_PROVIDERS_BY_NAMESPACE: Mapping[str, ProviderInfo] = {p.namespace.lower(): p for p in PROVIDERS}


def find_provider(namespace: str) -> ProviderInfo | None:
    return _PROVIDERS_BY_NAMESPACE.get(namespace.lower())


def api_versions(namespace: str, type_name: str) -> tuple[str, ...]:
    """The api-versions of a type the catalogue lists (a KeyError for one it does not)."""
    provider = find_provider(namespace)
    info = provider.resource_type(type_name) if provider is not None else None
    if info is None:
        raise KeyError(f"{namespace}/{type_name}")
    return info.api_versions


# --- Built-in roles -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Permission:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RoleDefinition:
    guid: str
    role_name: str
    description: str
    permission: Permission
    role_type: str = "BuiltInRole"

    @property
    def permissions(self) -> tuple[Permission, ...]:
        return (self.permission,)

    @property
    def assignable_scopes(self) -> tuple[str, ...]:
        # Every built-in role is assignable everywhere: its assignableScopes is the root.
        return ("/",)


_AUTHORIZATION_READ_AND_SUPPORT = ("Microsoft.Authorization/*/read", "Microsoft.Support/*")

BUILT_IN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        Permission(actions=("*",)),
    ),
    RoleDefinition(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
        "manage assignments in Azure Blueprints, or share image galleries.",
        Permission(
            actions=("*",),
            not_actions=(
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ),
        ),
    ),
    RoleDefinition(
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        Permission(actions=("*/read",)),
    ),
    RoleDefinition(
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        Permission(actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),
    ),
    RoleDefinition(
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow "
        "you to manage access using other ways, such as Azure Policy.",
        Permission(
            actions=(
                "Microsoft.Authorization/roleAssignments/write",
                "Microsoft.Authorization/roleAssignments/delete",
                "*/read",
                "Microsoft.Support/*",
            )
        ),
    ),
    RoleDefinition(
        "f1a07417-d97a-45cb-824c-7a7467783830",
        "Managed Identity Operator",
        "Read and Assign User Assigned Identity",
        Permission(
            actions=(
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Support/*",
            )
        ),
    ),
    RoleDefinition(
        "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
        "Managed Identity Contributor",
        "Create, Read, Update, and Delete User Assigned Identity",
        Permission(
            actions=(
                "Microsoft.ManagedIdentity/userAssignedIdentities/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/write",
                "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
                "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
                "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
                "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Support/*",
            )
        ),
    ),
    RoleDefinition(
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' "
        "permission model.",
        Permission(
            data_actions=(
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            )
        ),
    ),
    RoleDefinition(
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
        "Allows for read access to Azure Storage blob containers and data",
        Permission(
            actions=(
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ),
            data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
        ),
    ),
    RoleDefinition(
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Contributor",
        "Allows for read, write and delete access to Azure Storage blob containers and data",
        Permission(
            actions=(
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ),
            data_actions=(
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
            ),
        ),
    ),
    RoleDefinition(
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        "AcrPull",
        "acr pull",
        Permission(actions=("Microsoft.ContainerRegistry/registries/pull/read",)),
    ),
)

_ROLES_BY_GUID: Mapping[str, RoleDefinition] = {r.guid: r for r in BUILT_IN_ROLES}

OWNER_ROLE_GUID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def find_role(guid: str) -> RoleDefinition | None:
    """A built-in role by GUID; custom roles live in the world (`Emulator.find_role` finds both)."""
    return _ROLES_BY_GUID.get(guid.lower())


def find_role_by_name(role_name: str) -> RoleDefinition | None:
    lowered = role_name.lower()
    return next((r for r in BUILT_IN_ROLES if r.role_name.lower() == lowered), None)
