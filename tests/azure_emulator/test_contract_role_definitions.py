"""Contract of custom role definitions (Microsoft.Authorization/roleDefinitions, 2022-04-01) through the real
SDK: create, read, update in place and delete under a caller-chosen GUID; list at a scope with the roleName,
type and atScopeAndBelow() filters; Azure's refusals (names unique in the tenant, assignable scopes required,
valid and writable, the role in use, the per-tenant limit); and custom roles resolved, assigned within their
assignable scopes and honoured by RBAC like built-in ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01 import models
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from fixtures.azure_emulator import (
    AzureEmulatorInfo,
    start_emulator_process,
    stop_emulator_process,
    wait_until_ready,
)

API = "2022-04-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
IDENTITIES = "Microsoft.ManagedIdentity/userAssignedIdentities"


def _guid(role_name: str) -> str:
    """Callers name custom roles with deterministic GUIDs (here: of the role name)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"custom-role/{role_name}"))


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _subscription(info: AzureEmulatorInfo) -> str:
    return f"/subscriptions/{info.subscription_id}"


def _built_in(info: AzureEmulatorInfo, guid: str) -> str:
    return f"{_subscription(info)}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def _group(info: AzureEmulatorInfo, group: str) -> str:
    return f"{_subscription(info)}/resourceGroups/{group}"


def _definition(
    role_name: str,
    scopes: list[str],
    *,
    actions: list[str] | None = None,
    not_actions: list[str] | None = None,
    data_actions: list[str] | None = None,
    description: str = "made by a contract test",
) -> models.RoleDefinition:
    return models.RoleDefinition(
        role_name=role_name,
        description=description,
        role_type="CustomRole",
        permissions=[
            models.Permission(
                actions=actions if actions is not None else [f"{IDENTITIES}/read"],
                not_actions=not_actions or [],
                data_actions=data_actions or [],
                not_data_actions=[],
            )
        ],
        assignable_scopes=scopes,
    )


def _role_path(scope: str, guid: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}?api-version={API}"


def _raw_definition(role_name: object, scopes: object, **extra: object) -> dict[str, object]:
    properties: dict[str, object] = {
        "roleName": role_name,
        "description": "raw",
        "type": "CustomRole",
        "permissions": [{"actions": ["*/read"], "notActions": []}],
        "assignableScopes": scopes,
        **extra,
    }
    return {"properties": {k: v for k, v in properties.items() if v is not None}}


def _code(error: HttpResponseError) -> tuple[int | None, str | None]:
    return error.status_code, error.error.code if error.error else None


@pytest.fixture
def cleanup(azure_emulator: AzureEmulatorInfo) -> Iterator[list[tuple[str, str]]]:
    """(scope, GUID) of the custom roles a test makes; removed afterwards with any assignments using them,
    since the emulator (and its per-tenant role count) is shared by the whole session."""
    made: list[tuple[str, str]] = []
    yield made
    world = azure_emulator.state()["world"]
    guids = {guid.lower() for _, guid in made}
    for assignment in world["role_assignments"]:
        if assignment["role_definition_id"].rsplit("/", 1)[-1].lower() in guids:
            azure_emulator.raw("DELETE", f"{assignment['id']}?api-version={API}")
    for scope, guid in made:
        azure_emulator.raw("DELETE", _role_path(scope, guid))


def _client_for(info: AzureEmulatorInfo, client_id: str, secret: str) -> AuthorizationManagementClient:
    return AuthorizationManagementClient(
        info.credential(client_id, secret), info.subscription_id, **info.client_options()
    )


def test_a_custom_role_is_created_read_updated_in_place_and_deleted(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    cleanup: list[tuple[str, str]],
) -> None:
    scope = _subscription(azure_emulator)
    group = _group(azure_emulator, resource_group)
    name = _unique("Identity Reader")
    guid = _guid(name)
    cleanup.append((scope, guid))
    bootstrap = next(
        p["object_id"]
        for p in azure_emulator.state()["world"]["principals"]
        if p["app_id"] == azure_emulator.client_id
    )

    created = authorization_client.role_definitions.create_or_update(
        scope,
        guid,
        _definition(name, [group], data_actions=["Microsoft.KeyVault/vaults/secrets/getSecret/action"]),
    )
    assert created.name == guid
    assert created.id == f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    assert created.type == "Microsoft.Authorization/roleDefinitions"
    assert (created.role_name, created.role_type, created.assignable_scopes) == (name, "CustomRole", [group])
    assert created.permissions[0].actions == [f"{IDENTITIES}/read"]
    assert created.permissions[0].data_actions == ["Microsoft.KeyVault/vaults/secrets/getSecret/action"]
    assert (created.created_by, created.updated_by) == (bootstrap, bootstrap)
    assert created.created_on is not None

    fetched = authorization_client.role_definitions.get(scope, guid)
    assert (fetched.role_name, fetched.description) == (name, "made by a contract test")
    # By id, as role assignments name it (subscription form) and at the tenant level.
    assert authorization_client.role_definitions.get_by_id(created.id).role_name == name
    tenant_form = f"/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    assert authorization_client.role_definitions.get_by_id(tenant_form).id == tenant_form
    by_name = list(authorization_client.role_definitions.list(group, filter=f"roleName eq '{name.upper()}'"))
    assert [r.name for r in by_name] == [guid]

    renamed = _unique("Identity Reader renamed")
    updated = authorization_client.role_definitions.create_or_update(
        scope,
        guid,
        _definition(
            renamed, [group], actions=[f"{IDENTITIES}/read", f"{IDENTITIES}/write"], description="v2"
        ),
    )
    assert (updated.id, updated.name) == (created.id, guid)
    assert (updated.role_name, updated.description) == (renamed, "v2")
    assert updated.permissions[0].actions == [f"{IDENTITIES}/read", f"{IDENTITIES}/write"]
    assert updated.created_on == created.created_on
    assert updated.updated_on >= created.updated_on
    custom = list(authorization_client.role_definitions.list(group, filter="type eq 'CustomRole'"))
    assert [r.role_name for r in custom if r.name == guid] == [renamed]
    assert not list(authorization_client.role_definitions.list(group, filter=f"roleName eq '{name}'"))

    deleted = authorization_client.role_definitions.delete(scope, guid)
    assert deleted is not None
    assert deleted.name == guid
    assert authorization_client.role_definitions.delete(scope, guid) is None  # 204: already gone
    with pytest.raises(ResourceNotFoundError) as missing:
        authorization_client.role_definitions.get(scope, guid)
    assert _code(missing.value) == (404, "RoleDefinitionDoesNotExist")


def test_lists_show_roles_assignable_at_the_scope_or_above_unless_asked_for_below(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    cleanup: list[tuple[str, str]],
) -> None:
    subscription = _subscription(azure_emulator)
    group = _group(azure_emulator, resource_group)
    vault = f"{group}/providers/Microsoft.KeyVault/vaults/kv-list"
    assert azure_emulator.raw("PUT", f"{vault}?api-version=2023-07-01", {"location": "westus"}).status == 201
    name = _unique("Group Scoped O'Neil")
    guid = _guid(name)
    cleanup.append((group, guid))
    authorization_client.role_definitions.create_or_update(group, guid, _definition(name, [group]))

    def listed(scope: str, filter_text: str) -> list[str]:
        return [r.name for r in authorization_client.role_definitions.list(scope, filter=filter_text)]

    assert guid in listed(group, "type eq 'CustomRole'")
    assert guid in listed(vault, "type eq 'CustomRole'")
    assert guid not in listed(subscription, "type eq 'CustomRole'")
    assert guid in listed(subscription, "atScopeAndBelow() and type eq 'CustomRole'")
    # A quote in the name is doubled in the OData literal, as the SDK's callers write it.
    assert listed(group, "roleName eq '{}'".format(name.replace("'", "''"))) == [guid]
    assert listed(group, "type eq 'BuiltInRole' and roleName eq 'Reader'") == [READER]
    tenant = azure_emulator.raw(
        "GET",
        f"/providers/Microsoft.Authorization/roleDefinitions?api-version={API}&$filter=type+eq+'CustomRole'",
    )
    assert tenant.status == 200
    assert guid in [r["name"] for r in tenant.body["value"]]
    assert all(r["properties"]["type"] == "CustomRole" for r in tenant.body["value"])


def test_role_names_are_unique_in_the_tenant(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    cleanup: list[tuple[str, str]],
) -> None:
    scope = _subscription(azure_emulator)
    name = _unique("Unique Name")
    cleanup.append((scope, _guid(name)))
    authorization_client.role_definitions.create_or_update(scope, _guid(name), _definition(name, [scope]))
    for taken in (name.lower(), "Reader"):
        other = str(uuid.uuid4())
        with pytest.raises(HttpResponseError) as refused:
            authorization_client.role_definitions.create_or_update(scope, other, _definition(taken, [scope]))
        assert _code(refused.value) == (409, "RoleDefinitionWithSameNameExists")
        assert refused.value.error is not None
        assert refused.value.error.message == (
            "A custom role with the same name already exists in this directory. Use a different name."
        )


def test_definitions_azure_refuses(
    azure_emulator: AzureEmulatorInfo, resource_group: str, cleanup: list[tuple[str, str]]
) -> None:
    scope = _subscription(azure_emulator)
    group = _group(azure_emulator, resource_group)

    def put(guid: str, body: dict[str, object]) -> tuple[int, str | None]:
        response = azure_emulator.raw("PUT", _role_path(scope, guid), body)
        return response.status, response.error_code()

    fresh = str(uuid.uuid4())
    cleanup.append((scope, fresh))
    assert put(fresh, _raw_definition(None, [scope])) == (400, "RoleDefinitionNameNullOrEmpty")
    assert put(fresh, _raw_definition("  ", [scope])) == (400, "RoleDefinitionNameNullOrEmpty")
    assert put(fresh, _raw_definition(_unique("No Scopes"), [])) == (400, "MissingAssignableScopes")
    assert put(fresh, _raw_definition(_unique("No Scopes"), None)) == (400, "MissingAssignableScopes")
    for invalid in ("Invalid_Scope", "/", f"{scope}/resourceGroups", "/subscriptions/*"):
        assert put(fresh, _raw_definition(_unique("Bad Scope"), [invalid])) == (
            400,
            "LinkedInvalidPropertyId",
        )
    assert put(fresh, _raw_definition(_unique("Built In"), [scope], type="BuiltInRole")) == (
        400,
        "InvalidRoleDefinitionType",
    )
    assert put(READER, _raw_definition(_unique("Over Reader"), [scope])) == (409, "RoleDefinitionExists")
    assert put("not-a-guid", _raw_definition(_unique("Bad Id"), [scope])) == (400, "InvalidRoleDefinitionId")
    missing_group = f"{scope}/resourceGroups/rg-absent-{uuid.uuid4().hex[:6]}"
    assert put(fresh, _raw_definition(_unique("Gone"), [missing_group])) == (404, "ResourceGroupNotFound")
    # None of the refusals left a role behind; a valid body still works under the same GUID.
    assert put(fresh, _raw_definition(_unique("Valid"), [group])) == (201, None)
    deleting_built_in = azure_emulator.raw("DELETE", _role_path(scope, READER))
    assert (deleting_built_in.status, deleting_built_in.error_code()) == (400, "InvalidRoleDefinitionType")


def test_writing_a_custom_role_takes_write_at_every_assignable_scope(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_client: ResourceManagementClient,
    resource_group: str,
    cleanup: list[tuple[str, str]],
) -> None:
    mine = _group(azure_emulator, resource_group)
    other_name = f"rg-{uuid.uuid4().hex[:12]}"
    resource_client.resource_groups.create_or_update(other_name, {"location": "westus"})
    other = _group(azure_emulator, other_name)
    admin = azure_emulator.create_service_principal("group-access-admin")
    authorization_client.role_assignments.create(
        mine,
        str(uuid.uuid4()),
        {
            "role_definition_id": _built_in(azure_emulator, USER_ACCESS_ADMINISTRATOR),
            "principal_id": admin.object_id,
            "principal_type": "ServicePrincipal",
        },
    )
    client = _client_for(azure_emulator, admin.client_id, admin.client_secret)
    name = _unique("Delegated Role")
    guid = _guid(name)
    cleanup.append((mine, guid))

    assert client.role_definitions.create_or_update(mine, guid, _definition(name, [mine])).name == guid
    with pytest.raises(HttpResponseError) as linked:
        client.role_definitions.create_or_update(mine, guid, _definition(name, [mine, other]))
    assert _code(linked.value) == (403, "LinkedAuthorizationFailed")
    assert linked.value.error is not None
    message = linked.value.error.message
    assert "'Microsoft.Authorization/roleDefinitions/write'" in message
    assert f"linked scope(s) '{other}'" in message
    with pytest.raises(HttpResponseError) as elsewhere:
        client.role_definitions.create_or_update(other, str(uuid.uuid4()), _definition(_unique("X"), [other]))
    assert _code(elsewhere.value) == (403, "AuthorizationFailed")
    # The role's assignable scopes did not change with the refused update.
    assert client.role_definitions.get(mine, guid).assignable_scopes == [mine]

    contributor = azure_emulator.create_service_principal("group-contributor")
    authorization_client.role_assignments.create(
        mine,
        str(uuid.uuid4()),
        {
            "role_definition_id": _built_in(azure_emulator, CONTRIBUTOR),
            "principal_id": contributor.object_id,
            "principal_type": "ServicePrincipal",
        },
    )
    as_contributor = _client_for(azure_emulator, contributor.client_id, contributor.client_secret)
    with pytest.raises(HttpResponseError) as not_allowed:
        as_contributor.role_definitions.create_or_update(
            mine, str(uuid.uuid4()), _definition(_unique("C"), [mine])
        )
    assert _code(not_allowed.value) == (403, "AuthorizationFailed")
    with pytest.raises(HttpResponseError) as no_delete:
        as_contributor.role_definitions.delete(mine, guid)
    assert _code(no_delete.value) == (403, "AuthorizationFailed")
    assert client.role_definitions.delete(mine, guid) is not None


def test_a_custom_role_is_assignable_within_its_assignable_scopes_and_not_deletable_while_assigned(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    msi_client: ManagedServiceIdentityClient,
    resource_client: ResourceManagementClient,
    resource_group: str,
    cleanup: list[tuple[str, str]],
) -> None:
    subscription = _subscription(azure_emulator)
    group = _group(azure_emulator, resource_group)
    elsewhere = f"rg-{uuid.uuid4().hex[:12]}"
    resource_client.resource_groups.create_or_update(elsewhere, {"location": "westus"})
    name = _unique("Assignable In Group")
    guid = _guid(name)
    cleanup.append((subscription, guid))
    role = authorization_client.role_definitions.create_or_update(
        subscription, guid, _definition(name, [group])
    )
    identity = msi_client.user_assigned_identities.create_or_update(
        resource_group, "custom-role-holder", {"location": "westus"}
    )
    grant = {
        "role_definition_id": role.id,
        "principal_id": identity.principal_id,
        "principal_type": "ServicePrincipal",
    }

    at_group = authorization_client.role_assignments.create(group, str(uuid.uuid4()), grant)
    assert at_group.role_definition_id == role.id
    at_identity = authorization_client.role_assignments.create(identity.id, str(uuid.uuid4()), grant)
    assert at_identity.scope == identity.id
    for outside in (subscription, _group(azure_emulator, elsewhere)):
        with pytest.raises(HttpResponseError) as refused:
            authorization_client.role_assignments.create(outside, str(uuid.uuid4()), grant)
        assert _code(refused.value) == (400, "RoleAssignmentScopeNotAssignableToRoleDefinition")

    with pytest.raises(HttpResponseError) as in_use:
        authorization_client.role_definitions.delete(subscription, guid)
    assert _code(in_use.value) == (409, "RoleDefinitionHasAssignments")
    assert in_use.value.error is not None
    assert in_use.value.error.message == "There are existing role assignments referencing role."
    authorization_client.role_assignments.delete_by_id(at_group.id)
    with pytest.raises(HttpResponseError):
        authorization_client.role_definitions.delete(subscription, guid)
    authorization_client.role_assignments.delete_by_id(at_identity.id)
    assert authorization_client.role_definitions.delete(subscription, guid) is not None
    # Gone: assignments can no longer name it.
    with pytest.raises(HttpResponseError) as gone:
        authorization_client.role_assignments.create(group, str(uuid.uuid4()), grant)
    assert _code(gone.value) == (400, "RoleDefinitionDoesNotExist")


def test_rbac_honours_a_custom_roles_permissions_and_their_updates(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    resource_group: str,
    cleanup: list[tuple[str, str]],
) -> None:
    group = _group(azure_emulator, resource_group)
    name = _unique("Identity Writer No Delete")
    guid = _guid(name)
    cleanup.append((group, guid))
    role = authorization_client.role_definitions.create_or_update(
        group,
        guid,
        _definition(name, [group], actions=[f"{IDENTITIES}/*"], not_actions=[f"{IDENTITIES}/delete"]),
    )
    holder = azure_emulator.create_service_principal("custom-role-holder")
    authorization_client.role_assignments.create(
        group,
        str(uuid.uuid4()),
        {
            "role_definition_id": role.id,
            "principal_id": holder.object_id,
            "principal_type": "ServicePrincipal",
        },
    )
    token = azure_emulator.bearer_token(holder.client_id, holder.client_secret)
    identity = f"{group}/providers/{IDENTITIES}/by-custom-role?api-version=2024-11-30"

    assert azure_emulator.raw("PUT", identity, {"location": "westus"}, token=token).status == 201
    assert azure_emulator.raw("GET", identity, token=token).status == 200
    refused = azure_emulator.raw("DELETE", identity, token=token)
    assert (refused.status, refused.error_code()) == (403, "AuthorizationFailed")
    assert f"'{IDENTITIES}/delete'" in refused.body["error"]["message"]
    # Nothing beyond the role: not even reading the group.
    group_read = azure_emulator.raw("GET", f"{group}?api-version=2022-09-01", token=token)
    assert group_read.status == 403
    permissions = azure_emulator.raw(
        "GET", f"{group}/providers/Microsoft.Authorization/permissions?api-version={API}", token=token
    )
    assert permissions.body["value"] == [
        {
            "actions": [f"{IDENTITIES}/*"],
            "notActions": [f"{IDENTITIES}/delete"],
            "dataActions": [],
            "notDataActions": [],
        }
    ]

    authorization_client.role_definitions.create_or_update(
        group, guid, _definition(name, [group], actions=[f"{IDENTITIES}/*"])
    )
    assert azure_emulator.raw("DELETE", identity, token=token).status == 200


def test_the_custom_role_limit_of_the_tenant(
    azure_emulator: AzureEmulatorInfo,
    authorization_client: AuthorizationManagementClient,
    cleanup: list[tuple[str, str]],
) -> None:
    assert azure_emulator.settings()["customRoleLimit"] == 5000
    scope = _subscription(azure_emulator)
    first, second = _unique("Last Custom Role"), _unique("One Too Many")
    cleanup.extend([(scope, _guid(first)), (scope, _guid(second))])
    with azure_emulator.azure_limits(custom_roles=azure_emulator.custom_role_count() + 1):
        authorization_client.role_definitions.create_or_update(
            scope, _guid(first), _definition(first, [scope])
        )
        with pytest.raises(HttpResponseError) as refused:
            authorization_client.role_definitions.create_or_update(
                scope, _guid(second), _definition(second, [scope])
            )
        assert _code(refused.value) == (400, "RoleDefinitionLimitExceeded")
        assert refused.value.error is not None
        assert refused.value.error.message == (
            "Role definition limit exceeded. No more role definitions can be created."
        )
        # Updating a role that exists is not a new one.
        updated = authorization_client.role_definitions.create_or_update(
            scope, _guid(first), _definition(first, [scope], description="still fits")
        )
        assert updated.description == "still fits"
        authorization_client.role_definitions.delete(scope, _guid(first))
        authorization_client.role_definitions.create_or_update(
            scope, _guid(second), _definition(second, [scope])
        )
    assert azure_emulator.settings()["customRoleLimit"] == 5000


def test_limits_are_settings_custom_roles_persist_and_bad_settings_are_refused(
    azure_emulator: AzureEmulatorInfo, tmp_path: Path
) -> None:
    for bad in ({"customRoleLimit": -1}, {"roleAssignmentLimit": "many"}, {"roleAssignmentLimit": True}):
        assert azure_emulator.raw("PUT", "/_emulator/settings", bad, token="").status == 400
    ready, log, state_dir = tmp_path / "ready.json", tmp_path / "log", tmp_path / "state"
    flags = (
        "--persist",
        "--state-dir",
        str(state_dir),
        "--custom-role-limit",
        "1",
        "--role-assignment-limit",
        "9",
    )
    process = start_emulator_process(ready, log, *flags)
    try:
        wait_until_ready(process, ready, log)
        info = AzureEmulatorInfo.from_ready_file(ready)
        settings = info.settings()
        assert (settings["customRoleLimit"], settings["roleAssignmentLimit"]) == (1, 9)
        scope = _subscription(info)
        body = _raw_definition("Kept Role", [scope])
        assert info.raw("PUT", _role_path(scope, _guid("Kept Role")), body).status == 201
        refused = info.raw("PUT", _role_path(scope, str(uuid.uuid4())), _raw_definition("Second", [scope]))
        assert (refused.status, refused.error_code()) == (400, "RoleDefinitionLimitExceeded")
    finally:
        stop_emulator_process(process)
    ready.unlink()
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir))
    try:
        wait_until_ready(process, ready, log)
        info = AzureEmulatorInfo.from_ready_file(ready)
        kept = info.raw("GET", _role_path(_subscription(info), _guid("Kept Role")))
        assert (kept.status, kept.body["properties"]["roleName"]) == (200, "Kept Role")
        assert info.settings()["customRoleLimit"] == 5000
    finally:
        stop_emulator_process(process)
    bad_flag = start_emulator_process(tmp_path / "r2.json", log, "--role-assignment-limit", "-3")
    assert bad_flag.wait(timeout=30) == 2
    assert "is not a whole number >= 0" in log.read_text()
