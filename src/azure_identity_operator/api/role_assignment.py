"""The `RoleAssignment` kind: its spec and status as typed models, and the checks the CRD schema cannot do.

A RoleAssignment grants one role to one principal at one ARM scope. The principal is either a managed
identity declared in the same namespace (`spec.principal.identityRef`) or a raw Entra object ID
(`spec.principal.principalId`); the role is a role *name* resolved through Azure's role definitions or a
role definition ID. `parse_spec` turns the object's spec into a `RoleAssignmentSpec` or raises
`InvalidSpec` with a message that names the field and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from azure_identity_operator.api import constants
from azure_identity_operator.api.common import ApiModel, InvalidSpecError, parse_model
from azure_identity_operator.api.common import DeletionPolicy as DeletionPolicy

PrincipalType = Literal["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"]

MANAGED_IDENTITY_PRINCIPAL_TYPE: PrincipalType = "ServicePrincipal"
"""Managed identities are service principals; saying so lets Azure skip the directory lookup that fails
for a principal created moments ago (`PrincipalNotFound` during replication)."""

REFERENCEABLE_KINDS = (constants.USER_ASSIGNED_IDENTITY.kind, constants.SYSTEM_ASSIGNED_IDENTITY.kind)

DEFAULT_CONDITION_VERSION = "2.0"

FORCE_DELETE_ANNOTATION = f"{constants.GROUP}/force-delete"
"""Set to "true" to release a deletion blocked by Azure at once, leaving the assignment in Azure."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ROLE_DEFINITION_ID = re.compile(
    r"^(/subscriptions/(?P<subscription>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/"
    r"(?P<guid>[^/]+)/?$",
    re.IGNORECASE,
)


InvalidSpec = InvalidSpecError
"""The spec cannot be acted on; the message names the field and what to write instead."""


class IdentityReference(ApiModel):
    kind: str = constants.USER_ASSIGNED_IDENTITY.kind
    name: str


class PrincipalSpec(ApiModel):
    identity_ref: IdentityReference | None = None
    principal_id: str | None = None
    principal_type: PrincipalType | None = None


class RoleRef(ApiModel):
    kind: Literal["RoleDefinition"] = "RoleDefinition"
    name: str


class RoleAssignmentSpec(ApiModel):
    principal: PrincipalSpec
    role: str | None = None
    role_definition_id: str | None = None
    role_ref: RoleRef | None = None
    """A RoleDefinition (custom role) of this namespace."""
    scope: str
    description: str | None = None
    condition: str | None = None
    condition_version: str | None = None
    deletion_policy: DeletionPolicy = "Delete"

    @property
    def normalized_scope(self) -> str:
        """The scope as written, without a trailing slash (ARM echoes the caller's casing)."""
        return self.scope.strip().rstrip("/")

    @property
    def effective_condition_version(self) -> str | None:
        if self.condition is None:
            return None
        return self.condition_version or DEFAULT_CONDITION_VERSION

    def full_role_definition_id(self, scope_subscription_id: str) -> str | None:
        """`spec.roleDefinitionId` in subscription form; a bare GUID or the tenant form is taken in the
        scope's subscription, which is where Azure resolves it."""
        if self.role_definition_id is None:
            return None
        value = self.role_definition_id.strip()
        if is_guid(value):
            return role_definition_id(scope_subscription_id, value)
        match = _ROLE_DEFINITION_ID.match(value)
        assert match is not None  # parse_spec checked it
        return role_definition_id(match.group("subscription") or scope_subscription_id, match.group("guid"))


class RoleAssignmentStatus(ApiModel):
    """What the object last recorded about Azure: the assignment it owns and the grant it resolved."""

    id: str | None = None
    name: str | None = None
    scope: str | None = None
    principal_id: str | None = None
    principal_type: str | None = None
    role_definition_id: str | None = None
    role_name: str | None = None
    adopted: bool | None = None


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def role_definition_id(subscription_id: str, guid: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid.lower()}"
    )


def parse_spec(raw: Mapping[str, Any] | None) -> RoleAssignmentSpec:
    """The validated spec, or `InvalidSpec` naming the problem and its fix."""
    spec = parse_model(RoleAssignmentSpec, raw)
    _check_principal(spec.principal)
    _check_role(spec)
    if not spec.scope.strip().lower().startswith("/subscriptions/"):
        # The full ARM ID check needs the arm layer; the reconciler runs it (`reconcilers.role_assignments`).
        raise InvalidSpec(
            f"spec.scope {spec.scope!r} is not an ARM ID; write a subscription, resource group or resource "
            "ID such as /subscriptions/<id>/resourceGroups/<name>"
        )
    if (spec.condition_version is None) != (spec.condition is None):
        raise InvalidSpec(
            "spec.condition and spec.conditionVersion go together: set both (conditionVersion '2.0') or "
            "neither"
        )
    if spec.condition_version is not None and spec.condition_version != DEFAULT_CONDITION_VERSION:
        raise InvalidSpec(f"spec.conditionVersion must be {DEFAULT_CONDITION_VERSION!r}")
    return spec


def parse_status(raw: Mapping[str, Any] | None) -> RoleAssignmentStatus:
    return RoleAssignmentStatus.model_validate(dict(raw or {}))


def _check_principal(principal: PrincipalSpec) -> None:
    if (principal.identity_ref is None) == (principal.principal_id is None):
        raise InvalidSpec(
            "spec.principal: set exactly one of identityRef (a managed identity in this namespace) "
            "or principalId (an Entra object ID)"
        )
    if principal.identity_ref is not None:
        if principal.identity_ref.kind not in REFERENCEABLE_KINDS:
            raise InvalidSpec(
                f"spec.principal.identityRef.kind {principal.identity_ref.kind!r} is not an identity kind; "
                f"use one of {', '.join(REFERENCEABLE_KINDS)}"
            )
        if principal.principal_type not in (None, MANAGED_IDENTITY_PRINCIPAL_TYPE):
            raise InvalidSpec(
                "spec.principal.principalType: a managed identity is a ServicePrincipal; remove the field"
            )
    if principal.principal_id is not None and not is_guid(principal.principal_id):
        raise InvalidSpec(
            f"spec.principal.principalId {principal.principal_id!r} is not a GUID; write the principal's "
            "Entra object ID (not its client/application ID or name)"
        )


def _check_role(spec: RoleAssignmentSpec) -> None:
    if [spec.role, spec.role_definition_id, spec.role_ref].count(None) != 2:
        raise InvalidSpec(
            "spec: set exactly one of role (a role name such as 'Reader'), roleDefinitionId, or roleRef (a "
            "RoleDefinition of this namespace)"
        )
    if spec.role is not None and not spec.role.strip():
        raise InvalidSpec("spec.role is empty; write a role name such as 'Key Vault Secrets User'")
    if spec.role_definition_id is not None:
        value = spec.role_definition_id.strip()
        match = _ROLE_DEFINITION_ID.match(value)
        if not is_guid(value) and (match is None or not is_guid(match.group("guid"))):
            raise InvalidSpec(
                f"spec.roleDefinitionId {spec.role_definition_id!r} is not a role definition ID; write "
                "/subscriptions/<id>/providers/Microsoft.Authorization/roleDefinitions/<guid> or the GUID"
            )
        subscription = match.group("subscription") if match else None
        if subscription is not None and not is_guid(subscription):
            raise InvalidSpec(f"spec.roleDefinitionId: subscription {subscription!r} is not a GUID")
