"""The emulator's in-memory world: the directory of principals, resource groups, resources, federated
identity credentials, custom role definitions and role assignments; optionally saved to and loaded from
`state.json`.

Records are frozen dataclasses replaced whole on change. Maps are keyed by the lower-cased resource id
because Azure looks names up case-insensitively while echoing the casing the resource was created with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from azure_emulator import catalog


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclasses.dataclass(frozen=True)
class Principal:
    """A directory object that can hold role assignments and (for applications) obtain tokens."""

    object_id: str
    app_id: str
    principal_type: str  # "ServicePrincipal" | "User" | "Group"
    display_name: str
    created_at: float
    client_secret: str | None = None
    # The resource that owns a managed identity's principal (UAI id, or the resource with the
    # system-assigned identity); None for ordinary service principals.
    owner_resource_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str]
    managed_by: str | None = None

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


@dataclasses.dataclass(frozen=True)
class Resource:
    """A tracked resource (a UAI, a VM, a site, a slot, a vault...).

    `identity` holds the stored identity block: `type` in the RP's spelling, `principalId`/`tenantId` of
    the system-assigned principal, and `userAssignedIdentities` mapping each attached UAI id to its
    `principalId`/`clientId` captured when it was attached.
    """

    id: str
    type: str
    name: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    identity: dict[str, Any] | None = None
    # Other top-level fields the caller sent (kind, sku, zones, plan...), echoed back.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FederatedCredential:
    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class CustomRole:
    """A custom role definition: one per tenant under its GUID, usable at and below its assignable scopes."""

    guid: str  # lower-case
    role_name: str
    description: str | None
    permissions: tuple[catalog.Permission, ...]
    assignable_scopes: tuple[str, ...]  # the caller's casing
    created_on: str
    updated_on: str
    created_by: str | None
    updated_by: str | None
    role_type: str = "CustomRole"


@dataclasses.dataclass(frozen=True)
class RoleAssignment:
    id: str
    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str
    description: str | None
    condition: str | None
    condition_version: str | None
    delegated_managed_identity_resource_id: str | None
    created_on: str
    updated_on: str
    created_by: str | None
    updated_by: str | None


@dataclasses.dataclass
class World:
    """Everything the emulator knows. Mutated only by the ARM and control handlers, on the event loop."""

    tenant_id: str
    subscription_id: str
    bootstrap_client_id: str
    principals: dict[str, Principal] = dataclasses.field(default_factory=dict)  # by object id
    resource_groups: dict[str, ResourceGroup] = dataclasses.field(default_factory=dict)  # by lower id
    resources: dict[str, Resource] = dataclasses.field(default_factory=dict)  # by lower id
    # Federated credentials by lower identity id, then by lower credential name.
    federated_credentials: dict[str, dict[str, FederatedCredential]] = dataclasses.field(default_factory=dict)
    role_assignments: dict[str, RoleAssignment] = dataclasses.field(default_factory=dict)  # by lower id
    custom_roles: dict[str, CustomRole] = dataclasses.field(default_factory=dict)  # by lower GUID

    # --- directory -----------------------------------------------------------------------------------

    def principal_by_app_id(self, app_id: str) -> Principal | None:
        lowered = app_id.lower()
        return next((p for p in self.principals.values() if p.app_id.lower() == lowered), None)

    def add_principal(
        self,
        *,
        display_name: str,
        principal_type: str = "ServicePrincipal",
        client_secret: str | None = None,
        owner_resource_id: str | None = None,
        now: float | None = None,
    ) -> Principal:
        principal = Principal(
            object_id=new_guid(),
            app_id=new_guid(),
            principal_type=principal_type,
            display_name=display_name,
            created_at=time.time() if now is None else now,
            client_secret=client_secret,
            owner_resource_id=owner_resource_id,
        )
        self.principals[principal.object_id] = principal
        return principal

    def bootstrap_principal(self) -> Principal:
        principal = self.principal_by_app_id(self.bootstrap_client_id)
        assert principal is not None, "the bootstrap service principal is created with the world"
        return principal

    # --- persistence -----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "subscription_id": self.subscription_id,
            "bootstrap_client_id": self.bootstrap_client_id,
            "principals": [dataclasses.asdict(p) for p in self.principals.values()],
            "resource_groups": [dataclasses.asdict(g) for g in self.resource_groups.values()],
            "resources": [dataclasses.asdict(r) for r in self.resources.values()],
            "federated_credentials": [
                dataclasses.asdict(c) for creds in self.federated_credentials.values() for c in creds.values()
            ],
            "role_assignments": [dataclasses.asdict(a) for a in self.role_assignments.values()],
            "custom_roles": [dataclasses.asdict(r) for r in self.custom_roles.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        world = cls(
            tenant_id=data["tenant_id"],
            subscription_id=data["subscription_id"],
            bootstrap_client_id=data["bootstrap_client_id"],
        )
        for item in data["principals"]:
            principal = Principal(**item)
            world.principals[principal.object_id] = principal
        for item in data["resource_groups"]:
            group = ResourceGroup(**item)
            world.resource_groups[group.id.lower()] = group
        for item in data["resources"]:
            resource = Resource(**item)
            world.resources[resource.id.lower()] = resource
        for item in data["federated_credentials"]:
            credential = FederatedCredential(**{**item, "audiences": tuple(item["audiences"])})
            identity_id = credential.id.rsplit("/federatedIdentityCredentials/", 1)[0].lower()
            world.federated_credentials.setdefault(identity_id, {})[credential.name.lower()] = credential
        for item in data["role_assignments"]:
            assignment = RoleAssignment(**item)
            world.role_assignments[assignment.id.lower()] = assignment
        # Worlds saved before custom roles existed have none.
        for item in data.get("custom_roles", []):
            role = CustomRole(
                **{
                    **item,
                    "permissions": tuple(
                        catalog.Permission(**{k: tuple(v) for k, v in p.items()}) for p in item["permissions"]
                    ),
                    "assignable_scopes": tuple(item["assignable_scopes"]),
                }
            )
            world.custom_roles[role.guid] = role
        return world


def new_world(*, tenant_id: str | None = None, subscription_id: str | None = None) -> World:
    """A fresh world: one subscription whose bootstrap service principal is Owner (a seeded assignment)."""
    world = World(
        tenant_id=tenant_id or new_guid(),
        subscription_id=subscription_id or new_guid(),
        bootstrap_client_id="",
    )
    bootstrap = world.add_principal(
        display_name="azure-emulator-bootstrap", client_secret=secrets.token_urlsafe(32), now=0.0
    )
    world.bootstrap_client_id = bootstrap.app_id
    scope = f"/subscriptions/{world.subscription_id}"
    name = new_guid()
    stamp = "2024-01-01T00:00:00.0000000Z"
    assignment = RoleAssignment(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name=name,
        scope=scope,
        role_definition_id=f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{catalog.OWNER_ROLE_GUID}",
        principal_id=bootstrap.object_id,
        principal_type="ServicePrincipal",
        description="Bootstrap service principal of the emulated subscription",
        condition=None,
        condition_version=None,
        delegated_managed_identity_resource_id=None,
        created_on=stamp,
        updated_on=stamp,
        created_by=None,
        updated_by=None,
    )
    world.role_assignments[assignment.id.lower()] = assignment
    return world


def save(world: World, path: Path) -> None:
    """Write the world atomically (temp file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(world.to_json(), handle)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def load(path: Path) -> World:
    return World.from_json(json.loads(path.read_text()))
