"""What dependants need to know about an identity they reference, as plain data.

Handlers fill it from kopf's in-memory index of identity objects (no API call per lookup); reconcilers
receive it ready-made and never look anything up themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from azure_identity_operator.status import conditions


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrincipalSnapshot:
    """An identity object as last seen: whether it is Ready and the Azure IDs its status reports."""

    kind: str
    namespace: str
    name: str
    ready: bool
    deleting: bool
    principal_id: str | None
    client_id: str | None
    tenant_id: str | None
    resource_id: str | None

    @classmethod
    def from_body(cls, kind: str, body: Mapping[str, Any]) -> PrincipalSnapshot:
        metadata = body.get("metadata") or {}
        status = body.get("status") or {}
        return cls(
            kind=kind,
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            ready=conditions.is_ready(status),
            deleting=metadata.get("deletionTimestamp") is not None,
            principal_id=status.get("principalId"),
            client_id=status.get("clientId"),
            tenant_id=status.get("tenantId"),
            resource_id=status.get("id") or status.get("resourceId"),
        )

    @property
    def usable_principal(self) -> str:
        """The principal dependants should use now, or '' while there is none they may use."""
        if self.ready and not self.deleting and self.principal_id:
            return self.principal_id
        return ""
