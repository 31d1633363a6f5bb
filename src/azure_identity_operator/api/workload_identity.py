"""The `WorkloadIdentity` kind: "pods running as this ServiceAccount act in Azure with these roles", as one
object, and the objects of the other kinds it stands for.

A WorkloadIdentity is built from ordinary objects the operator creates and owns (owner references, so
`kubectl get` shows them and Kubernetes collects them): a `UserAssignedIdentity` (unless `identityRef`
names an existing one), a `FederatedIdentityCredential` trusting the ServiceAccount, and a `RoleAssignment`
per entry of `roles`. `desired_parts` computes their specs from the WorkloadIdentity's spec; this module
knows nothing of how they are written or reconciled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import pydantic

from azure_identity_operator.api import constants
from azure_identity_operator.api.common import ApiModel, DeletionPolicy, InvalidSpecError, parse_model
from azure_identity_operator.api.federated_identity_credential import DEFAULT_AUDIENCE
from azure_identity_operator.api.user_assigned_identity import ExportTo, LocalObjectReference

CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
SERVICE_ACCOUNT_ANNOTATIONS = (CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION)
"""What the Azure Workload Identity webhook reads from a ServiceAccount: the only keys the operator writes."""

MAX_NAME_LENGTH = 200
"""Leaves room for the role assignments' suffix within Kubernetes' 253 characters."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class RoleSpec(ApiModel):
    role: str | None = None
    role_definition_id: str | None = None
    scope: str = pydantic.Field(min_length=1)
    description: str | None = None

    @property
    def what(self) -> str:
        """The role as written: its name, else its definition ID."""
        return (self.role or self.role_definition_id or "").strip()


class NewIdentitySpec(ApiModel):
    """A new identity: the fields of a UserAssignedIdentity's spec a WorkloadIdentity passes on."""

    resource_group: str = pydantic.Field(min_length=1)
    location: str = pydantic.Field(min_length=1)
    azure_name: str | None = None
    subscription_id: str | None = None
    tags: dict[str, str] = pydantic.Field(default_factory=dict)
    export_to: ExportTo | None = None


class WorkloadIdentitySpec(ApiModel):
    service_account_name: str = pydantic.Field(min_length=1, max_length=253)
    identity: NewIdentitySpec | None = None
    """A new UserAssignedIdentity's spec, passed on as written (and the deletion policy)."""
    identity_ref: LocalObjectReference | None = None
    roles: list[RoleSpec] = pydantic.Field(default_factory=list)
    deletion_policy: DeletionPolicy = "Delete"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Part:
    """One object a WorkloadIdentity is made of, as the operator writes it."""

    kind: constants.Kind
    name: str
    spec: Mapping[str, Any]
    describe: str = ""
    """What the part is for, in a status line ("Key Vault Secrets User at /subscriptions/...")."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DesiredWorkload:
    """The parts and the ServiceAccount a WorkloadIdentity's spec stands for."""

    service_account: str
    identity_name: str
    owns_identity: bool
    parts: tuple[Part, ...]
    deletion_policy: DeletionPolicy


def parse_spec(raw: Mapping[str, Any] | None) -> WorkloadIdentitySpec:
    return parse_model(WorkloadIdentitySpec, raw)


def role_part_name(owner: str, role: RoleSpec) -> str:
    """`<owner>-<10 hex>`: a hash of the role and scope (case-insensitive, as Azure compares them), so
    reordering `roles` changes nothing and changing an entry's role or scope makes a new assignment."""
    key = f"{role.what.lower()}\n{role.scope.strip().rstrip('/').lower()}"
    return f"{owner}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def desired_workload(spec: WorkloadIdentitySpec, *, name: str) -> DesiredWorkload:
    """Every part's spec, with each default the API server would fill written out, so that what the API
    server stores compares equal to what is desired; `InvalidSpecError` says what to fix."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpecError(f"metadata.name: at most {MAX_NAME_LENGTH} characters for a WorkloadIdentity")
    account = spec.service_account_name.strip()
    if not _DNS_SUBDOMAIN.match(account):
        raise InvalidSpecError(
            f"spec.serviceAccountName {account!r} is not a ServiceAccount name of this namespace "
            "(lowercase letters, digits, '-' and '.')"
        )
    if (spec.identity is None) == (spec.identity_ref is None):
        raise InvalidSpecError(
            "spec: set exactly one of identity (a new identity this object owns) or identityRef (an "
            "existing UserAssignedIdentity of this namespace)"
        )
    parts: list[Part] = []
    if spec.identity is not None:
        identity_name = name
        # As written: the fields the user set, so what the API server stores compares equal.
        identity_spec = spec.identity.model_dump(by_alias=True, exclude_unset=True)
        parts.append(
            Part(
                kind=constants.USER_ASSIGNED_IDENTITY,
                name=identity_name,
                spec={**identity_spec, "deletionPolicy": spec.deletion_policy},
                describe="the identity",
            )
        )
    else:
        assert spec.identity_ref is not None
        identity_name = spec.identity_ref.name
    parts.append(
        Part(
            kind=constants.FEDERATED_IDENTITY_CREDENTIAL,
            name=name,
            spec={
                "identityRef": {"name": identity_name},
                "serviceAccountRef": {"name": account},
                "audiences": [DEFAULT_AUDIENCE],
                "deletionPolicy": spec.deletion_policy,
            },
            describe=f"trust of ServiceAccount {account}",
        )
    )
    seen: dict[str, int] = {}
    for index, role in enumerate(spec.roles):
        if (role.role is None) == (role.role_definition_id is None):
            raise InvalidSpecError(f"spec.roles[{index}]: set exactly one of role or roleDefinitionId")
        part_name = role_part_name(name, role)
        if part_name in seen:
            raise InvalidSpecError(
                f"spec.roles[{index}] grants the same role at the same scope as spec.roles[{seen[part_name]}]"
            )
        seen[part_name] = index
        role_spec: dict[str, Any] = {
            "principal": {
                "identityRef": {"kind": constants.USER_ASSIGNED_IDENTITY.kind, "name": identity_name}
            },
            "scope": role.scope.strip(),
            "deletionPolicy": spec.deletion_policy,
        }
        if role.role is not None:
            role_spec["role"] = role.role.strip()
        else:
            role_spec["roleDefinitionId"] = (role.role_definition_id or "").strip()
        if role.description is not None:
            role_spec["description"] = role.description
        parts.append(
            Part(
                kind=constants.ROLE_ASSIGNMENT,
                name=part_name,
                spec=role_spec,
                describe=f"{role.what} at {role.scope.strip()}",
            )
        )
    return DesiredWorkload(
        service_account=account,
        identity_name=identity_name,
        owns_identity=spec.identity is not None,
        parts=tuple(parts),
        deletion_policy=spec.deletion_policy,
    )
