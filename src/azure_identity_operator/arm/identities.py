"""The identity port: user-assigned identities and their federated credentials, in plain data.

Reconcilers depend on the `IdentityPort` protocol; `arm.sdk.identities` implements it with the async
`azure-mgmt-msi` client, and unit tests implement it in memory. Every method raises `arm.errors.ArmError`
on failure; "absent" is `None` (get) or a no-op (delete), never an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from azure_identity_operator.arm import ids


@dataclasses.dataclass(frozen=True)
class IdentityRef:
    """Where a user-assigned identity lives."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return ids.user_assigned_identity_id(self.subscription_id, self.resource_group, self.name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Identity:
    id: str
    name: str
    location: str
    tags: Mapping[str, str]
    principal_id: str
    client_id: str
    tenant_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    id: str = ""


class IdentityPort(Protocol):
    async def get_identity(self, ref: IdentityRef) -> Identity | None: ...

    async def create_or_update_identity(
        self, ref: IdentityRef, *, location: str, tags: Mapping[str, str]
    ) -> Identity: ...

    async def update_identity_tags(self, ref: IdentityRef, *, tags: Mapping[str, str]) -> Identity: ...

    async def delete_identity(self, ref: IdentityRef) -> None: ...

    async def list_identities(self, subscription_id: str, resource_group: str) -> list[Identity]:
        """Every user-assigned identity in the resource group (all pages): one request per page, where a
        GET per identity would cost one each."""
        ...

    async def list_federated_credentials(self, ref: IdentityRef) -> list[FederatedCredential]: ...

    async def get_federated_credential(self, ref: IdentityRef, name: str) -> FederatedCredential | None: ...

    async def create_or_update_federated_credential(
        self, ref: IdentityRef, *, name: str, issuer: str, subject: str, audiences: Sequence[str]
    ) -> FederatedCredential: ...

    async def delete_federated_credential(self, ref: IdentityRef, name: str) -> None: ...
