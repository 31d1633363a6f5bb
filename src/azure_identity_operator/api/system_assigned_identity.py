"""`SystemAssignedIdentity`: the system-assigned managed identity of one existing Azure resource.

The object manages only the resource's identity, never the resource itself: `spec.resourceId` names a VM,
an App Service app or a deployment slot (`.../sites/<app>/slots/<slot>`) someone else owns. The CRD's
pattern rejects most malformed IDs at admission; the reconciler checks the rest with the ARM ID rules
(`reconcilers.system_assigned_identities.parse_spec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic

DeletionPolicy = Literal["Delete", "Orphan"]


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; the message says which field is wrong and why."""


class SystemAssignedIdentitySpec(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    resource_id: str = pydantic.Field(alias="resourceId")
    deletion_policy: DeletionPolicy = pydantic.Field(default="Delete", alias="deletionPolicy")

    @pydantic.field_validator("resource_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @classmethod
    def from_body(cls, spec: Mapping[str, Any]) -> SystemAssignedIdentitySpec:
        try:
            return cls.model_validate(dict(spec))
        except pydantic.ValidationError as error:
            raise InvalidSpecError(_explain(error)) from None


def _explain(error: pydantic.ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "spec"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"spec.{field}: {message}")
    return "; ".join(problems)
