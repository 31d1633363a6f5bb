"""In-memory fakes of the operator's Azure ports, for reconciler unit tests with plain data.

Each fake keeps state the way Azure would (IDs stable across re-PUTs, new IDs after a re-create, limits
enforced) and records every write, so a test can assert what a reconcile wrote and that a second run
writes nothing. `fail_next` makes the next call of a method raise a given `ArmError`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence

from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import FederatedCredential, Identity, IdentityRef

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def not_found(what: str) -> ArmError:
    return ArmError(status=404, code="ResourceNotFound", message=f"{what} was not found.")


class RecordingFake:
    """Write log and failure injection shared by the fakes of every port."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        """(method, target) of every write, in order."""
        self.reads: list[tuple[str, str]] = []
        self._failures: dict[str, list[ArmError]] = {}

    def fail_next(self, method: str, error: ArmError, *, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def _enter(self, method: str, target: str, *, write: bool) -> None:
        (self.writes if write else self.reads).append((method, target))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def writes_of(self, method: str) -> list[str]:
        return [target for name, target in self.writes if name == method]


@dataclasses.dataclass
class _StoredIdentity:
    identity: Identity
    credentials: dict[str, FederatedCredential] = dataclasses.field(default_factory=dict)


class FakeIdentityPort(RecordingFake):
    """`IdentityPort` in memory. Resource groups must exist (`add_resource_group`) unless `any_group`."""

    max_credentials = 20

    def __init__(self, *, any_group: bool = True) -> None:
        super().__init__()
        self._identities: dict[str, _StoredIdentity] = {}
        self._groups: set[tuple[str, str]] = set()
        self._any_group = any_group

    def add_resource_group(self, subscription_id: str, name: str) -> None:
        self._groups.add((subscription_id.lower(), name.lower()))

    def _check_group(self, ref: IdentityRef) -> None:
        if (
            not self._any_group
            and (ref.subscription_id.lower(), ref.resource_group.lower()) not in self._groups
        ):
            raise ArmError(
                status=404,
                code="ResourceGroupNotFound",
                message=f"Resource group '{ref.resource_group}' could not be found.",
            )

    # Behind the operator's back, as a test would do with the Azure portal.
    def put_identity_directly(self, ref: IdentityRef, *, location: str, tags: Mapping[str, str]) -> Identity:
        identity = Identity(
            id=ref.id,
            name=ref.name,
            location=location,
            tags=dict(tags),
            principal_id=str(uuid.uuid4()),
            client_id=str(uuid.uuid4()),
            tenant_id=TENANT_ID,
        )
        self._identities[ref.id.lower()] = _StoredIdentity(identity)
        return identity

    def delete_identity_directly(self, ref: IdentityRef) -> None:
        self._identities.pop(ref.id.lower(), None)

    def identity(self, ref: IdentityRef) -> Identity | None:
        stored = self._identities.get(ref.id.lower())
        return stored.identity if stored else None

    def credentials(self, ref: IdentityRef) -> list[FederatedCredential]:
        stored = self._identities.get(ref.id.lower())
        return list(stored.credentials.values()) if stored else []

    # IdentityPort
    async def get_identity(self, ref: IdentityRef) -> Identity | None:
        self._enter("get_identity", ref.id, write=False)
        self._check_group(ref)
        return self.identity(ref)

    async def create_or_update_identity(
        self, ref: IdentityRef, *, location: str, tags: Mapping[str, str]
    ) -> Identity:
        self._enter("create_or_update_identity", ref.id, write=True)
        self._check_group(ref)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            return self.put_identity_directly(ref, location=location, tags=tags)
        if stored.identity.location != location:
            raise ArmError(status=409, code="InvalidResourceLocation", message="location cannot change")
        stored.identity = dataclasses.replace(stored.identity, tags=dict(tags))
        return stored.identity

    async def update_identity_tags(self, ref: IdentityRef, *, tags: Mapping[str, str]) -> Identity:
        self._enter("update_identity_tags", ref.id, write=True)
        self._check_group(ref)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            raise not_found(ref.id)
        stored.identity = dataclasses.replace(stored.identity, tags=dict(tags))
        return stored.identity

    async def delete_identity(self, ref: IdentityRef) -> None:
        self._enter("delete_identity", ref.id, write=True)
        self._check_group(ref)
        self._identities.pop(ref.id.lower(), None)

    async def list_identities(self, subscription_id: str, resource_group: str) -> list[Identity]:
        self._enter("list_identities", f"{subscription_id}/{resource_group}", write=False)
        self._check_group(IdentityRef(subscription_id, resource_group, "-"))
        prefix = f"/subscriptions/{subscription_id}/resourcegroups/{resource_group}/".lower()
        return [s.identity for key, s in self._identities.items() if key.startswith(prefix)]

    async def list_federated_credentials(self, ref: IdentityRef) -> list[FederatedCredential]:
        self._enter("list_federated_credentials", ref.id, write=False)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            raise not_found(ref.id)
        return list(stored.credentials.values())

    async def get_federated_credential(self, ref: IdentityRef, name: str) -> FederatedCredential | None:
        self._enter("get_federated_credential", f"{ref.id}/{name}", write=False)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            raise not_found(ref.id)
        return stored.credentials.get(name.lower())

    async def create_or_update_federated_credential(
        self, ref: IdentityRef, *, name: str, issuer: str, subject: str, audiences: Sequence[str]
    ) -> FederatedCredential:
        self._enter("create_or_update_federated_credential", f"{ref.id}/{name}", write=True)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            raise not_found(ref.id)
        others = {key: c for key, c in stored.credentials.items() if key != name.lower()}
        if any(c.issuer == issuer and c.subject == subject for c in others.values()):
            raise ArmError(
                status=400,
                code="BadRequest",
                message="Issuer and subject combination already exists for this Managed Identity.",
            )
        if name.lower() not in stored.credentials and len(others) >= self.max_credentials:
            raise ArmError(status=400, code="BadRequest", message="Too many credentials")
        credential = FederatedCredential(
            id=f"{ref.id}/federatedIdentityCredentials/{name}",
            name=name,
            issuer=issuer,
            subject=subject,
            audiences=tuple(audiences),
        )
        stored.credentials[name.lower()] = credential
        return credential

    async def delete_federated_credential(self, ref: IdentityRef, name: str) -> None:
        self._enter("delete_federated_credential", f"{ref.id}/{name}", write=True)
        stored = self._identities.get(ref.id.lower())
        if stored is None:
            raise not_found(ref.id)
        stored.credentials.pop(name.lower(), None)
