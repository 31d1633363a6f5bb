"""The authorization port: role definitions and role assignments, in plain data.

Reconcilers depend on the `AuthorizationPort` protocol; `arm.sdk.authorization` implements it with the
async `azure-mgmt-authorization` client and unit tests implement it in memory. Every method raises
`arm.errors.ArmError` on failure; "absent" is `None` (get) or a no-op (delete), never an error. Scopes are
ARM IDs with a leading slash (`/subscriptions/<id>/resourceGroups/<name>`).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Protocol

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.errors import ArmError

ROLE_ASSIGNMENT_EXISTS = "RoleAssignmentExists"

_EXISTING_ASSIGNMENT = re.compile(r"ID of the existing role assignment is ([0-9a-fA-F]{32})\b")


def existing_role_assignment_name(error: ArmError) -> str | None:
    """The name of the assignment a `RoleAssignmentExists` conflict is about, when Azure says it.

    Azure's message ends "The ID of the existing role assignment is <32 hex digits>.": the existing
    assignment's name (a GUID) without its dashes. Older answers say only "The role assignment already
    exists."; then None, and the caller must look the grant up by listing.
    """
    if error.code != ROLE_ASSIGNMENT_EXISTS:
        return None
    found = _EXISTING_ASSIGNMENT.search(error.message)
    return str(uuid.UUID(hex=found.group(1))) if found else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Permission:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleDefinition:
    id: str
    """`/subscriptions/<id>/providers/Microsoft.Authorization/roleDefinitions/<guid>`."""
    role_name: str
    role_type: str
    """`BuiltInRole` or `CustomRole`."""
    assignable_scopes: tuple[str, ...] = ()
    description: str = ""
    permissions: tuple[Permission, ...] = ()

    @property
    def guid(self) -> str:
        return ids.role_definition_guid(self.id)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleAssignmentProperties:
    """What one role assignment grants and how: the body of a PUT, and what a GET reports back."""

    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str | None
    """`None` lets Azure look the principal up in the directory (and fail while it is replicating)."""
    description: str | None = None
    condition: str | None = None
    condition_version: str | None = None

    def same_grant(self, other: RoleAssignmentProperties) -> bool:
        """Same scope, principal and role: what Azure forbids changing and keeps unique."""
        return (
            ids.same_id(self.scope, other.scope)
            and self.principal_id.lower() == other.principal_id.lower()
            and ids.role_definition_guid(self.role_definition_id)
            == ids.role_definition_guid(other.role_definition_id)
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RoleAssignment:
    id: str
    name: str
    properties: RoleAssignmentProperties


class AuthorizationPort(Protocol):
    async def get_role_definition(self, role_definition_id: str) -> RoleDefinition | None: ...

    async def find_role_definitions(self, scope: str, role_name: str) -> list[RoleDefinition]:
        """Role definitions assignable at `scope` named `role_name` (Azure matches names case-insensitively;
        built-in and custom roles alike)."""
        ...

    async def get_role_assignment(self, scope: str, name: str) -> RoleAssignment | None: ...

    async def list_role_assignments_for_principal(
        self, scope: str, principal_id: str
    ) -> list[RoleAssignment]:
        """Assignments of `principal_id` at, above or below `scope`."""
        ...

    async def list_role_assignments(self, subscription_id: str) -> list[RoleAssignment]:
        """Every role assignment at the subscription and below it (all pages): how drift checks see every
        grant in a few requests."""
        ...

    async def create_role_assignment(
        self, name: str, properties: RoleAssignmentProperties
    ) -> RoleAssignment: ...

    async def delete_role_assignment(self, scope: str, name: str) -> None: ...

    async def get_custom_role(self, scope: str, guid: str) -> RoleDefinition | None:
        """The role definition named `guid`, read at `scope`; `None` when there is none."""
        ...

    async def put_custom_role(self, scope: str, guid: str, definition: RoleDefinition) -> RoleDefinition:
        """Create or update (in place) the custom role named `guid` at `scope`."""
        ...

    async def delete_custom_role(self, scope: str, guid: str) -> None: ...

    async def count_custom_roles(self, scope: str) -> int:
        """How many custom roles are visible at `scope` (the tenant's limit counts all of them)."""
        ...
