"""An in-memory `ResourcePort`: resources with identity blocks, merged the way Azure merges a PATCH.

A PATCH sets the identity type; the user-assigned map is merged (`null` detaches) when the type keeps
`UserAssigned` and cleared when it does not; a system-assigned principal is created when the type gains
`SystemAssigned` and gone when it loses it. Reads yield to the event loop, so concurrent reconciles
interleave between their GET and their PATCH as they would against Azure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from azure_identity_operator.arm import ids
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.resources import (
    IDENTITY_NOT_SUPPORTED,
    AttachedIdentity,
    IdentityLocks,
    IdentityPatch,
    Resource,
    ResourceIdentity,
    identity_type,
    parse_identity_type,
)

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
APP = f"{RG}/providers/Microsoft.Web/sites/app1"
SLOT = f"{APP}/slots/staging"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/net1"


def uai(name: str) -> str:
    return f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


@dataclasses.dataclass
class _Stored:
    resource_id: str
    type: str
    principal_id: str | None = None
    user_assigned: list[str] = dataclasses.field(default_factory=list)
    attached_principals: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """The principal each user-assigned identity had when it was attached (lower-cased ID → principal)."""


class FakeResourcePort:
    identity_types = ("Microsoft.Compute/virtualMachines", "Microsoft.Web/sites", "Microsoft.Web/sites/slots")

    def __init__(self, *, lock: bool = True) -> None:
        self._resources: dict[str, _Stored] = {}
        self._locks = IdentityLocks()
        self._use_locks = lock
        self.writes: list[tuple[str, IdentityPatch]] = []
        self.reads: list[str] = []
        self.fail_next_patch: ArmError | None = None
        self.identity_principals: dict[str, str] = {}
        """Current principal of each user-assigned identity (lower-cased ID); re-creating one changes it."""

    # Behind the operator's back
    def add(self, resource_id: str, *, system: bool = False, user: tuple[str, ...] = ()) -> None:
        parsed = ids.parse_resource_id(resource_id)
        stored = _Stored(resource_id, parsed.resource_type, user_assigned=list(user))
        if system:
            stored.principal_id = str(uuid.uuid4())
        self._resources[resource_id.lower()] = stored

    def delete(self, resource_id: str) -> None:
        self._resources.pop(resource_id.lower(), None)

    def set_identity(self, resource_id: str, *, system: bool, user: tuple[str, ...]) -> None:
        stored = self._resources[resource_id.lower()]
        if system and not stored.principal_id:
            stored.principal_id = str(uuid.uuid4())
        if not system:
            stored.principal_id = None
        stored.user_assigned = list(user)

    def state(self, resource_id: str) -> Resource | None:
        stored = self._resources.get(resource_id.lower())
        return self._render(stored) if stored else None

    # ResourcePort
    def identity_lock(self, resource_id: str) -> asyncio.Lock:
        if self._use_locks:
            return self._locks.lock(resource_id)
        return asyncio.Lock()  # a fresh lock each time: no serialization at all

    async def get_resource(self, resource_id: str) -> Resource | None:
        self.reads.append(resource_id)
        await asyncio.sleep(0)
        parsed = ids.parse_resource_id(resource_id)
        if parsed.namespace not in ("Microsoft.Compute", "Microsoft.Web", "Microsoft.Network"):
            raise ArmError(status=404, code=IDENTITY_NOT_SUPPORTED, message=f"no provider {parsed.namespace}")
        stored = self._resources.get(resource_id.lower())
        return self._render(stored) if stored else None

    async def patch_identity(self, resource: Resource, patch: IdentityPatch) -> Resource:
        self.writes.append((resource.id, patch))
        await asyncio.sleep(0)
        if self.fail_next_patch is not None:
            error, self.fail_next_patch = self.fail_next_patch, None
            raise error
        stored = self._resources.get(resource.id.lower())
        if stored is None:
            raise ArmError(status=404, code="ResourceNotFound", message=f"{resource.id} not found")
        if stored.type not in self.identity_types:
            raise ArmError(status=400, code=IDENTITY_NOT_SUPPORTED, message=f"{stored.type} has no identity")
        system, user = parse_identity_type(patch.type)
        if system and not stored.principal_id:
            stored.principal_id = str(uuid.uuid4())
        if not system:
            stored.principal_id = None
        if not user:
            if any(patch.user_assigned.values()):
                raise ArmError(
                    status=400, code="InvalidParameter", message="user identities need UserAssigned"
                )
            stored.user_assigned = []
        else:
            for identity_id, attach in patch.user_assigned.items():
                stored.user_assigned = [i for i in stored.user_assigned if not ids.same_id(i, identity_id)]
                if attach:
                    stored.user_assigned.append(identity_id)
                    stored.attached_principals[identity_id.lower()] = self.identity_principals.get(
                        identity_id.lower()
                    )
            if not stored.user_assigned:
                raise ArmError(status=400, code="InvalidParameter", message="UserAssigned needs identities")
        return self._render(stored)

    def _render(self, stored: _Stored) -> Resource:
        parsed = ids.parse_resource_id(stored.resource_id)
        system = stored.principal_id is not None
        return Resource(
            id=stored.resource_id,
            name=parsed.name,
            type=stored.type,
            identity=ResourceIdentity(
                system_assigned=system,
                principal_id=stored.principal_id,
                tenant_id=TENANT_ID if system else None,
                user_assigned=tuple(
                    AttachedIdentity(id=i, principal_id=stored.attached_principals.get(i.lower()))
                    for i in stored.user_assigned
                ),
                type_spelling=identity_type(system_assigned=system, user_assigned=bool(stored.user_assigned)),
            ),
        )
