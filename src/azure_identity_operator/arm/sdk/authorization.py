"""`AuthorizationPort` on `azure.mgmt.authorization.aio`: role definitions and role assignments (2022-04-01).

Role assignments are extension resources addressed by scope, so the client's own subscription only picks
the pipeline; the subscription of the scope picks the client, which keeps per-subscription throttling
buckets and credentials apart exactly as for the other ports.
"""

from __future__ import annotations

from typing import Any

from azure.mgmt.authorization.aio import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01 import models

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.authorization import (
    Permission,
    RoleAssignment,
    RoleAssignmentProperties,
    RoleDefinition,
)
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.sdk.session import AzureSession, translated_errors

_ROLE_DEFINITION_ABSENT = frozenset(
    {"RoleDefinitionDoesNotExist", "RoleDefinitionNotFound", "ResourceNotFound", "NotFound"}
)


class SdkAuthorizationPort:
    def __init__(self, session: AzureSession) -> None:
        self._session = session

    def _client(self, scope: str) -> AuthorizationManagementClient:
        subscription_id = _subscription_of(scope) or self._session.settings.subscription_id
        return self._session.client(AuthorizationManagementClient, subscription_id)

    async def get_role_definition(self, role_definition_id: str) -> RoleDefinition | None:
        try:
            async with translated_errors():
                found = await self._client(role_definition_id).role_definitions.get_by_id(role_definition_id)
        except ArmError as error:
            # Only the definition's own 404; a missing subscription is an error the caller must report.
            if error.status == 404 and error.code in _ROLE_DEFINITION_ABSENT:
                return None
            raise
        return _role_definition(found)

    async def find_role_definitions(self, scope: str, role_name: str) -> list[RoleDefinition]:
        # OData string literals escape a quote by doubling it.
        literal = role_name.replace("'", "''")
        async with translated_errors():
            pages = self._client(scope).role_definitions.list(scope, filter=f"roleName eq '{literal}'")
            return [_role_definition(item) async for item in pages]

    async def get_role_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        try:
            async with translated_errors():
                found = await self._client(scope).role_assignments.get(scope, name)
        except ArmError as error:
            # 404 for the assignment and for its scope alike: either way Azure holds no such assignment.
            if error.status == 404:
                return None
            raise
        return _role_assignment(found)

    async def list_role_assignments_for_principal(
        self, scope: str, principal_id: str
    ) -> list[RoleAssignment]:
        async with translated_errors():
            pages = self._client(scope).role_assignments.list_for_scope(
                scope, filter=f"principalId eq '{principal_id}'"
            )
            return [_role_assignment(item) async for item in pages]

    async def list_role_assignments(self, subscription_id: str) -> list[RoleAssignment]:
        client = self._session.client(AuthorizationManagementClient, subscription_id)
        async with translated_errors():
            return [_role_assignment(item) async for item in client.role_assignments.list_for_subscription()]

    async def create_role_assignment(self, name: str, properties: RoleAssignmentProperties) -> RoleAssignment:
        parameters = models.RoleAssignmentCreateParameters(
            role_definition_id=properties.role_definition_id,
            principal_id=properties.principal_id,
            description=properties.description,
            condition=properties.condition,
            condition_version=properties.condition_version,
        )
        # The model defaults principalType to "User"; None leaves it out so Azure looks the principal up.
        parameters.principal_type = properties.principal_type  # type: ignore[assignment]
        async with translated_errors():
            created = await self._client(properties.scope).role_assignments.create(
                properties.scope, name, parameters
            )
        return _role_assignment(created)

    async def delete_role_assignment(self, scope: str, name: str) -> None:
        # 200 (deleted) and 204 (absent) both return; a 404 means the scope itself is gone and is raised
        # so the caller can say so.
        async with translated_errors():
            await self._client(scope).role_assignments.delete(scope, name)

    async def get_custom_role(self, scope: str, guid: str) -> RoleDefinition | None:
        try:
            async with translated_errors():
                found = await self._client(scope).role_definitions.get(scope, guid)
        except ArmError as error:
            if error.status == 404 and error.code in _ROLE_DEFINITION_ABSENT:
                return None
            raise
        return _role_definition(found)

    async def put_custom_role(self, scope: str, guid: str, definition: RoleDefinition) -> RoleDefinition:
        body = models.RoleDefinition(
            role_name=definition.role_name,
            description=definition.description,
            role_type="CustomRole",
            permissions=[
                models.Permission(
                    actions=list(p.actions),
                    not_actions=list(p.not_actions),
                    data_actions=list(p.data_actions),
                    not_data_actions=list(p.not_data_actions),
                )
                for p in definition.permissions
            ],
            assignable_scopes=list(definition.assignable_scopes),
        )
        async with translated_errors():
            written = await self._client(scope).role_definitions.create_or_update(scope, guid, body)
        return _role_definition(written)

    async def delete_custom_role(self, scope: str, guid: str) -> None:
        async with translated_errors():
            await self._client(scope).role_definitions.delete(scope, guid)

    async def count_custom_roles(self, scope: str) -> int:
        async with translated_errors():
            pages = self._client(scope).role_definitions.list(scope, filter="type eq 'CustomRole'")
            return sum([1 async for _ in pages])


def _subscription_of(scope: str) -> str | None:
    segments = [segment for segment in scope.split("/") if segment]
    if len(segments) >= 2 and segments[0].lower() == "subscriptions" and ids.is_guid(segments[1]):
        return segments[1]
    return None


def _role_definition(resource: Any) -> RoleDefinition:
    return RoleDefinition(
        id=resource.id,
        role_name=resource.role_name or "",
        role_type=resource.role_type or "",
        assignable_scopes=tuple(resource.assignable_scopes or ()),
        description=resource.description or "",
        permissions=tuple(
            Permission(
                actions=tuple(p.actions or ()),
                not_actions=tuple(p.not_actions or ()),
                data_actions=tuple(p.data_actions or ()),
                not_data_actions=tuple(p.not_data_actions or ()),
            )
            for p in resource.permissions or ()
        ),
    )


def _role_assignment(resource: Any) -> RoleAssignment:
    return RoleAssignment(
        id=resource.id,
        name=resource.name,
        properties=RoleAssignmentProperties(
            scope=resource.scope,
            role_definition_id=resource.role_definition_id,
            principal_id=resource.principal_id,
            principal_type=resource.principal_type,
            description=resource.description,
            condition=resource.condition,
            condition_version=resource.condition_version,
        ),
    )
