"""The `UserAssignedIdentity` custom resource: typed models of its spec, and its spec resolved with defaults.

The CRD's schema and CEL rules reject most bad input at admission; `parse_spec` checks what a schema cannot
(or what an older CRD let through) and raises `InvalidSpecError` with a message the Ready condition shows.
Azure-specific rules (name syntax, resource group names) are checked by the reconciler, which owns the
ARM vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic.alias_generators import to_camel

DeletionPolicy = Literal["Delete", "Orphan"]


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; the message names the field and what it expects."""


class ApiModel(pydantic.BaseModel):
    """camelCase aliases as in the CRD; unknown fields ignored (the API server prunes them anyway)."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


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
    try:
        return UserAssignedIdentitySpec.model_validate(dict(spec or {}))
    except pydantic.ValidationError as error:
        raise InvalidSpecError(describe_validation_error(error)) from None


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


def describe_validation_error(error: pydantic.ValidationError) -> str:
    """`spec.resourceGroup: Field required; spec.tags.team: Input should be a valid string`."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in ("spec", *item["loc"]))
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)
