"""An in-memory `AuthorizationPort` that behaves like Azure RBAC where reconcilers depend on it.

Like Azure: assignment names are unique per scope, one (scope, principal, role) triple exists once
(`RoleAssignmentExists` for a second name), a name cannot be reused for another grant
(`RoleAssignmentUpdateNotPermitted`), a principal without `principalType` is looked up in a directory
that may not know it yet (`PrincipalNotFound`), deletes of absent assignments succeed, and scopes can be
made to vanish (404) or to refuse the caller (403). Every call is counted, and writes separately, so
tests can assert that a second reconcile writes nothing.
"""

from __future__ import annotations

import collections
import dataclasses

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.authorization import RoleAssignment, RoleAssignmentProperties, RoleDefinition
from azure_identity_operator.arm.errors import ArmError

SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
READER_GUID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR_GUID = "b24988ac-6180-42a0-ab88-20f7382dd24c"
KEY_VAULT_SECRETS_USER_GUID = "4633458b-17de-408a-b874-0445c86b69e6"
BUILT_IN = {
    "Reader": READER_GUID,
    "Contributor": CONTRIBUTOR_GUID,
    "Key Vault Secrets User": KEY_VAULT_SECRETS_USER_GUID,
}


def role_id(guid: str, subscription: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


class FakeAuthorization:
    def __init__(self) -> None:
        self.custom_roles: dict[str, str] = {}  # role name -> guid
        self.definitions: dict[str, RoleDefinition] = {}  # custom roles written through the port, by guid
        self.assignments: dict[str, RoleAssignment] = {}  # by lower-cased id
        self.known_principals: set[str] = set()
        self.missing_scopes: set[str] = set()  # lower-cased scopes that 404
        self.forbidden_scopes: set[str] = set()  # lower-cased scopes where writes and deletes get 403
        self.failures: collections.deque[ArmError] = collections.deque()  # next calls fail with these
        self.delete_failures: collections.deque[ArmError] = collections.deque()  # next deletes fail
        self.calls: collections.Counter[str] = collections.Counter()
        # Lists lag behind writes in Azure: assignments named here are not listed yet.
        self.listed_late: set[str] = set()
        # Older answers to a conflict do not name the existing assignment.
        self.conflicts_name_the_existing_assignment = True

    # --- test helpers ---------------------------------------------------------------------------------

    @property
    def writes(self) -> int:
        return (
            self.calls["create_role_assignment"]
            + self.calls["delete_role_assignment"]
            + self.calls["put_custom_role"]
            + self.calls["delete_custom_role"]
        )

    def reset_counts(self) -> None:
        self.calls.clear()

    def seed(self, name: str, properties: RoleAssignmentProperties) -> RoleAssignment:
        assignment = RoleAssignment(
            id=_assignment_id(properties.scope, name), name=name, properties=properties
        )
        self.assignments[assignment.id.lower()] = assignment
        return assignment

    def at_scope(self, scope: str) -> list[RoleAssignment]:
        return [a for a in self.assignments.values() if ids.same_id(a.properties.scope, scope)]

    # --- the port -------------------------------------------------------------------------------------

    def _enter(self, call: str, scope: str | None = None, *, write: bool = False) -> None:
        self.calls[call] += 1
        if self.failures:
            raise self.failures.popleft()
        if scope is None:
            return
        lowered = scope.rstrip("/").lower()
        for missing in self.missing_scopes:
            if lowered == missing or lowered.startswith(missing + "/"):
                raise ArmError(
                    status=404, code="ResourceGroupNotFound", message=f"{missing} could not be found."
                )
        if write and any(lowered.startswith(f) for f in self.forbidden_scopes):
            raise ArmError(
                status=403,
                code="AuthorizationFailed",
                message=f"The client does not have authorization to perform action over scope '{scope}'",
            )

    def _definitions(self) -> list[RoleDefinition]:
        roles = [
            RoleDefinition(id=role_id(g), role_name=n, role_type="BuiltInRole") for n, g in BUILT_IN.items()
        ]
        roles += [
            RoleDefinition(id=role_id(g), role_name=n, role_type="CustomRole")
            for n, g in self.custom_roles.items()
        ]
        return roles

    async def get_role_definition(self, role_definition_id: str) -> RoleDefinition | None:
        self._enter("get_role_definition")
        guid = ids.role_definition_guid(role_definition_id)
        return next((d for d in self._definitions() if d.guid == guid), None)

    async def find_role_definitions(self, scope: str, role_name: str) -> list[RoleDefinition]:
        self._enter("find_role_definitions", scope)
        return [d for d in self._definitions() if d.role_name.lower() == role_name.lower()]

    async def get_role_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        self._enter("get_role_assignment")
        return self.assignments.get(_assignment_id(scope, name).lower())

    async def list_role_assignments_for_principal(
        self, scope: str, principal_id: str
    ) -> list[RoleAssignment]:
        self._enter("list_role_assignments_for_principal", scope)
        return [
            a
            for a in self.assignments.values()
            if a.properties.principal_id.lower() == principal_id.lower() and a.name not in self.listed_late
        ]

    async def list_role_assignments(self, subscription_id: str) -> list[RoleAssignment]:
        self._enter("list_role_assignments", f"/subscriptions/{subscription_id}")
        prefix = f"/subscriptions/{subscription_id}".lower()
        return [
            a
            for a in self.assignments.values()
            if a.properties.scope.lower().startswith(prefix) and a.name not in self.listed_late
        ]

    async def create_role_assignment(self, name: str, properties: RoleAssignmentProperties) -> RoleAssignment:
        self._enter("create_role_assignment", properties.scope, write=True)
        key = _assignment_id(properties.scope, name).lower()
        existing = self.assignments.get(key)
        if existing is not None and not existing.properties.same_grant(properties):
            raise ArmError(
                status=400,
                code="RoleAssignmentUpdateNotPermitted",
                message="Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        if existing is None:
            for other in self.assignments.values():
                if other.properties.same_grant(properties):
                    message = "The role assignment already exists."
                    if self.conflicts_name_the_existing_assignment:
                        message += (
                            f" The ID of the existing role assignment is {other.name.replace('-', '')}."
                        )
                    raise ArmError(status=409, code="RoleAssignmentExists", message=message)
            if (
                properties.principal_type is None
                and properties.principal_id.lower() not in self.known_principals
            ):
                raise ArmError(
                    status=400,
                    code="PrincipalNotFound",
                    message=f"Principal {properties.principal_id.replace('-', '')} does not exist.",
                )
        stored = dataclasses.replace(
            properties, principal_type=properties.principal_type or "ServicePrincipal"
        )
        assignment = RoleAssignment(id=_assignment_id(properties.scope, name), name=name, properties=stored)
        self.assignments[key] = assignment
        return assignment

    async def get_custom_role(self, scope: str, guid: str) -> RoleDefinition | None:
        self._enter("get_custom_role", scope)
        return self.definitions.get(guid.lower())

    async def put_custom_role(self, scope: str, guid: str, definition: RoleDefinition) -> RoleDefinition:
        self._enter("put_custom_role", scope, write=True)
        for other_guid, other in self.definitions.items():
            if other_guid != guid.lower() and other.role_name.lower() == definition.role_name.lower():
                raise ArmError(
                    status=409,
                    code="RoleDefinitionWithSameNameExists",
                    message=f"A custom role with the same name '{definition.role_name}' already exists.",
                )
        stored = dataclasses.replace(definition, id=role_id(guid), role_type="CustomRole")
        self.definitions[guid.lower()] = stored
        self.custom_roles[definition.role_name] = guid.lower()
        return stored

    async def delete_custom_role(self, scope: str, guid: str) -> None:
        self._enter("delete_custom_role", scope, write=True)
        found = self.definitions.get(guid.lower())
        if found is None:
            return
        if any(
            ids.role_definition_guid(a.properties.role_definition_id) == guid.lower()
            for a in self.assignments.values()
        ):
            raise ArmError(
                status=400,
                code="RoleDefinitionHasAssignments",
                message="There are existing role assignments referencing role.",
            )
        del self.definitions[guid.lower()]
        self.custom_roles.pop(found.role_name, None)

    async def count_custom_roles(self, scope: str) -> int:
        self._enter("count_custom_roles", scope)
        return len(self.custom_roles)

    async def delete_role_assignment(self, scope: str, name: str) -> None:
        self._enter("delete_role_assignment", scope, write=True)
        if self.delete_failures:
            raise self.delete_failures.popleft()
        self.assignments.pop(_assignment_id(scope, name).lower(), None)


def _assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
