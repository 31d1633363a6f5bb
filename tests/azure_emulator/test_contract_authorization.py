"""Contract of Microsoft.Authorization: built-in role definitions (real GUIDs, case-insensitive roleName
filter), role assignments at subscription / resource-group / resource scope with their `$filter` forms and
real error codes, the principal replication delay, and RBAC evaluation (403 AuthorizationFailed).
"""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from fixtures.azure_emulator import AzureEmulatorInfo

RA_VERSION = "2022-04-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def _role_id(info: AzureEmulatorInfo, guid: str) -> str:
    return f"/subscriptions/{info.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def _group_scope(info: AzureEmulatorInfo, group: str) -> str:
    return f"/subscriptions/{info.subscription_id}/resourceGroups/{group}"


def _new_principal(msi_client: ManagedServiceIdentityClient, group: str) -> str:
    identity = msi_client.user_assigned_identities.create_or_update(
        group, f"p-{uuid.uuid4().hex[:8]}", {"location": "westus"}
    )
    principal_id: str = identity.principal_id
    return principal_id


def test_built_in_roles_by_name_case_insensitive(
    azure_emulator: AzureEmulatorInfo, authorization_client: AuthorizationManagementClient
) -> None:
    scope = f"/subscriptions/{azure_emulator.subscription_id}"
    expected = {
        "reader": READER,
        "Contributor": CONTRIBUTOR,
        "OWNER": OWNER,
        "Key Vault Secrets User": KEY_VAULT_SECRETS_USER,
        "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "Managed Identity Operator": "f1a07417-d97a-45cb-824c-7a7467783830",
        "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    }
    for role_name, guid in expected.items():
        found = list(authorization_client.role_definitions.list(scope, filter=f"roleName eq '{role_name}'"))
        assert [r.name for r in found] == [guid], role_name
        assert found[0].id == _role_id(azure_emulator, guid)
        assert found[0].role_type == "BuiltInRole"
    reader = authorization_client.role_definitions.get(scope, READER)
    assert reader.role_name == "Reader"
    assert reader.permissions[0].actions == ["*/read"]
    by_id = authorization_client.role_definitions.get_by_id(
        f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"
    )
    assert by_id.role_name == "Owner"
    secrets_user = authorization_client.role_definitions.get(scope, KEY_VAULT_SECRETS_USER)
    assert secrets_user.permissions[0].actions == []
    assert secrets_user.permissions[0].data_actions


def test_unknown_role_definition_is_404(azure_emulator: AzureEmulatorInfo) -> None:
    response = azure_emulator.raw(
        "GET",
        f"/subscriptions/{azure_emulator.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/"
        f"{uuid.uuid4()}?api-version={RA_VERSION}",
    )
    assert (response.status, response.error_code()) == (404, "RoleDefinitionDoesNotExist")


def test_assignment_put_get_list_delete_at_resource_group(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    name = str(uuid.uuid4())
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={RA_VERSION}"
    body = {"properties": {"roleDefinitionId": _role_id(azure_emulator, READER), "principalId": principal}}
    created = azure_emulator.raw("PUT", path, body)
    assert created.status == 201
    properties = created.body["properties"]
    assert properties["principalType"] == "ServicePrincipal"  # inferred from the directory
    assert properties["scope"] == scope
    assert properties["createdBy"] is None  # filled in on later reads
    assert properties["condition"] is None
    assert properties["description"] is None
    assert created.body["id"] == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"

    fetched = authorization_client.role_assignments.get(scope, name)
    assert fetched.principal_id == principal
    assert fetched.created_by is not None

    again = azure_emulator.raw("PUT", path, {"properties": {**body["properties"], "description": "why"}})
    assert (again.status, again.body["properties"]["description"]) == (201, "why")

    listed = list(authorization_client.role_assignments.list_for_resource_group(resource_group))
    assert name in [a.name for a in listed]
    deleted = azure_emulator.raw("DELETE", path)
    assert deleted.status == 200
    assert deleted.body["name"] == name
    assert azure_emulator.raw("DELETE", path).status == 204
    missing = azure_emulator.raw("GET", path)
    assert (missing.status, missing.error_code()) == (404, "RoleAssignmentNotFound")


def test_assignment_at_resource_scope_via_sdk(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_client: ResourceManagementClient,
    resource_group: str,
) -> None:
    vault_id = f"{_group_scope(azure_emulator, resource_group)}/providers/Microsoft.KeyVault/vaults/kv-scope"
    resource_client.resources.begin_create_or_update_by_id(
        vault_id,
        {"location": "westus", "properties": {"tenantId": azure_emulator.tenant_id}},
        api_version="2023-07-01",
    ).result()
    principal = _new_principal(msi_client, resource_group)
    name = str(uuid.uuid4())
    created = authorization_client.role_assignments.create(
        vault_id,
        name,
        {
            "role_definition_id": _role_id(azure_emulator, KEY_VAULT_SECRETS_USER),
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    assert created.scope == vault_id
    by_id = authorization_client.role_assignments.get_by_id(created.id)
    assert by_id.name == name
    for_resource = authorization_client.role_assignments.list_for_resource(
        resource_group, "Microsoft.KeyVault", "vaults", "kv-scope"
    )
    assert name in [a.name for a in for_resource]
    authorization_client.role_assignments.delete_by_id(created.id)
    assert name not in [a.name for a in authorization_client.role_assignments.list_for_scope(vault_id)]


def test_assignment_on_missing_resource_is_404(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    principal = _new_principal(msi_client, resource_group)
    scope = f"{_group_scope(azure_emulator, resource_group)}/providers/Microsoft.KeyVault/vaults/absent"
    response = azure_emulator.raw(
        "PUT",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version={RA_VERSION}",
        {"properties": {"roleDefinitionId": _role_id(azure_emulator, READER), "principalId": principal}},
    )
    assert (response.status, response.error_code()) == (404, "ResourceNotFound")


def test_filters_at_scope_and_principal(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    subscription_scope = f"/subscriptions/{azure_emulator.subscription_id}"
    group_scope = _group_scope(azure_emulator, resource_group)
    vault_scope = f"{group_scope}/providers/Microsoft.KeyVault/vaults/kv-filter"
    azure_emulator.raw("PUT", f"{vault_scope}?api-version=2023-07-01", {"location": "westus"})
    principal = _new_principal(msi_client, resource_group)
    names = {}
    for label, scope in (("sub", subscription_scope), ("group", group_scope), ("vault", vault_scope)):
        names[label] = authorization_client.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            {"role_definition_id": _role_id(azure_emulator, READER), "principal_id": principal},
        ).name

    def listed(scope: str, filter_text: str | None) -> set[str]:
        return {
            a.name for a in authorization_client.role_assignments.list_for_scope(scope, filter=filter_text)
        }

    try:
        at_scope = listed(group_scope, "atScope()")
        assert names["sub"] in at_scope
        assert names["group"] in at_scope
        assert names["vault"] not in at_scope
        by_principal = listed(group_scope, f"principalId eq '{principal}'")
        assert by_principal == set(names.values())
        combined = listed(group_scope, f"atScope() and assignedTo('{principal}')")
        assert combined == {names["sub"], names["group"]}
        unfiltered = listed(group_scope, None)
        assert set(names.values()) <= unfiltered
        # The SDK spells the space as %20 and quotes as %27; `+` and raw quotes must work too.
        raw = azure_emulator.raw(
            "GET",
            f"{group_scope}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_VERSION}"
            f"&$filter=principalId+eq+%27{principal}%27",
        )
        assert {a["name"] for a in raw.body["value"]} == set(names.values())
        bad = azure_emulator.raw(
            "GET",
            f"{group_scope}/providers/Microsoft.Authorization/roleAssignments?api-version={RA_VERSION}"
            "&$filter=roleName%20eq%20%27x%27",
        )
        assert (bad.status, bad.error_code()) == (400, "UnsupportedQuery")
    finally:
        for name, scope in zip(names.values(), (subscription_scope, group_scope, vault_scope), strict=True):
            authorization_client.role_assignments.delete(scope, name)


def _put_assignment(
    info: AzureEmulatorInfo, scope: str, name: str, properties: dict[str, object], token: str | None = None
) -> tuple[int, str | None, str]:
    response = info.raw(
        "PUT",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={RA_VERSION}",
        {"properties": properties},
        token=token,
    )
    message = response.body["error"]["message"] if response.error_code() else ""
    return response.status, response.error_code(), message


def test_assignment_error_codes(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    reader = _role_id(azure_emulator, READER)
    first = str(uuid.uuid4())
    assert (
        _put_assignment(azure_emulator, scope, first, {"roleDefinitionId": reader, "principalId": principal})[
            0
        ]
        == 201
    )

    status, code, message = _put_assignment(
        azure_emulator, scope, str(uuid.uuid4()), {"roleDefinitionId": reader, "principalId": principal}
    )
    assert (status, code) == (409, "RoleAssignmentExists")
    assert first.replace("-", "") in message

    other = _new_principal(msi_client, resource_group)
    status, code, _ = _put_assignment(
        azure_emulator, scope, first, {"roleDefinitionId": reader, "principalId": other}
    )
    assert (status, code) == (400, "RoleAssignmentUpdateNotPermitted")

    status, code, message = _put_assignment(
        azure_emulator, scope, "not-a-guid", {"roleDefinitionId": reader, "principalId": principal}
    )
    assert (status, code) == (400, "InvalidRoleAssignmentId")
    assert "must be a GUID" in message
    delete_bad = azure_emulator.raw(
        "DELETE", f"{scope}/providers/Microsoft.Authorization/roleAssignments/nope?api-version={RA_VERSION}"
    )
    assert (delete_bad.status, delete_bad.error_code()) == (400, "InvalidRoleAssignmentId")

    status, code, _ = _put_assignment(
        azure_emulator, scope, str(uuid.uuid4()), {"roleDefinitionId": reader, "principalId": "someone"}
    )
    assert (status, code) == (400, "InvalidPrincipalId")
    status, code, _ = _put_assignment(
        azure_emulator, scope, str(uuid.uuid4()), {"roleDefinitionId": "/bad/role", "principalId": principal}
    )
    assert (status, code) == (400, "InvalidRoleDefinitionId")
    status, code, _ = _put_assignment(
        azure_emulator,
        scope,
        str(uuid.uuid4()),
        {"roleDefinitionId": _role_id(azure_emulator, str(uuid.uuid4())), "principalId": principal},
    )
    assert (status, code) == (400, "RoleDefinitionDoesNotExist")
    status, code, _ = _put_assignment(
        azure_emulator,
        scope,
        str(uuid.uuid4()),
        {
            "roleDefinitionId": _role_id(azure_emulator, CONTRIBUTOR),
            "principalId": principal,
            "principalType": "User",
        },
    )
    assert (status, code) == (400, "UnmatchedPrincipalType")


def test_principal_replication_delay(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    reader = _role_id(azure_emulator, READER)
    azure_emulator.set_principal_delay(30)
    try:
        fresh = _new_principal(msi_client, resource_group)
        status, code, message = _put_assignment(
            azure_emulator, scope, str(uuid.uuid4()), {"roleDefinitionId": reader, "principalId": fresh}
        )
        assert (status, code) == (400, "PrincipalNotFound")
        assert fresh.replace("-", "") in message
        assert azure_emulator.tenant_id in message
        assert "principalType" in message
        status, code, _ = _put_assignment(
            azure_emulator,
            scope,
            str(uuid.uuid4()),
            {"roleDefinitionId": reader, "principalId": fresh, "principalType": "ServicePrincipal"},
        )
        assert (status, code) == (201, None)
    finally:
        azure_emulator.set_principal_delay(0)
    # Once replicated, the lookup succeeds without principalType.
    status, _, _ = _put_assignment(
        azure_emulator,
        scope,
        str(uuid.uuid4()),
        {"roleDefinitionId": _role_id(azure_emulator, CONTRIBUTOR), "principalId": fresh},
    )
    assert status == 201


def test_principal_that_never_existed(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    ghost = str(uuid.uuid4())
    reader = _role_id(azure_emulator, READER)
    status, code, _ = _put_assignment(
        azure_emulator, scope, str(uuid.uuid4()), {"roleDefinitionId": reader, "principalId": ghost}
    )
    assert (status, code) == (400, "PrincipalNotFound")
    # With principalType the directory lookup is skipped, so Azure accepts it (shown as an unknown identity).
    status, code, _ = _put_assignment(
        azure_emulator,
        scope,
        str(uuid.uuid4()),
        {"roleDefinitionId": reader, "principalId": ghost, "principalType": "ServicePrincipal"},
    )
    assert (status, code) == (201, None)


def test_assignments_outlive_a_deleted_identity(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "leaver", {"location": "westus"}
    )
    scope = _group_scope(azure_emulator, resource_group)
    assignment = authorization_client.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {"role_definition_id": _role_id(azure_emulator, READER), "principal_id": identity.principal_id},
    )
    msi_client.user_assigned_identities.delete(resource_group, "leaver")
    assert (
        authorization_client.role_assignments.get(scope, assignment.name).principal_id
        == identity.principal_id
    )


def test_rbac_forbids_and_allows_by_role(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    outsider = azure_emulator.create_service_principal("outsider")
    token = azure_emulator.bearer_token(outsider.client_id, outsider.client_secret)
    identity_id = f"{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/by-outsider"
    identity_path = f"{identity_id}?api-version=2024-11-30"

    forbidden = azure_emulator.raw("PUT", identity_path, {"location": "westus"}, token=token)
    assert (forbidden.status, forbidden.error_code()) == (403, "AuthorizationFailed")
    assert forbidden.body["error"]["message"] == (
        f"The client '{outsider.object_id}' with object id '{outsider.object_id}' does not have "
        "authorization to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/write' over "
        f"scope '{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/by-outsider' or the "
        "scope is invalid. If access was recently granted, please refresh your credentials."
    )

    def grant(role: str) -> str:
        assignment = authorization_client.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            {"role_definition_id": _role_id(azure_emulator, role), "principal_id": outsider.object_id},
        )
        name: str = assignment.name
        return name

    reader_assignment = grant(READER)
    assert azure_emulator.raw("GET", f"{scope}?api-version=2022-09-01", token=token).status == 200
    assert azure_emulator.raw("PUT", identity_path, {"location": "westus"}, token=token).status == 403

    grant(CONTRIBUTOR)
    assert azure_emulator.raw("PUT", identity_path, {"location": "westus"}, token=token).status == 201
    # Contributor excludes Microsoft.Authorization/*/Write: it cannot grant roles.
    status, code, message = _put_assignment(
        azure_emulator,
        scope,
        str(uuid.uuid4()),
        {"roleDefinitionId": _role_id(azure_emulator, READER), "principalId": outsider.object_id},
        token=token,
    )
    assert (status, code) == (403, "AuthorizationFailed")
    assert "'Microsoft.Authorization/roleAssignments/write'" in message
    # ...and its rights stop at the resource group.
    other_group = azure_emulator.raw(
        "PUT",
        f"/subscriptions/{azure_emulator.subscription_id}/resourcegroups/outsider-rg?api-version=2022-09-01",
        {"location": "westus"},
        token=token,
    )
    assert other_group.status == 403
    authorization_client.role_assignments.delete(scope, reader_assignment)

    permissions = azure_emulator.raw(
        "GET", f"{scope}/providers/Microsoft.Authorization/permissions?api-version={RA_VERSION}", token=token
    )
    assert permissions.status == 200
    assert [p["actions"] for p in permissions.body["value"]] == [["*"]]


@pytest.mark.parametrize("scope_suffix", ["", "/resourceGroups/{group}"])
def test_owner_is_seeded_for_bootstrap_principal(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    scope_suffix: str,
) -> None:
    scope = f"/subscriptions/{azure_emulator.subscription_id}{scope_suffix.format(group=resource_group)}"
    at_scope = list(authorization_client.role_assignments.list_for_scope(scope, filter="atScope()"))
    owners = [a for a in at_scope if a.role_definition_id.endswith(OWNER)]
    assert [a.scope for a in owners] == [f"/subscriptions/{azure_emulator.subscription_id}"]
    assert all(a.principal_type == "ServicePrincipal" for a in owners)


def test_linked_authorization_to_attach_an_identity(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "attachable", {"location": "westus"}
    )
    operator = azure_emulator.create_service_principal("vm-operator")
    token = azure_emulator.bearer_token(operator.client_id, operator.client_secret)
    vm_path = f"{scope}/providers/Microsoft.Compute/virtualMachines/vm-linked?api-version=2024-07-01"
    assert azure_emulator.raw("PUT", vm_path, {"location": "westus"}).status == 201
    authorization_client.role_assignments.create(
        f"{scope}/providers/Microsoft.Compute/virtualMachines/vm-linked",
        str(uuid.uuid4()),
        {"role_definition_id": _role_id(azure_emulator, CONTRIBUTOR), "principal_id": operator.object_id},
    )
    attach = {"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity.id: {}}}}
    refused = azure_emulator.raw("PATCH", vm_path, attach, token=token)
    assert (refused.status, refused.error_code()) == (403, "LinkedAuthorizationFailed")
    authorization_client.role_assignments.create(
        identity.id,
        str(uuid.uuid4()),
        {
            "role_definition_id": _role_id(azure_emulator, "f1a07417-d97a-45cb-824c-7a7467783830"),
            "principal_id": operator.object_id,
        },
    )
    assert azure_emulator.raw("PATCH", vm_path, attach, token=token).status == 200
    with pytest.raises(HttpResponseError):
        authorization_client.role_assignments.create(
            scope,
            "bad",
            {"role_definition_id": _role_id(azure_emulator, READER), "principal_id": operator.object_id},
        )


def test_lists_are_filtered_to_what_the_caller_may_read(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    visible = msi_client.user_assigned_identities.create_or_update(
        resource_group, "in-view", {"location": "westus"}
    )
    hidden_group = f"rg-hidden-{uuid.uuid4().hex[:6]}"
    azure_emulator.raw(
        "PUT",
        f"/subscriptions/{azure_emulator.subscription_id}/resourcegroups/{hidden_group}?api-version=2022-09-01",
        {"location": "westus"},
    )
    msi_client.user_assigned_identities.create_or_update(hidden_group, "out-of-view", {"location": "westus"})
    viewer = azure_emulator.create_service_principal("group-reader")
    token = azure_emulator.bearer_token(viewer.client_id, viewer.client_secret)
    subscription = f"/subscriptions/{azure_emulator.subscription_id}"
    groups_url = f"{subscription}/resourcegroups?api-version=2022-09-01"
    identities_url = (
        f"{subscription}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30"
    )

    nothing = azure_emulator.raw("GET", groups_url, token=token)
    assert (nothing.status, nothing.error_code()) == (403, "AuthorizationFailed")
    authorization_client.role_assignments.create(
        _group_scope(azure_emulator, resource_group),
        str(uuid.uuid4()),
        {"role_definition_id": _role_id(azure_emulator, READER), "principal_id": viewer.object_id},
    )
    groups = azure_emulator.raw("GET", groups_url, token=token)
    assert groups.status == 200
    assert [g["name"] for g in groups.body["value"]] == [resource_group]
    identities = azure_emulator.raw("GET", identities_url, token=token)
    assert [i["id"] for i in identities.body["value"]] == [visible.id]


def test_a_description_changes_in_place_through_the_sdk(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    """The operator's ownership marker lives at the end of the description: re-PUT under the same name with
    the same grant changes it in place (same assignment, created once), text and brackets kept exactly."""
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    name = str(uuid.uuid4())
    grant = {
        "role_definition_id": _role_id(azure_emulator, READER),
        "principal_id": principal,
        "principal_type": "ServicePrincipal",
    }
    first = authorization_client.role_assignments.create(
        scope, name, {**grant, "description": "[managed by azure-identity-operator: east/team/reader]"}
    )
    text = "lets the app read its group [managed by azure-identity-operator: west/team/reader]"
    second = authorization_client.role_assignments.create(scope, name, {**grant, "description": text})
    fetched = authorization_client.role_assignments.get(scope, name)
    assert second.id == first.id
    assert fetched.description == text
    assert fetched.created_on == first.created_on
    assert [
        a.name for a in authorization_client.role_assignments.list_for_scope(scope, filter="atScope()")
    ].count(name) == 1


# A condition of the documented shape: the action it targets, or an expression on attributes.
BLOB_READ_CONDITION = (
    "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR "
    "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'logs'))"
)
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"


def test_a_condition_and_description_change_in_place_through_the_sdk(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    name = str(uuid.uuid4())
    grant = {
        "role_definition_id": _role_id(azure_emulator, STORAGE_BLOB_DATA_READER),
        "principal_id": principal,
        "principal_type": "ServicePrincipal",
    }
    first = authorization_client.role_assignments.create(
        scope, name, {**grant, "condition": BLOB_READ_CONDITION, "condition_version": "2.0"}
    )
    assert (first.condition, first.condition_version) == (BLOB_READ_CONDITION, "2.0")

    narrower = BLOB_READ_CONDITION.replace("StringEquals 'logs'", "StringStartsWith 'logs-2025'")
    second = authorization_client.role_assignments.create(
        scope, name, {**grant, "condition": narrower, "description": "only this year's logs"}
    )
    assert second.id == first.id
    # Without a version the condition is version 2.0, the only one.
    assert (second.condition, second.condition_version) == (narrower, "2.0")
    fetched = authorization_client.role_assignments.get(scope, name)
    assert (fetched.condition, fetched.description) == (narrower, "only this year's logs")
    assert fetched.created_on == first.created_on

    # A re-PUT without a condition removes it: the body replaces the assignment's condition.
    authorization_client.role_assignments.create(scope, name, grant)
    cleared = authorization_client.role_assignments.get(scope, name)
    assert (cleared.condition, cleared.condition_version, cleared.description) == (None, None, None)
    assert [a.name for a in authorization_client.role_assignments.list_for_scope(scope)].count(name) == 1


@pytest.mark.parametrize(
    ("condition", "version"),
    [
        pytest.param(BLOB_READ_CONDITION, "1.0", id="version-1.0"),
        pytest.param(None, "2.0", id="version-without-condition"),
        pytest.param("this is not a condition", "2.0", id="unparsable"),
        pytest.param(BLOB_READ_CONDITION[:-1], "2.0", id="unbalanced-parentheses"),
        pytest.param(
            "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'a' AND "
            "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'b' OR "
            "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'c'",
            "2.0",
            id="and-or-without-parentheses",
        ),
        pytest.param(
            "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] Resembles 'x'",
            "2.0",
            id="unknown-operator",
        ),
    ],
)
def test_conditions_azure_refuses(
    azure_emulator: AzureEmulatorInfo,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
    condition: str | None,
    version: str,
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    properties: dict[str, object] = {
        "roleDefinitionId": _role_id(azure_emulator, STORAGE_BLOB_DATA_READER),
        "principalId": principal,
        "conditionVersion": version,
    }
    if condition is not None:
        properties["condition"] = condition
    status, code, message = _put_assignment(azure_emulator, scope, str(uuid.uuid4()), properties)
    assert (status, code, message) == (
        400,
        "InvalidRoleAssignmentCondition",
        "The given role assignment condition is invalid.",
    )


def test_a_condition_may_be_up_to_8_kb(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    scope = _group_scope(azure_emulator, resource_group)
    principal = _new_principal(msi_client, resource_group)
    prefix = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals '"
    at_limit = prefix + "x" * (8192 - len(prefix) - 1) + "'"
    assert len(at_limit.encode()) == 8192
    properties = {
        "roleDefinitionId": _role_id(azure_emulator, STORAGE_BLOB_DATA_READER),
        "principalId": principal,
        "condition": at_limit,
        "conditionVersion": "2.0",
    }
    name = str(uuid.uuid4())
    assert _put_assignment(azure_emulator, scope, name, properties)[:2] == (201, None)
    too_long = {**properties, "condition": at_limit.replace("'x", "'xx")}
    assert _put_assignment(azure_emulator, scope, name, too_long)[:2] == (
        400,
        "InvalidRoleAssignmentCondition",
    )
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={RA_VERSION}"
    assert azure_emulator.raw("GET", path).body["properties"]["condition"] == at_limit


def test_the_role_assignment_limit_of_a_subscription(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_group: str,
) -> None:
    assert azure_emulator.settings()["roleAssignmentLimit"] == 4000
    scope = _group_scope(azure_emulator, resource_group)
    vault = f"{scope}/providers/Microsoft.KeyVault/vaults/kv-limit"
    assert azure_emulator.raw("PUT", f"{vault}?api-version=2023-07-01", {"location": "westus"}).status == 201
    principal = _new_principal(msi_client, resource_group)
    reader = {"role_definition_id": _role_id(azure_emulator, READER), "principal_id": principal}
    with azure_emulator.azure_limits(role_assignments=azure_emulator.role_assignment_count() + 1):
        last = authorization_client.role_assignments.create(scope, str(uuid.uuid4()), reader)
        # Assignments at groups and resources count as much as those at the subscription.
        for where in (vault, scope, f"/subscriptions/{azure_emulator.subscription_id}"):
            with pytest.raises(HttpResponseError) as refused:
                authorization_client.role_assignments.create(
                    where,
                    str(uuid.uuid4()),
                    {**reader, "role_definition_id": _role_id(azure_emulator, CONTRIBUTOR)},
                )
            assert refused.value.status_code == 400
            assert refused.value.error is not None
            assert (refused.value.error.code, refused.value.error.message) == (
                "RoleAssignmentLimitExceeded",
                "No more role assignments can be created.",
            )
        # Changing an assignment that exists adds none.
        changed = authorization_client.role_assignments.create(
            scope, last.name, {**reader, "description": "kept"}
        )
        assert changed.description == "kept"
        authorization_client.role_assignments.delete(scope, last.name)
        authorization_client.role_assignments.create(vault, str(uuid.uuid4()), reader)
    assert azure_emulator.settings()["roleAssignmentLimit"] == 4000
