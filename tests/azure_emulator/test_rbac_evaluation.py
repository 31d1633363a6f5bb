"""The emulator's RBAC evaluation against the real permission sets of the built-in roles it ships:
wildcards in actions, notActions exclusions, data-only roles, and which scopes an assignment covers.
"""

from __future__ import annotations

import pytest

from azure_emulator import catalog, rbac, state

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"

IDENTITY_WRITE = "Microsoft.ManagedIdentity/userAssignedIdentities/write"
IDENTITY_READ = "Microsoft.ManagedIdentity/userAssignedIdentities/read"
ASSIGN = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
ROLE_ASSIGNMENT_DELETE = "Microsoft.Authorization/roleAssignments/delete"


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (OWNER, IDENTITY_WRITE, True),
        (OWNER, ROLE_ASSIGNMENT_WRITE, True),
        (CONTRIBUTOR, IDENTITY_WRITE, True),
        (CONTRIBUTOR, ROLE_ASSIGNMENT_WRITE, False),
        (CONTRIBUTOR, ROLE_ASSIGNMENT_DELETE, False),
        (CONTRIBUTOR, "Microsoft.Authorization/roleAssignments/read", True),
        (READER, IDENTITY_READ, True),
        (READER, IDENTITY_WRITE, False),
        (USER_ACCESS_ADMINISTRATOR, ROLE_ASSIGNMENT_WRITE, True),
        (USER_ACCESS_ADMINISTRATOR, IDENTITY_WRITE, False),
        (MANAGED_IDENTITY_OPERATOR, ASSIGN, True),
        (MANAGED_IDENTITY_OPERATOR, IDENTITY_WRITE, False),
        (KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults/read", False),
    ],
)
def test_built_in_role_grants(role: str, action: str, allowed: bool) -> None:
    assert rbac.is_allowed([role], action) is allowed


def test_matching_is_case_insensitive_and_wildcards_span_segments() -> None:
    assert rbac.action_matches(
        "Microsoft.Authorization/*/Write", "microsoft.authorization/roleassignments/write"
    )
    assert rbac.action_matches("*/read", "Microsoft.Resources/subscriptions/resourceGroups/read")
    assert not rbac.action_matches("*/read", "Microsoft.Resources/subscriptions/resourceGroups/write")
    assert not rbac.action_matches("Microsoft.Web/*", "Microsoft.WebX/sites/read")


def test_scope_coverage() -> None:
    group = "/subscriptions/s/resourceGroups/rg1"
    assert rbac.scope_covers("/", f"{group}/providers/Microsoft.KeyVault/vaults/kv")
    assert rbac.scope_covers("/subscriptions/S", group)
    assert rbac.scope_covers(group, group)
    assert not rbac.scope_covers(group, "/subscriptions/s/resourceGroups/rg10")
    assert not rbac.scope_covers(f"{group}/providers/Microsoft.KeyVault/vaults/kv", group)


def test_every_built_in_role_has_a_unique_guid_and_name() -> None:
    guids = [role.guid for role in catalog.BUILT_IN_ROLES]
    names = [role.role_name.lower() for role in catalog.BUILT_IN_ROLES]
    assert len(set(guids)) == len(guids)
    assert len(set(names)) == len(names)


def test_a_custom_role_grants_through_any_of_its_permission_blocks() -> None:
    custom = state.CustomRole(
        guid="0b5e1c52-8a3e-5c8e-9c57-6a1b1f3f0001",
        role_name="Identity Writer",
        description=None,
        permissions=(
            catalog.Permission(
                actions=("Microsoft.ManagedIdentity/userAssignedIdentities/*",), not_actions=(IDENTITY_WRITE,)
            ),
            catalog.Permission(actions=("Microsoft.Resources/subscriptions/resourceGroups/read",)),
        ),
        assignable_scopes=("/subscriptions/s",),
        created_on="2025-01-01T00:00:00.0000000Z",
        updated_on="2025-01-01T00:00:00.0000000Z",
        created_by=None,
        updated_by=None,
    )
    roles = {custom.guid: custom}

    def resolve(guid: str) -> rbac.Role | None:
        return roles.get(guid) or catalog.find_role(guid)

    assert rbac.is_allowed([custom.guid], IDENTITY_READ, resolve)
    assert not rbac.is_allowed([custom.guid], IDENTITY_WRITE, resolve)
    assert rbac.is_allowed([custom.guid], "Microsoft.Resources/subscriptions/resourceGroups/read", resolve)
    assert rbac.is_allowed([custom.guid, CONTRIBUTOR], IDENTITY_WRITE, resolve)
    # Without the resolver that knows it, the custom role's GUID grants nothing.
    assert not rbac.is_allowed([custom.guid], IDENTITY_READ)
