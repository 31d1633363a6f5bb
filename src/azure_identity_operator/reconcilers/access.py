"""Access policies: what an object asks of Azure (its requests), and whether the policies that govern its
namespace allow it, decided before any Azure write.

Each kind says what it asks (`flow.Hooks.requests`, or `flow.ObjectState.policy` from `ensure` once it
knows more, as a RoleAssignment does after resolving its role): a role grant, a new identity, an Azure
resource whose identity it changes, a federated credential's trust. `evaluate` checks them against every
`IdentityAccessPolicy` that selects the namespace. Policies combine by deny-wins: a request is allowed
only if every selecting policy allows it, so adding a policy can only narrow what a namespace may do.
Without any policy, the operator's default applies: `permissive` allows everything, `restricted` denies
the privileged roles (those that let the grantee grant further) everywhere.

Inside one policy, per rule: an entry of `deny` that matches denies; a present `allow` that no entry
matches denies. Role entries are names or role definition IDs (GUIDs), compared without case. Scope,
resource-group and resource entries are ARM IDs with `*` and `?` globs that stay within one path segment,
compared without case, and cover everything below what they match:
`/subscriptions/S/resourceGroups/team-a-*` allows a Key Vault in `team-a-web`, and `/subscriptions/*`
every scope; `**` spans segments (`**/providers/Microsoft.KeyVault/vaults/*`: any Key Vault). Issuer
and subject entries are plain globs (`*` matches anything, `/` included). Principals: the identities
declared in the namespace always; raw Entra object IDs only when `principals.allow` lists them (or `*`).
Federated credentials: a ServiceAccount of the namespace through the cluster's issuer always; any other
issuer or subject only when `federatedCredentials.issuers.allow` (and `subjects.allow`, when given) match
it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from azure_identity_operator.api import access_policy as api

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

PRIVILEGED_ROLES = {
    "owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "user access administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "role based access control administrator": "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
}
"""Built-in roles whose holder can grant roles further (their IDs are the same in every tenant)."""
RESTRICTED_DEFAULT = "restricted default"
"""How a denial by `IDENTITY_OPERATOR_DEFAULT_POLICY=restricted` names its source."""


# -- requests ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grant:
    """A role assignment: `role_name` and `role_id` (the definition's GUID) as far as known."""

    role_name: str | None
    role_id: str | None
    scope: str
    principal_id: str | None
    own_identity: bool
    """Whether the principal is an identity declared in the object's namespace (`identityRef`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class NewIdentity:
    resource_group_id: str
    location: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class UseResource:
    resource_id: str
    action: str
    """What the object does to it, for the message: "enable the system-assigned identity of"."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DefineRole:
    """A custom role, assignable at `scope` (one request per assignable scope)."""

    role_name: str
    scope: str
    privileged: bool
    """Whether its actions reach role assignments or everything (`*`, `Microsoft.Authorization/*`...):
    holding it would let the grantee grant further, as the privileged built-in roles do."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trust:
    issuer: str
    subject: str
    own_account: bool
    """Whether the subject is a ServiceAccount of the object's namespace, through the cluster's issuer."""


Request = Grant | NewIdentity | UseResource | DefineRole | Trust


@dataclasses.dataclass(frozen=True, kw_only=True)
class Denial:
    policy: str
    rule: str
    """The field of the policy that decided, e.g. `spec.roles.deny`."""
    message: str

    def describe(self) -> str:
        source = self.policy if self.policy == RESTRICTED_DEFAULT else f"IdentityAccessPolicy {self.policy}"
        return f"{source} ({self.rule}): {self.message}"


# -- one policy --------------------------------------------------------------------------------------------


def _guid_of(entry: str) -> str | None:
    """The GUID of a role entry written as a GUID or a role definition ID."""
    tail = entry.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    return tail if _GUID.match(tail) else None


def _role_matches(entry: str, request: Grant) -> bool:
    guid = _guid_of(entry)
    if guid is not None:
        return request.role_id is not None and request.role_id.lower() == guid
    return request.role_name is not None and request.role_name.strip().lower() == entry.strip().lower()


def _ancestors(arm_id: str) -> list[str]:
    """The ID and every ID above it: `/subscriptions/S/resourceGroups/g/...` → ..., `/subscriptions/S`."""
    parts = arm_id.strip().rstrip("/").lower().split("/")
    return ["/".join(parts[:length]) for length in range(len(parts), 2, -1)]


def _segment_pattern(pattern: str) -> re.Pattern[str]:
    """An ARM ID glob as a regex: `*` and `?` stay within one path segment, so a pattern names a level;
    `**` spans any number of segments."""
    text = pattern.strip().rstrip("/").lower()
    escaped = re.escape(text).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.compile(escaped.replace("\0", ".*") + r"\Z")


def _id_matches(pattern: str, arm_id: str) -> bool:
    wanted = _segment_pattern(pattern)
    return any(wanted.match(candidate) for candidate in _ancestors(arm_id))


def _location(value: str) -> str:
    return value.replace(" ", "").lower()


def _glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


_ANY = ""


def _verdict(rule: api.Rule | None, matches: Callable[[str], bool]) -> tuple[str, str] | None:
    """One rule's say: `("deny", entry)` when a `deny` entry matches, `("allow", "")` when `allow` is
    present and no entry of it matches, `None` when the rule allows it."""
    if rule is None:
        return None
    denied = next((entry for entry in rule.deny if matches(entry)), None)
    if denied is not None:
        return ("deny", denied)
    if rule.allow is not None and not any(matches(entry) for entry in rule.allow):
        return ("allow", _ANY)
    return None


def _listed(entries: Iterable[str]) -> str:
    return ", ".join(repr(entry) for entry in entries)


@dataclasses.dataclass(frozen=True)
class Policy:
    """One IdentityAccessPolicy as the operator evaluates it."""

    name: str
    spec: api.IdentityAccessPolicySpec

    def selects(self, labels: Mapping[str, str]) -> bool:
        return self.spec.namespace_selector.selects(labels)

    def check(self, request: Request) -> Denial | None:
        if isinstance(request, Grant):
            return self._grant(request)
        if isinstance(request, NewIdentity):
            return self._new_identity(request)
        if isinstance(request, UseResource):
            return self._resource(request)
        if isinstance(request, DefineRole):
            return self._define(request)
        return self._trust(request)

    def _deny(self, rule: str, message: str) -> Denial:
        return Denial(policy=self.name, rule=rule, message=message)

    def _grant(self, request: Grant) -> Denial | None:
        role = request.role_name or request.role_id or "?"
        roles = self.spec.roles
        match _verdict(roles, lambda entry: _role_matches(entry, request)):
            case ("deny", entry):
                return self._deny("spec.roles.deny", f"role {role!r} may not be granted (denied: {entry!r})")
            case ("allow", _) if roles is not None and roles.allow is not None:
                return self._deny(
                    "spec.roles.allow",
                    f"role {role!r} is not one this namespace may grant ({_listed(roles.allow)})",
                )
        denial = self._scope(request.scope, f"no grants at {request.scope}")
        if denial is not None:
            return denial
        if not request.own_identity:
            allowed = self.spec.principals.allow if self.spec.principals is not None else []
            principal = (request.principal_id or "").lower()
            if "*" not in allowed and principal not in {entry.strip().lower() for entry in allowed}:
                return self._deny(
                    "spec.principals.allow",
                    f"principal {request.principal_id} is not an identity of this namespace nor one the "
                    "policy lists; grant to an identity declared here, or have it listed",
                )
        return None

    def _scope(self, scope: str, refused: str) -> Denial | None:
        """Whether the namespace may grant at `scope` (`refused` says what is refused when it is denied)."""
        scopes = self.spec.scopes
        match _verdict(scopes, lambda entry: _id_matches(entry, scope)):
            case ("deny", entry):
                return self._deny("spec.scopes.deny", f"{refused} (denied: {entry!r})")
            case ("allow", _) if scopes is not None and scopes.allow is not None:
                return self._deny(
                    "spec.scopes.allow",
                    f"{refused}: not under a scope this namespace may grant on ({_listed(scopes.allow)})",
                )
        return None

    def _define(self, request: DefineRole) -> Denial | None:
        """A custom role is judged as the grants it makes possible: assignable only where the namespace
        may grant, and not named as a role the namespace may not grant."""
        grant = Grant(
            role_name=request.role_name,
            role_id=None,
            scope=request.scope,
            principal_id=None,
            own_identity=True,
        )
        verdict = _verdict(self.spec.roles, lambda entry: _role_matches(entry, grant))
        if verdict is not None and verdict[0] == "deny":
            return self._deny("spec.roles.deny", f"custom role {request.role_name!r} may not be defined")
        return self._scope(request.scope, f"custom role {request.role_name!r} may not be assignable there")

    def _new_identity(self, request: NewIdentity) -> Denial | None:
        rules = self.spec.identities
        if rules is None:
            return None
        group = request.resource_group_id
        match _verdict(rules.resource_groups, lambda entry: _id_matches(entry, group)):
            case ("deny", entry):
                return self._deny(
                    "spec.identities.resourceGroups.deny", f"no identities in {group} (denied: {entry!r})"
                )
            case ("allow", _) if (
                rules.resource_groups is not None and rules.resource_groups.allow is not None
            ):
                return self._deny(
                    "spec.identities.resourceGroups.allow",
                    f"resource group {group} is not one this namespace may keep identities in "
                    f"({_listed(rules.resource_groups.allow)})",
                )
        where = _location(request.location)
        match _verdict(rules.locations, lambda entry: _glob(_location(entry), where)):
            case ("deny", _):
                return self._deny(
                    "spec.identities.locations.deny", f"no identities in location {request.location!r}"
                )
            case ("allow", _) if rules.locations is not None and rules.locations.allow is not None:
                return self._deny(
                    "spec.identities.locations.allow",
                    f"location {request.location!r} is not one of {_listed(rules.locations.allow)}",
                )
        return None

    def _resource(self, request: UseResource) -> Denial | None:
        rule = self.spec.resources
        match _verdict(rule, lambda entry: _id_matches(entry, request.resource_id)):
            case ("deny", entry):
                return self._deny(
                    "spec.resources.deny",
                    f"may not {request.action} {request.resource_id} (denied: {entry!r})",
                )
            case ("allow", _) if rule is not None and rule.allow is not None:
                return self._deny(
                    "spec.resources.allow",
                    f"may not {request.action} {request.resource_id}: not under one of {_listed(rule.allow)}",
                )
        return None

    def _trust(self, request: Trust) -> Denial | None:
        rules = self.spec.federated_credentials or api.CredentialRules()
        issuers, subjects = rules.issuers, rules.subjects
        if issuers is not None and any(_glob(e, request.issuer) for e in issuers.deny):
            return self._deny(
                "spec.federatedCredentials.issuers.deny",
                f"tokens of issuer {request.issuer!r} may not be trusted",
            )
        if subjects is not None and any(_glob(e, request.subject) for e in subjects.deny):
            return self._deny(
                "spec.federatedCredentials.subjects.deny", f"subject {request.subject!r} may not be trusted"
            )
        if request.own_account:
            return None
        if (
            issuers is None
            or issuers.allow is None
            or not any(_glob(e, request.issuer) for e in issuers.allow)
        ):
            return self._deny(
                "spec.federatedCredentials.issuers.allow",
                f"only ServiceAccounts of this namespace through the cluster's issuer may be trusted; issuer "
                f"{request.issuer!r} is not listed",
            )
        if (
            subjects is not None
            and subjects.allow is not None
            and not any(_glob(e, request.subject) for e in subjects.allow)
        ):
            return self._deny(
                "spec.federatedCredentials.subjects.allow",
                f"subject {request.subject!r} is not one of {_listed(subjects.allow)}",
            )
        return None


# -- every policy ------------------------------------------------------------------------------------------


def _privileged_definition(request: Request) -> Denial | None:
    """A custom role that reaches role assignments is as privileged as Owner: under the restricted default,
    or where policies govern the namespace, it is not defined unless a policy lists its name in
    `roles.allow`."""
    if isinstance(request, DefineRole) and request.privileged:
        return Denial(
            policy=RESTRICTED_DEFAULT,
            rule="custom roles",
            message=f"custom role {request.role_name!r} includes actions on role assignments or '*': its "
            "holders could grant any role; define it outside the cluster",
        )
    return None


def _restricted(request: Request) -> Denial | None:
    if not isinstance(request, Grant):
        return _privileged_definition(request)
    name = (request.role_name or "").strip().lower()
    role_id = (request.role_id or "").lower()
    if name in PRIVILEGED_ROLES or role_id in PRIVILEGED_ROLES.values():
        return Denial(
            policy=RESTRICTED_DEFAULT,
            rule="IDENTITY_OPERATOR_DEFAULT_POLICY",
            message=f"role {request.role_name or request.role_id!r} lets its holder grant roles; no "
            "IdentityAccessPolicy selects this namespace, and without one privileged roles are not granted",
        )
    return None


def evaluate(
    policies: Iterable[Policy],
    labels: Mapping[str, str],
    requests: Sequence[Request],
    *,
    restricted_default: bool,
) -> Denial | None:
    """The first denial of `requests` by the policies selecting a namespace with `labels` (by name), or by
    the default when none selects it; `None` when everything is allowed."""
    selecting = sorted((policy for policy in policies if policy.selects(labels)), key=lambda p: p.name)
    for request in requests:
        if not selecting:
            denial = _restricted(request) if restricted_default else None
            if denial is not None:
                return denial
            continue
        for policy in selecting:
            denial = policy.check(request)
            if denial is not None:
                return denial
        if isinstance(request, DefineRole) and request.privileged:
            listed = any(
                policy.spec.roles is not None
                and policy.spec.roles.allow is not None
                and any(
                    entry.strip().lower() == request.role_name.strip().lower()
                    for entry in policy.spec.roles.allow
                )
                for policy in selecting
            )
            if not listed:
                return _privileged_definition(request)
    return None


def selected_namespaces(policy: Policy, namespaces: Mapping[str, Mapping[str, str]]) -> list[str]:
    return sorted(name for name, labels in namespaces.items() if policy.selects(labels))
