"""The `RoleDefinition` kind: an Azure custom role, its permissions and where it may be assigned.

Its Azure name is a GUID derived from the cluster, namespace and object name (`role_definition_guid`), so
a crash between Azure's write and the status write never makes two, and a RoleAssignment's `roleRef` finds
the same role without reading any status.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pydantic

from azure_identity_operator.api.common import ApiModel, DeletionPolicy, InvalidSpecError, parse_model

ROLE_DEFINITION_NAMESPACE = uuid.UUID("2f1b8d4e-6c3a-5e7f-9a0b-1c2d3e4f5a6b")
"""The UUIDv5 namespace of custom role names: fixed forever, or every custom role would be made again."""


class Permission(ApiModel):
    actions: list[str] = pydantic.Field(default_factory=list)
    not_actions: list[str] = pydantic.Field(default_factory=list)
    data_actions: list[str] = pydantic.Field(default_factory=list)
    not_data_actions: list[str] = pydantic.Field(default_factory=list)


class RoleDefinitionSpec(ApiModel):
    role_name: str = pydantic.Field(min_length=1, max_length=512)
    description: str = ""
    permissions: list[Permission] = pydantic.Field(min_length=1)
    assignable_scopes: list[str] = pydantic.Field(min_length=1)
    deletion_policy: DeletionPolicy = "Delete"

    @property
    def scope(self) -> str:
        """Where the definition is written: its first assignable scope (Azure wants one of them)."""
        return self.assignable_scopes[0].strip().rstrip("/")


def parse_spec(raw: Mapping[str, Any] | None) -> RoleDefinitionSpec:
    spec = parse_model(RoleDefinitionSpec, raw)
    for index, scope in enumerate(spec.assignable_scopes):
        if not scope.strip().lower().startswith("/subscriptions/"):
            raise InvalidSpecError(
                f"spec.assignableScopes[{index}] {scope!r} is not a subscription, resource group or "
                "resource ID"
            )
    if not any(p.actions or p.data_actions for p in spec.permissions):
        raise InvalidSpecError("spec.permissions: list at least one action or data action")
    return spec


def role_definition_guid(cluster: str | None, namespace: str, name: str) -> str:
    """The custom role's Azure name for RoleDefinition `namespace/name` of this cluster."""
    return str(uuid.uuid5(ROLE_DEFINITION_NAMESPACE, f"{cluster or ''}/{namespace}/{name}".lower()))
