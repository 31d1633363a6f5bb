"""The resource port: the `identity` block of Azure resources someone else owns, in plain data.

The operator manages only the identity part of a VM, an App Service app or slot: it reads the resource,
and PATCHes nothing but its `identity` block. Reconcilers depend on the `ResourcePort` protocol;
`arm.sdk.resources` implements it with the generic async `ResourceManagementClient`, and unit tests
implement it in memory.

Writes to one resource's identity block are serialized inside the operator (`ResourcePort.identity_lock`),
shared by system-assigned identities and attachments of user-assigned ones: each write is computed from a
fresh GET under that lock, so concurrent changes in this process never overwrite each other. Across
processes (a second operator, a human with the portal) the adapter sends `If-Match` with the resource's
etag when the resource provider returns one; Compute and Web mostly do not, so two operators writing
the same resource at the same instant can still race (see docs/usage.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Protocol

from azure_identity_operator.arm import ids
from azure_identity_operator.locks import KeyedLocks, arm_id_key

SYSTEM_ASSIGNED = "SystemAssigned"
USER_ASSIGNED = "UserAssigned"
NO_IDENTITY = "None"
COMPUTE_AND_WEB_COMBINED = "SystemAssigned, UserAssigned"
"""How Compute and Web spell both kinds; newer resource providers write it without the space."""

IDENTITY_NOT_SUPPORTED = "ManagedIdentityNotSupported"
"""`ArmError.code` the adapter raises when a resource type cannot carry managed identities: the provider
does not know the type, or the resource provider accepted an identity block and ignored it."""

UNSUPPORTED_CODES = frozenset(
    {
        IDENTITY_NOT_SUPPORTED,
        "InvalidResourceType",
        "InvalidResourceNamespace",
        "NoRegisteredProviderFound",
        "InvalidIdentityType",
    }
)
"""Azure error codes that mean "this resource cannot have a managed identity"."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttachedIdentity:
    """One user-assigned identity attached to a resource, as the resource reports it."""

    id: str
    principal_id: str | None = None
    client_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceIdentity:
    """A resource's `identity` block. `type_spelling` keeps how this resource provider spells the type."""

    system_assigned: bool = False
    principal_id: str | None = None
    tenant_id: str | None = None
    user_assigned: tuple[AttachedIdentity, ...] = ()
    type_spelling: str = NO_IDENTITY

    def attached(self, identity_id: str) -> AttachedIdentity | None:
        return next((a for a in self.user_assigned if ids.same_id(a.id, identity_id)), None)

    def others_than(self, identity_id: str) -> tuple[AttachedIdentity, ...]:
        return tuple(a for a in self.user_assigned if not ids.same_id(a.id, identity_id))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resource:
    """An Azure resource that may carry managed identities, reduced to what the operator needs."""

    id: str
    name: str
    type: str
    identity: ResourceIdentity
    etag: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentityPatch:
    """The body of one PATCH of a resource's identity block.

    `user_assigned` holds only the identities this write changes: `True` attaches, `False` detaches
    (sent as `null`); identities not named are left to the resource provider's merge, so a write never
    re-sends, and thereby resurrects, someone else's attachment.
    """

    type: str
    user_assigned: Mapping[str, bool] = dataclasses.field(default_factory=dict)


def identity_type(*, system_assigned: bool, user_assigned: bool, like: str = COMPUTE_AND_WEB_COMBINED) -> str:
    """The `identity.type` for the wanted kinds, spelling the combined type the way `like` does."""
    if system_assigned and user_assigned:
        return like if "," in like else COMPUTE_AND_WEB_COMBINED
    if system_assigned:
        return SYSTEM_ASSIGNED
    if user_assigned:
        return USER_ASSIGNED
    return NO_IDENTITY


def parse_identity_type(value: str | None) -> tuple[bool, bool]:
    """(system-assigned, user-assigned) from an `identity.type` in any spelling."""
    parts = {part.strip().lower() for part in (value or "").split(",") if part.strip()}
    return "systemassigned" in parts, "userassigned" in parts


class IdentityLocks(KeyedLocks):
    """One `asyncio.Lock` per resource ID (compared as ARM compares IDs), alive while it is in use."""

    def __init__(self) -> None:
        super().__init__(arm_id_key)


class ResourcePort(Protocol):
    def identity_lock(self, resource_id: str) -> asyncio.Lock:
        """The lock every read-modify-write of `resource_id`'s identity block holds."""
        ...

    async def get_resource(self, resource_id: str) -> Resource | None:
        """The resource, or `None` when it (or its resource group) does not exist. Raises `ArmError` with a
        code in `UNSUPPORTED_CODES` when its type cannot carry managed identities."""
        ...

    async def patch_identity(self, resource: Resource, patch: IdentityPatch) -> Resource:
        """PATCH only the identity block of `resource` (as last read) and return the resource after it."""
        ...
