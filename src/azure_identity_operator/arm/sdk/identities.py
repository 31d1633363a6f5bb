"""`IdentityPort` on `azure.mgmt.msi.aio`: user-assigned identities and federated identity credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import azure.mgmt.msi.models as models
from azure.mgmt.msi.aio import ManagedServiceIdentityClient

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import FederatedCredential, Identity, IdentityRef
from azure_identity_operator.arm.sdk.session import AzureSession, translated_errors

_CONTAINER_GONE = frozenset({"ResourceGroupNotFound", "SubscriptionNotFound"})
"""404 codes about where the resource would live: the caller must report those, not create into them."""


def _absent(error: ArmError) -> bool:
    """A 404 for the resource itself. Its code is not part of the API contract (ARM's front door answers
    `ResourceNotFound`; what a provider answers for a missing child resource is its own choice), so any
    404 but a missing resource group or subscription means "no such resource"."""
    return error.status == 404 and error.code not in _CONTAINER_GONE


class SdkIdentityPort:
    def __init__(self, session: AzureSession) -> None:
        self._session = session

    def _client(self, ref: IdentityRef) -> ManagedServiceIdentityClient:
        return self._session.client(ManagedServiceIdentityClient, ref.subscription_id)

    async def get_identity(self, ref: IdentityRef) -> Identity | None:
        try:
            async with translated_errors():
                found = await self._client(ref).user_assigned_identities.get(ref.resource_group, ref.name)
        except ArmError as error:
            if _absent(error):
                return None
            raise
        return _identity(found)

    async def create_or_update_identity(
        self, ref: IdentityRef, *, location: str, tags: Mapping[str, str]
    ) -> Identity:
        async with translated_errors():
            created = await self._client(ref).user_assigned_identities.create_or_update(
                ref.resource_group, ref.name, models.Identity(location=location, tags=dict(tags))
            )
        return _identity(created)

    async def update_identity_tags(self, ref: IdentityRef, *, tags: Mapping[str, str]) -> Identity:
        async with translated_errors():
            updated = await self._client(ref).user_assigned_identities.update(
                ref.resource_group, ref.name, models.IdentityUpdate(tags=dict(tags))
            )
        return _identity(updated)

    async def delete_identity(self, ref: IdentityRef) -> None:
        async with translated_errors():
            await self._client(ref).user_assigned_identities.delete(ref.resource_group, ref.name)

    async def list_identities(self, subscription_id: str, resource_group: str) -> list[Identity]:
        client = self._session.client(ManagedServiceIdentityClient, subscription_id)
        async with translated_errors():
            pages = client.user_assigned_identities.list_by_resource_group(resource_group)
            return [_identity(item) async for item in pages]

    async def list_federated_credentials(self, ref: IdentityRef) -> list[FederatedCredential]:
        async with translated_errors():
            pages = self._client(ref).federated_identity_credentials.list(ref.resource_group, ref.name)
            return [_federated_credential(item) async for item in pages]

    async def get_federated_credential(self, ref: IdentityRef, name: str) -> FederatedCredential | None:
        try:
            async with translated_errors():
                found = await self._client(ref).federated_identity_credentials.get(
                    ref.resource_group, ref.name, name
                )
        except ArmError as error:
            if _absent(error):
                return None
            raise
        return _federated_credential(found)

    async def create_or_update_federated_credential(
        self, ref: IdentityRef, *, name: str, issuer: str, subject: str, audiences: Sequence[str]
    ) -> FederatedCredential:
        body = models.FederatedIdentityCredential(issuer=issuer, subject=subject, audiences=list(audiences))
        async with translated_errors():
            written = await self._client(ref).federated_identity_credentials.create_or_update(
                ref.resource_group, ref.name, name, body
            )
        return _federated_credential(written)

    async def delete_federated_credential(self, ref: IdentityRef, name: str) -> None:
        async with translated_errors():
            await self._client(ref).federated_identity_credentials.delete(ref.resource_group, ref.name, name)


def _identity(resource: Any) -> Identity:
    return Identity(
        id=resource.id,
        name=resource.name,
        location=resource.location,
        tags=dict(resource.tags or {}),
        principal_id=resource.principal_id,
        client_id=resource.client_id,
        tenant_id=resource.tenant_id,
    )


def _federated_credential(resource: Any) -> FederatedCredential:
    return FederatedCredential(
        id=resource.id or "",
        name=resource.name,
        issuer=resource.issuer,
        subject=resource.subject,
        audiences=tuple(resource.audiences or ()),
    )
