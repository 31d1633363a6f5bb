"""ARM resource IDs: parsing, validation, building, comparison, and deterministic names.

ARM treats path segments and names case-insensitively but echoes the caller's casing, so IDs are compared
with `same_id` and never with `==`. Deterministic names make every write the operator issues idempotent:
a crash between an Azure write and the status write repeats the same PUT instead of creating a twin.
"""

from __future__ import annotations

import dataclasses
import re
import uuid

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_PROVIDER_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$")
_IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
_FEDERATED_CREDENTIAL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,119}$")

USER_ASSIGNED_IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"

ROLE_ASSIGNMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://identityoperator.dev/roleassignments")
"""UUIDv5 namespace of role-assignment names (see `role_assignment_name`)."""


class InvalidResourceId(ValueError):
    """The string is not an ARM ID of the expected shape; the message says what is wrong."""


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def is_valid_resource_group_name(name: str) -> bool:
    return bool(_RESOURCE_GROUP.match(name)) and not name.endswith(".")


def is_valid_identity_name(name: str) -> bool:
    """User-assigned identity names: 3-128 letters, digits, '-' or '_', starting with a letter or digit."""
    return bool(_IDENTITY_NAME.match(name))


def is_valid_federated_credential_name(name: str) -> bool:
    """Federated credential names: 3-120 letters, digits, '-' or '_', starting with a letter or digit."""
    return bool(_FEDERATED_CREDENTIAL_NAME.match(name))


@dataclasses.dataclass(frozen=True)
class ResourceId:
    """A parsed ARM ID: a subscription, a resource group, or a (possibly nested) resource in one.

    `types` and `names` run in parallel: `sites/slots` with `app/staging` is the slot `staging` of `app`.
    """

    subscription_id: str
    resource_group: str | None = None
    namespace: str | None = None
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def scope_kind(self) -> str:
        if self.resource_group is None:
            return "subscription"
        if self.namespace is None:
            return "resourceGroup"
        return "resource"

    @property
    def resource_type(self) -> str:
        """`Microsoft.Web/sites/slots` for a slot; empty for a subscription or a resource group."""
        return "/".join((self.namespace or "", *self.types)) if self.namespace else ""

    @property
    def name(self) -> str:
        """The name as ARM reports it: `app/staging` for a slot."""
        if self.names:
            return "/".join(self.names)
        return self.resource_group or self.subscription_id

    def __str__(self) -> str:
        parts = ["", "subscriptions", self.subscription_id]
        if self.resource_group is not None:
            parts += ["resourceGroups", self.resource_group]
        if self.namespace is not None:
            parts += ["providers", self.namespace]
            for type_, name in zip(self.types, self.names, strict=True):
                parts += [type_, name]
        return "/".join(parts)


def parse_resource_id(value: str) -> ResourceId:
    """Parse a subscription, resource-group or resource ID; raise `InvalidResourceId` saying why not."""
    segments = [s for s in value.strip().split("/") if s]
    if not value.startswith("/") or len(segments) < 2 or segments[0].lower() != "subscriptions":
        raise InvalidResourceId(
            f"{value!r} is not an ARM ID: it must start with /subscriptions/<subscription-id>"
        )
    subscription_id = segments[1]
    if not is_guid(subscription_id):
        raise InvalidResourceId(f"{value!r}: subscription ID {subscription_id!r} is not a GUID")
    rest = segments[2:]
    if not rest:
        return ResourceId(subscription_id)
    if rest[0].lower() != "resourcegroups" or len(rest) < 2:
        raise InvalidResourceId(f"{value!r}: expected /resourceGroups/<name> after the subscription")
    resource_group = rest[1]
    if not is_valid_resource_group_name(resource_group):
        raise InvalidResourceId(f"{value!r}: {resource_group!r} is not a valid resource group name")
    rest = rest[2:]
    if not rest:
        return ResourceId(subscription_id, resource_group)
    if rest[0].lower() != "providers" or len(rest) < 4:
        raise InvalidResourceId(
            f"{value!r}: expected /providers/<Namespace>/<type>/<name> after the resource group"
        )
    namespace = rest[1]
    if not _PROVIDER_NAMESPACE.match(namespace):
        raise InvalidResourceId(f"{value!r}: {namespace!r} is not a resource provider namespace")
    pairs = rest[2:]
    if len(pairs) % 2:
        raise InvalidResourceId(f"{value!r}: every resource type must be followed by a name")
    types = tuple(pairs[0::2])
    names = tuple(pairs[1::2])
    if any(t.lower() == "providers" for t in types):
        raise InvalidResourceId(f"{value!r}: extension resources are not supported here")
    return ResourceId(subscription_id, resource_group, namespace, types, names)


def same_id(left: str, right: str) -> bool:
    """ARM IDs compare case-insensitively and without a trailing slash."""
    return left.rstrip("/").casefold() == right.rstrip("/").casefold()


def user_assigned_identity_id(subscription_id: str, resource_group: str, name: str) -> str:
    return str(
        ResourceId(
            subscription_id, resource_group, "Microsoft.ManagedIdentity", ("userAssignedIdentities",), (name,)
        )
    )


def role_definition_guid(role_definition_id: str) -> str:
    """The GUID at the end of a role definition ID (subscription or tenant form), lower-cased."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def role_assignment_name(*, scope: str, principal_id: str, role_definition_id: str) -> str:
    """The deterministic name of the assignment granting `role_definition_id` to `principal_id` at `scope`.

    Seed: `uuid5(ROLE_ASSIGNMENT_NAMESPACE, "<scope>|<principal id>|<role definition GUID>")`,
    all lower-cased, the scope without a trailing slash. The same grant always gets the same name, so
    retries and restarts converge on one assignment, and a changed grant gets a new name (Azure forbids
    updating one in place).
    """
    seed = "|".join(
        (scope.rstrip("/").lower(), principal_id.lower(), role_definition_guid(role_definition_id))
    )
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, seed))
