"""`SystemAssignedIdentity`: the system-assigned managed identity of one existing Azure resource.

The object manages only the resource's identity, never the resource itself: `spec.resourceId` names a VM,
an App Service app or a deployment slot (`.../sites/<app>/slots/<slot>`) someone else owns. The CRD's
pattern rejects most malformed IDs at admission; the reconciler checks the rest with the ARM ID rules
(`reconcilers.system_assigned_identities.parse_spec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from azure_identity_operator.api.common import ApiModel, DeletionPolicy, parse_model
from azure_identity_operator.api.common import InvalidSpecError as InvalidSpecError


class SystemAssignedIdentitySpec(ApiModel):
    resource_id: str
    deletion_policy: DeletionPolicy = "Delete"

    @pydantic.field_validator("resource_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @classmethod
    def from_body(cls, spec: Mapping[str, Any] | None) -> SystemAssignedIdentitySpec:
        return parse_model(cls, spec)
