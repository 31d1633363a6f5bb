"""The `UserAssignedIdentity` custom resource: typed models of its spec, and its spec resolved with defaults.

The CRD's schema and CEL rules reject most bad input at admission; `parse_spec` checks what a schema cannot
(or what an older CRD let through) and raises `InvalidSpecError` with a message the Ready condition shows.
Azure-specific rules (name syntax, resource group names) are checked by the reconciler, which owns the
ARM vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pydantic

from azure_identity_operator.api.common import ApiModel, DeletionPolicy, parse_model
from azure_identity_operator.api.common import InvalidSpecError as InvalidSpecError


class LocalObjectReference(ApiModel):
    name: str = pydantic.Field(min_length=1)


class ExportTo(ApiModel):
    config_map: LocalObjectReference | None = None


class UserAssignedIdentitySpec(ApiModel):
    resource_group: str = pydantic.Field(min_length=1)
    location: str = pydantic.Field(min_length=1)
    azure_name: str | None = None
    subscription_id: str | None = None
    tags: dict[str, str] = pydantic.Field(default_factory=dict)
    deletion_policy: DeletionPolicy = "Delete"
    export_to: ExportTo | None = None
    attach_to: list[str] = pydantic.Field(default_factory=list)
    """ARM IDs of resources the identity is attached to (see `reconcilers.attachments`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DesiredIdentity:
    """The spec with every default filled in: exactly what Azure should hold."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: Mapping[str, str]


def parse_spec(spec: Mapping[str, Any] | None) -> UserAssignedIdentitySpec:
    return parse_model(UserAssignedIdentitySpec, spec)


def desired_identity(
    spec: UserAssignedIdentitySpec, *, object_name: str, default_subscription_id: str
) -> DesiredIdentity:
    return DesiredIdentity(
        subscription_id=(spec.subscription_id or default_subscription_id).strip(),
        resource_group=spec.resource_group.strip(),
        name=(spec.azure_name or object_name).strip(),
        location=spec.location.strip(),
        tags=dict(spec.tags),
    )
