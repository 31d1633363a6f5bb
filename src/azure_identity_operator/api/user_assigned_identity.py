"""The `UserAssignedIdentity` custom resource: typed models of its spec, and its spec resolved with defaults.

The CRD's schema and CEL rules reject most bad input at admission; `parse_spec` checks what a schema cannot
(or what an older CRD let through) and raises `InvalidSpecError` with a message the Ready condition shows.
Azure-specific rules (name syntax, resource group names) are checked by the reconciler, which owns the
ARM vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Self

import pydantic

from azure_identity_operator.api.common import ApiModel, DeletionPolicy, parse_model
from azure_identity_operator.api.common import InvalidSpecError as InvalidSpecError


class LocalObjectReference(ApiModel):
    name: str = pydantic.Field(min_length=1)


ConfigMapKey = Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
"""A key Kubernetes accepts in a ConfigMap's data (`IsConfigMapKey`; `.` and `..` prefixes are checked
by `ExportedKeys`)."""

DEFAULT_EXPORTED_KEYS: Mapping[str, str] = {
    "clientId": "clientId",
    "principalId": "principalId",
    "tenantId": "tenantId",
    "resourceId": "resourceId",
}
"""ID → ConfigMap key when `spec.exportTo.configMap.keys` is absent: every ID under its own name."""


class ExportedKeys(ApiModel):
    """Which of the identity's IDs the ConfigMap receives, each under the key given; an ID not named is not
    exported."""

    client_id: ConfigMapKey | None = None
    principal_id: ConfigMapKey | None = None
    tenant_id: ConfigMapKey | None = None
    resource_id: ConfigMapKey | None = None

    @pydantic.model_validator(mode="after")
    def _each_id_has_a_key_of_its_own(self) -> Self:
        named = self.by_id()
        if not named:
            raise ValueError("name at least one of clientId, principalId, tenantId, resourceId")
        ids_by_key: dict[str, list[str]] = {}
        for id_name, key in named.items():
            if key == "." or key.startswith(".."):
                raise ValueError(f"{id_name}: {key!r} is not a ConfigMap key: it is '.' or starts with '..'")
            ids_by_key.setdefault(key, []).append(id_name)
        shared = [
            f"{', '.join(id_names[:-1])} and {id_names[-1]} are exported under the same key {key!r}"
            for key, id_names in ids_by_key.items()
            if len(id_names) > 1
        ]
        if shared:
            raise ValueError(f"{'; '.join(shared)}: each ID needs a key of its own")
        return self

    def by_id(self) -> dict[str, str]:
        """ID (`clientId`, `principalId`, `tenantId`, `resourceId`) → key, for the IDs named."""
        named = {
            "clientId": self.client_id,
            "principalId": self.principal_id,
            "tenantId": self.tenant_id,
            "resourceId": self.resource_id,
        }
        return {id_name: key for id_name, key in named.items() if key is not None}


class ConfigMapExport(LocalObjectReference):
    keys: ExportedKeys | None = None
    """Default: `DEFAULT_EXPORTED_KEYS`."""

    def exported_keys(self) -> Mapping[str, str]:
        """ID → the key it is exported under."""
        return self.keys.by_id() if self.keys is not None else DEFAULT_EXPORTED_KEYS


class ExportTo(ApiModel):
    config_map: ConfigMapExport | None = None


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
