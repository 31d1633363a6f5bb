"""`RoleAssignment`: make Azure hold exactly the grant the spec declares, and remove it on delete.

`ensure` is level-based: it resolves the principal (as Azure reports it: the referenced identity's ARM
resource or its resource's identity block, never a status) and the role, observes the assignment, writes
only what differs, and returns an `Outcome`; running it again writes nothing. Azure never lets an
assignment's principal, role or scope change, so a changed grant is a *new* assignment (with a new
deterministic name, `arm.ids.role_assignment_name`): it is created first, then the one recorded before is
deleted once Azure confirms it is this object's, then the new one is recorded. A crash anywhere in
between converges on the next run: the PUT is repeated under the same name, and the old one is still in
status to be checked and deleted.

`remove` deletes exactly what the object owns (see `RoleAssignmentHooks.remove`) unless another object
still declares the same grant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.api import role_assignment as api
from azure_identity_operator.api import role_definition as role_definition_api
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.authorization import (
    AuthorizationPort,
    RoleAssignment,
    RoleAssignmentProperties,
    RoleDefinition,
    existing_role_assignment_name,
)
from azure_identity_operator.reconcilers import access, flow, ownership
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity
from azure_identity_operator.status import conditions, outcome, reasons

logger = logging.getLogger(__name__)

ROLE_CACHE_SECONDS = 600.0
"""How long a resolved role definition is trusted before Azure is asked again."""
DELETION_GRACE_SECONDS = 600.0
"""How long a deletion Azure refuses (lost access) is retried before the object is released anyway."""

PRINCIPAL_GRACE_SECONDS = 600.0
"""How long Azure may report a principal unknown before it is `PrincipalNotFound` (replication takes
minutes at most)."""


class RoleResolver:
    """Role definitions by name and by ID, cached for `ttl` seconds and shared by all objects.

    Names are keyed by (the scope's subscription, lower-cased name): built-in roles are the same in every
    subscription, and a custom role's name is unique in its tenant. Misses are not cached, so a custom role
    created after the first failure is found on the next attempt. Lookups are single-flight: when a
    thousand assignments need `Reader` at once (or when its entry expires under them), Azure is asked once.
    """

    def __init__(
        self,
        port: AuthorizationPort,
        *,
        ttl: float = ROLE_CACHE_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._port = port
        self._ttl = ttl
        self._clock = clock or time.monotonic
        self._by_name: dict[tuple[str, str], tuple[float, RoleDefinition]] = {}
        self._by_id: dict[str, tuple[float, RoleDefinition]] = {}
        self._pending: dict[tuple[str, ...], asyncio.Future[RoleDefinition | None]] = {}

    async def _once(
        self, key: tuple[str, ...], lookup: Callable[[], Awaitable[RoleDefinition | None]]
    ) -> RoleDefinition | None:
        """Run `lookup` once for every concurrent caller with the same `key`."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(lookup())
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: a caller that is cancelled does not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    def _fresh(self, entry: tuple[float, RoleDefinition] | None) -> RoleDefinition | None:
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _remember(self, definition: RoleDefinition, subscription_id: str) -> None:
        expires = self._clock() + self._ttl
        self._by_name[(subscription_id.lower(), definition.role_name.lower())] = (expires, definition)
        self._by_id[definition.id.lower()] = (expires, definition)

    async def by_name(self, scope: str, subscription_id: str, role_name: str) -> RoleDefinition | None:
        wanted = role_name.strip().lower()
        cached = self._fresh(self._by_name.get((subscription_id.lower(), wanted)))
        if cached is not None:
            return cached

        async def lookup() -> RoleDefinition | None:
            found = await self._port.find_role_definitions(scope, role_name.strip())
            matching = sorted((d for d in found if d.role_name.lower() == wanted), key=lambda d: d.id.lower())
            if not matching:
                return None
            self._remember(matching[0], subscription_id)
            return matching[0]

        return await self._once(("name", subscription_id.lower(), wanted), lookup)

    async def by_id(self, role_definition_id: str, subscription_id: str) -> RoleDefinition | None:
        cached = self._fresh(self._by_id.get(role_definition_id.lower()))
        if cached is not None:
            return cached

        async def lookup() -> RoleDefinition | None:
            found = await self._port.get_role_definition(role_definition_id)
            if found is None:
                return None
            # Azure reports the definition in the form it was asked for; keep the caller's for comparisons.
            definition = dataclasses.replace(found, id=role_definition_id)
            self._remember(definition, subscription_id)
            return definition

        return await self._once(("id", role_definition_id.lower()), lookup)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Principal:
    id: str
    type: str | None
    description: str
    """How messages name it: "UserAssignedIdentity 'app' (principal <id>)"."""


class _NeedsAttention(Exception):
    """Internal: stop reconciling with this outcome."""

    def __init__(self, result: outcome.Outcome, error: errors.ArmError | None = None) -> None:
        super().__init__(result.message)
        self.result = result
        self.error = error
        """The Azure error behind it, when there is one."""


def _resolve_principal(
    spec: api.RoleAssignmentSpec, identity: PrincipalSnapshot | None, namespace: str
) -> Principal:
    ref = spec.principal.identity_ref
    if ref is None:
        assert spec.principal.principal_id is not None
        principal_id = spec.principal.principal_id.lower()
        return Principal(
            id=principal_id, type=spec.principal.principal_type, description=f"principal {principal_id}"
        )
    if identity is None:
        raise _NeedsAttention(
            outcome.not_ready(
                reasons.REFERENCE_NOT_FOUND,
                f"{ref.kind} {ref.name!r} does not exist in namespace {namespace!r}: create it, or fix "
                "spec.principal.identityRef; the assignment is made as soon as it is Ready",
            )
        )
    if identity.deleting:
        raise _NeedsAttention(
            outcome.not_ready(
                reasons.WAITING_FOR_IDENTITY,
                f"{ref.kind} {ref.name!r} is being deleted; the assignment waits for it to exist again",
            )
        )
    if not identity.usable_principal:
        raise _NeedsAttention(
            outcome.not_ready(
                reasons.WAITING_FOR_IDENTITY,
                f"waiting for {ref.kind} {ref.name!r} to be Ready; the assignment is made as soon as it is",
            )
        )
    principal_id = identity.usable_principal.lower()
    return Principal(
        id=principal_id,
        type=api.MANAGED_IDENTITY_PRINCIPAL_TYPE,
        description=f"{ref.kind} {ref.name!r} (principal {principal_id})",
    )


async def _resolve_role(
    spec: api.RoleAssignmentSpec, scope: ids.ResourceId, roles: RoleResolver, custom: str | None = None
) -> RoleDefinition:
    """The role the spec names, as Azure resolves it; `custom` is the ID of the custom role `roleRef`
    names (derived from its object's name, never read from a status)."""
    scope_text = str(scope)
    if spec.role_ref is not None:
        assert custom is not None
        try:
            definition = await roles.by_id(custom, scope.subscription_id)
        except errors.ArmError as error:
            raise _NeedsAttention(
                errors.outcome_for(error, action=f"reading custom role {custom}"), error
            ) from None
        if definition is None:
            raise _NeedsAttention(
                outcome.not_ready(
                    reasons.WAITING_FOR_ROLE_DEFINITION,
                    f"waiting for RoleDefinition {spec.role_ref.name!r} to be created in Azure ({custom})",
                    retry_after=ROLE_DEFINITION_RETRY_SECONDS,
                )
            )
        return definition
    if spec.role is not None:
        action = f"resolving role {spec.role!r} at {scope_text}"
        try:
            definition = await roles.by_name(scope_text, scope.subscription_id, spec.role)
        except errors.ArmError as error:
            raise _NeedsAttention(_assignment_failed(error, action=action, scope=scope_text), error) from None
        if definition is None:
            raise _NeedsAttention(
                outcome.not_ready(
                    reasons.ROLE_NOT_FOUND,
                    f"no role named {spec.role!r} is assignable at {scope_text}: check the spelling (for "
                    "example 'Key Vault Secrets User'), or use spec.roleDefinitionId",
                )
            )
        return definition
    role_definition_id = spec.full_role_definition_id(scope.subscription_id)
    assert role_definition_id is not None
    try:
        definition = await roles.by_id(role_definition_id, scope.subscription_id)
    except errors.ArmError as error:
        raise _NeedsAttention(
            errors.outcome_for(error, action=f"reading role definition {role_definition_id}"), error
        ) from None
    if definition is None:
        raise _NeedsAttention(
            outcome.not_ready(
                reasons.ROLE_NOT_FOUND,
                f"role definition {role_definition_id} does not exist in subscription "
                f"{scope.subscription_id}: fix spec.roleDefinitionId, or use spec.role with the role's name",
            )
        )
    return definition


def _grant_request(
    spec: api.RoleAssignmentSpec, role: RoleDefinition, desired: RoleAssignmentProperties
) -> access.Request:
    """The grant as the access policies judge it: the role by name and by ID, where, and to whom."""
    return access.Grant(
        role_name=role.role_name,
        role_id=role.id.rstrip("/").rsplit("/", 1)[-1],
        scope=desired.scope,
        principal_id=desired.principal_id,
        own_identity=spec.principal.identity_ref is not None,
    )


def _drifted(current: RoleAssignment, desired: RoleAssignmentProperties) -> bool:
    """Whether the mutable properties differ: description (when the spec sets one) and the condition."""
    actual = current.properties
    if desired.description is not None and actual.description != desired.description:
        return True
    if (actual.condition or None) != desired.condition:
        return True
    return desired.condition is not None and (actual.condition_version or None) != desired.condition_version


async def _find_existing_grant(
    port: AuthorizationPort, desired: RoleAssignmentProperties, conflict: errors.ArmError
) -> RoleAssignment | None:
    """The assignment Azure already holds for the same (scope, principal, role) under another name.

    Azure names it in the conflict; a GET of that name is exact and reads what the PUT just saw, where
    a list may still lag behind. Without a name, the principal's assignments at, above and below the scope
    are listed; `same_grant` keeps only one exactly AT the scope, so a grant inherited from a parent
    scope is never adopted as this object's own.
    """
    name = existing_role_assignment_name(conflict)
    if name is not None:
        found = await port.get_role_assignment(desired.scope, name)
        if found is not None and found.properties.same_grant(desired):
            return found
    for candidate in await port.list_role_assignments_for_principal(desired.scope, desired.principal_id):
        if candidate.properties.same_grant(desired):
            return candidate
    return None


def _principal_not_found(
    principal: Principal, error: errors.ArmError, *, obj: flow.ObjectState, now: float
) -> outcome.Outcome:
    """`WaitingForPrincipal` while directory replication may explain it; past `PRINCIPAL_GRACE_SECONDS`
    of Azure saying so, `PrincipalNotFound`: a person should check the ID (still retried, slowly)."""
    waiting_since = _not_ready_since(obj.status)
    if waiting_since is not None and now - waiting_since >= PRINCIPAL_GRACE_SECONDS:
        advice = (
            " Set spec.principal.principalType (User, Group or ServicePrincipal) so Azure skips the "
            "directory lookup and its replication delay."
            if principal.type is None
            else ""
        )
        return outcome.not_ready(
            reasons.PRINCIPAL_NOT_FOUND,
            f"Azure has not known {principal.description} for {int(now - waiting_since)}s, longer than "
            f"directory replication takes: check that it is the principal's object ID.{advice} ({error})",
            retry_after=errors.SLOW_RETRY_SECONDS,
        )
    advice = (
        "Set spec.principal.principalType so Azure can skip the lookup, and check the object ID."
        if principal.type is None
        else "If it was not created moments ago, check spec.principal."
    )
    return outcome.not_ready(
        reasons.WAITING_FOR_PRINCIPAL,
        f"Azure does not know {principal.description} yet (new principals take a while to replicate "
        f"through the directory); retrying with backoff. {advice} ({error})",
        retry_after=errors.DEFAULT_RETRY_SECONDS,
    )


def _not_ready_since(status: Mapping[str, Any]) -> float | None:
    """When the object's Ready condition last turned False, if it waits for its principal now."""
    ready = conditions.find_condition(status.get("conditions"), conditions.READY)
    if ready is None or ready.get("status") != "False":
        return None
    if ready.get("reason") not in (reasons.WAITING_FOR_PRINCIPAL, reasons.PRINCIPAL_NOT_FOUND):
        return None
    return conditions.parse_time(str(ready.get("lastTransitionTime") or ""))


async def _ensure_assignment(
    *,
    port: AuthorizationPort,
    desired: RoleAssignmentProperties,
    name: str,
    recorded: api.RoleAssignmentStatus,
    principal: Principal,
    obj: flow.ObjectState,
    owner: ownership.Owner,
    now: float,
    before_create: Callable[[], Awaitable[tuple[outcome.Change, ...]]] | None = None,
) -> tuple[RoleAssignment, bool, tuple[outcome.Change, ...]]:
    """The assignment granting `desired`, created or repaired as needed; whether it was adopted; and the
    changes made. `desired.description` is the spec's text; what is written ends with the marker."""
    current: RoleAssignment | None = None
    adopted = False
    where = f"role assignment {{}} at {desired.scope}"
    if recorded.name and recorded.scope and recorded.name.lower() != name.lower() and recorded.adopted:
        # The object adopted an assignment under another name earlier: keep using it while Azure shows
        # it granting the same thing.
        found = await port.get_role_assignment(recorded.scope, recorded.name)
        if found is not None and found.properties.same_grant(desired):
            current, adopted = found, True
    if current is None:
        found = await port.get_role_assignment(desired.scope, name)
        if found is not None:
            if not found.properties.same_grant(desired):
                raise _NeedsAttention(
                    outcome.not_ready(
                        reasons.CONFLICT,
                        f"role assignment {name} at {desired.scope} already exists and grants something "
                        "else; it was not created by this operator. Remove it in Azure.",
                    )
                )
            current = found
    if current is None:
        warnings = await before_create() if before_create is not None else ()
        try:
            created = await port.create_role_assignment(name, _described(desired, None, owner.value))
            return (
                created,
                False,
                (outcome.Change(reason=outcome.CREATED, message=f"created {where.format(name)}"), *warnings),
            )
        except errors.ArmError as error:
            if error.code == "PrincipalNotFound":
                raise _NeedsAttention(_principal_not_found(principal, error, obj=obj, now=now)) from None
            if error.code != "RoleAssignmentExists":
                raise
            existing = await _find_existing_grant(port, desired, error)
            if existing is None:
                raise
            current, adopted = existing, True
    changes: tuple[outcome.Change, ...] = ()
    if recorded.adopted and (recorded.name or "").lower() == current.name.lower():
        adopted = True  # taken over from another owner earlier (the adopt annotation), under its own name
    claim, marker = _marking(current, owner, obj)
    if claim is ownership.Claim.FOREIGN:
        held = ownership.split_description(current.properties.description).marker or ""
        if not ownership.adopt_requested(obj):
            raise _NeedsAttention(_owned_elsewhere(current, held, owner))
        adopted = True
        changes = (
            outcome.Change(
                reason=outcome.ADOPTED,
                message=f"took over {where.format(current.name)} from "
                f"{ownership.describe(held, owner, constants.ROLE_ASSIGNMENT.kind)} "
                f"({ownership.ADOPT_ANNOTATION}=true): its ownership marker now names this object",
            ),
        )
    elif adopted and not recorded.adopted:
        changes = (
            outcome.Change(
                reason=outcome.ADOPTED,
                message=f"adopted the existing {where.format(current.name)}, which grants the same role"
                + (", and marked it as this object's" if claim is ownership.Claim.UNMARKED else ""),
            ),
        )
    wanted = _described(desired, current, marker)
    if _drifted(current, wanted):
        try:
            current = await port.create_role_assignment(
                current.name, dataclasses.replace(wanted, scope=current.properties.scope)
            )
        except errors.ArmError as error:
            if error.code == "PrincipalNotFound":
                raise _NeedsAttention(_principal_not_found(principal, error, obj=obj, now=now)) from None
            raise
        if not changes:  # an adoption's marker is part of the adoption
            changes += (
                outcome.Change(
                    reason=outcome.UPDATED if obj.spec_changed else outcome.DRIFT_REPAIRED,
                    message=f"made the description and condition of {where.format(current.name)} match the "
                    "spec, with its ownership marker",
                ),
            )
    return current, adopted, changes


def _marking(
    current: RoleAssignment, owner: ownership.Owner, obj: flow.ObjectState
) -> tuple[ownership.Claim, str]:
    """How the assignment's marker relates to this object, and whom the marker Azure holds should name.

    A marker naming another object of this cluster is a shared grant's: it stays while that object still
    declares the assignment (the first to make a shared grant is named), and names this object once that
    one no longer does. Otherwise the marker names this object (for `Claim.FOREIGN`, only once adopted).
    """
    held = ownership.split_description(current.properties.description).marker
    claim = ownership.claim(held, owner)
    if claim is ownership.Claim.SIBLING and held is not None:
        named = ownership.Owner.parse(held)
        if named is not None and named.object_key in obj.shared_with(current.name.lower()):
            return claim, held
    return claim, owner.value


def _described(
    desired: RoleAssignmentProperties, current: RoleAssignment | None, marker: str
) -> RoleAssignmentProperties:
    """`desired` with the description Azure should hold: the spec's text (when the spec sets none, the text
    Azure holds, left as it is), then the marker naming `marker`."""
    if desired.description is not None:
        text = desired.description or None
    else:
        text = ownership.split_description(current.properties.description if current else None).text
    return dataclasses.replace(desired, description=ownership.marked_description(text, marker))


def _owned_elsewhere(assignment: RoleAssignment, marker: str, owner: ownership.Owner) -> outcome.Outcome:
    return outcome.not_ready(
        reasons.OWNED_ELSEWHERE,
        f"role assignment {assignment.name} at {assignment.properties.scope} belongs to "
        f"{ownership.describe(marker, owner, constants.ROLE_ASSIGNMENT.kind)} (its description ends with "
        f"{ownership.DESCRIPTION_MARKER_PREFIX}{marker}]): it is neither adopted, changed nor deleted for "
        f"this object. Annotate {ownership.ADOPT_ANNOTATION}=true to take it over (its owner then reports "
        "OwnedElsewhere)",
        observed={"id": None, "name": None, "adopted": None},
    )


DEFAULT_ASSIGNMENT_LIMIT = 4000
"""Role assignments per subscription, as Azure's troubleshooting page states it."""
ROLE_DEFINITION_RETRY_SECONDS = 10.0
"""While the custom role a RoleDefinition makes is not in Azure yet (its Ready also wakes the waiters)."""
LIMIT_WARNING_SHARE = 0.9
"""A Warning Event when a new assignment takes the subscription's count past this share of the limit."""


class RoleAssignmentHooks(flow.BaseHooks[api.RoleAssignmentSpec]):
    """`RoleAssignment` in the one flow; see the module docstring."""

    kind = constants.ROLE_ASSIGNMENT
    action = "reconciling the role assignment"
    removal = "deleting the role assignment"

    def __init__(
        self,
        port: AuthorizationPort,
        roles: RoleResolver | None = None,
        *,
        deletion_grace: float = DELETION_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
        cluster: ClusterIdentity | None = None,
        assignment_limit: int = DEFAULT_ASSIGNMENT_LIMIT,
    ) -> None:
        self._port = port
        self._roles = roles or RoleResolver(port)
        self._deletion_grace = deletion_grace
        self._clock = clock
        self._cluster = cluster or ClusterIdentity()
        """Read at each pass: the cluster ID may be discovered after the hooks are built."""
        self._limit = assignment_limit
        self.assignment_counts: dict[str, int] = {}
        """Subscription → role assignments Azure listed at the last drift check, plus those made since."""

    def _custom_role(
        self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec, scope: ids.ResourceId
    ) -> str | None:
        """The ID of the custom role `roleRef` names: derived from the RoleDefinition's name, once that
        object exists and is Ready."""
        if spec.role_ref is None:
            return None
        name = spec.role_ref.name
        found = obj.sibling(constants.ROLE_DEFINITION.kind, name)
        if found is None:
            raise _NeedsAttention(
                outcome.not_ready(
                    reasons.REFERENCE_NOT_FOUND,
                    f"RoleDefinition {name!r} does not exist in namespace {obj.namespace!r}; create it or "
                    "correct spec.roleRef.name (this assignment follows as soon as it is Ready)",
                )
            )
        if found.deleting or found.ready != "True":
            raise _NeedsAttention(
                outcome.not_ready(
                    reasons.WAITING_FOR_ROLE_DEFINITION,
                    f"waiting for RoleDefinition {name!r} to be Ready",
                )
            )
        return self._custom_role_id(obj, spec, scope)

    def _custom_role_id(
        self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec, scope: ids.ResourceId
    ) -> str | None:
        if spec.role_ref is None:
            return None
        guid = role_definition_api.role_definition_guid(
            self._cluster.value, obj.namespace, spec.role_ref.name
        )
        return api.role_definition_id(scope.subscription_id, guid)

    async def _within_limit(self, subscription_id: str) -> tuple[outcome.Change, ...]:
        """Refuse a new assignment past the subscription's limit (before Azure does); warn near it."""
        key = subscription_id.lower()
        if key not in self.assignment_counts:
            self.assignment_counts[key] = len(await self._port.list_role_assignments(subscription_id))
        count = self.assignment_counts[key]
        if count >= self._limit:
            raise _NeedsAttention(
                outcome.not_ready(
                    reasons.ROLE_ASSIGNMENT_LIMIT_EXCEEDED,
                    f"subscription {subscription_id} holds {count} role assignments, the most Azure allows "
                    f"(IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT={self._limit}): remove unused ones, or grant "
                    "to a group instead of to each identity",
                )
            )
        if count + 1 >= LIMIT_WARNING_SHARE * self._limit:
            return (
                outcome.Change(
                    reason="RoleAssignmentLimitNear",
                    message=f"subscription {subscription_id} now holds {count + 1} of the {self._limit} role "
                    "assignments Azure allows",
                    warning=True,
                ),
            )
        return ()

    def parse(self, obj: flow.ObjectState) -> api.RoleAssignmentSpec:
        spec = api.parse_spec(obj.spec)
        try:
            ids.parse_resource_id(spec.normalized_scope)
        except ids.InvalidResourceId as error:
            raise api.InvalidSpec(
                f"spec.scope: {error}; write a subscription, resource group or resource ID"
            ) from None
        if spec.description is not None and ownership.contains_marker(spec.description):
            raise api.InvalidSpec(
                "spec.description contains an ownership marker "
                f"({ownership.DESCRIPTION_MARKER_PREFIX}...]); the operator appends the marker itself: "
                "remove it"
            )
        return spec

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        principal = spec.get("principal") or {}
        ref = principal.get("identityRef") if isinstance(principal, Mapping) else None
        if not isinstance(ref, Mapping) or not ref.get("name"):
            return None
        return str(ref.get("kind") or constants.USER_ASSIGNED_IDENTITY.kind), str(ref["name"])

    def sharing_keys(self, obj: flow.ObjectState) -> tuple[str, ...]:
        # The assignment this object last reported. Read from status only to *keep* a shared assignment
        # when another object is deleted, never to delete one.
        name = obj.status.get("name")
        return (str(name).lower(),) if name else ()

    async def ensure(self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec) -> outcome.Outcome:
        try:
            return await self._ensure(obj, spec)
        except _NeedsAttention as stop:
            result = stop.result
        if "roleName" not in result.observed:
            # The ROLE column shows what was asked for even when it could not be resolved.
            requested = spec.role if spec.role is not None else spec.role_definition_id
            result = dataclasses.replace(result, observed={**result.observed, "roleName": requested})
        return result

    async def _ensure(self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec) -> outcome.Outcome:
        scope = ids.parse_resource_id(spec.normalized_scope)
        principal = _resolve_principal(spec, obj.identity, obj.namespace)
        role = await _resolve_role(spec, scope, self._roles, self._custom_role(obj, spec, scope))
        desired = _desired(spec, scope, role, principal)
        # The access policies judge the grant once the role is known by both name and ID.
        denial = obj.policy([_grant_request(spec, role, desired)])
        if denial is not None:
            raise _NeedsAttention(flow.policy_denied(denial))
        name = ids.role_assignment_name(
            scope=desired.scope,
            principal_id=desired.principal_id,
            role_definition_id=desired.role_definition_id,
        )
        action = f"assigning role {role.role_name!r} to {principal.description} at {desired.scope}"
        recorded = api.parse_status(obj.status)
        owner = ownership.owner_of(obj, self._cluster)
        try:
            current, adopted, changes = await _ensure_assignment(
                port=self._port,
                desired=desired,
                name=name,
                recorded=recorded,
                principal=principal,
                obj=obj,
                owner=owner,
                now=self._clock(),
                before_create=lambda: self._within_limit(scope.subscription_id),
            )
        except errors.ArmError as error:
            raise _NeedsAttention(_assignment_failed(error, action=action, scope=desired.scope)) from None
        if any(change.reason == outcome.CREATED for change in changes):
            key = scope.subscription_id.lower()
            self.assignment_counts[key] = self.assignment_counts.get(key, 0) + 1

        # Replacement: the grant changed, so the assignment recorded before is no longer what the spec asks.
        if recorded.name and recorded.scope and not (recorded.id and ids.same_id(recorded.id, current.id)):
            replaced = await self._replaced_assignment(
                recorded,
                scope=desired.scope,
                role_definition_id=desired.role_definition_id,
                principal_id=desired.principal_id,
            )
            if replaced is not None and not replaced.properties.same_grant(desired):
                try:
                    gone = _foreign_marker(replaced, owner) is None and await _delete_if_unshared(
                        self._port, assignment=replaced, shared_with=obj.shared_with
                    )
                except errors.ArmError as error:
                    # Keep the old assignment in status so the next attempt deletes it; the new one is
                    # found again by its deterministic name.
                    failed = errors.outcome_for(
                        error, action=f"removing the replaced role assignment {replaced.name}"
                    )
                    return dataclasses.replace(
                        failed, message=f"created {current.name}; {failed.message}", changes=changes
                    )
                if gone:
                    changes += (
                        outcome.Change(
                            reason=outcome.REPLACED,
                            message=f"the grant changed: deleted role assignment {replaced.name} at "
                            f"{replaced.properties.scope} after creating {current.name}",
                        ),
                    )

        observed = {
            "id": current.id,
            "name": current.name,
            "scope": current.properties.scope or desired.scope,
            "principalId": desired.principal_id,
            "principalType": current.properties.principal_type or desired.principal_type,
            "roleDefinitionId": role.id,
            "roleName": role.role_name,
            "adopted": adopted,
        }
        message = f"role {role.role_name!r} is assigned to {principal.description} at {desired.scope}"
        if adopted:
            message += f" (adopted the existing assignment {current.name})"
        return outcome.succeeded(message, observed, changes=changes)

    async def survey(self, objects: Sequence[flow.ObjectState]) -> dict[str, flow.Verdict]:
        """Drift check of many assignments: one list of the subscription's assignments (all pages) instead
        of a GET per object.

        An assignment matches when Azure holds, under the name the object reports, exactly the grant its
        spec derives to now (the principal as Azure reported it, the role resolved through the shared
        cache), with the declared description and condition.
        """
        verdicts: dict[str, flow.Verdict] = {}
        wanted: dict[str, list[tuple[flow.ObjectState, RoleAssignmentProperties]]] = {}
        for obj in objects:
            try:
                spec = self.parse(obj)
                scope = ids.parse_resource_id(spec.normalized_scope)
                principal = _resolve_principal(spec, obj.identity, obj.namespace)
                role = await _resolve_role(spec, scope, self._roles, self._custom_role(obj, spec, scope))
            except (api.InvalidSpec, _NeedsAttention) as problem:
                verdicts[flow.object_key(obj)] = flow.Verdict(drifted=True, why=str(problem))
                continue
            desired = _desired(spec, scope, role, principal)
            if obj.policy([_grant_request(spec, role, desired)]) is not None:
                # A policy now forbids it (changed while the operator was not running, say): reconciled
                # in full, which reports it.
                verdicts[flow.object_key(obj)] = flow.Verdict(drifted=True, why="an access policy forbids it")
                continue
            wanted.setdefault(scope.subscription_id.lower(), []).append((obj, desired))
        for subscription_id, members in wanted.items():
            try:
                listed = await self._port.list_role_assignments(subscription_id)
            except errors.ArmError as error:
                verdicts.update({flow.object_key(obj): flow.unlisted(error) for obj, _ in members})
                continue
            self.assignment_counts[subscription_id.lower()] = len(listed)
            by_name = {assignment.name.lower(): assignment for assignment in listed}
            for obj, desired in members:
                verdicts[flow.object_key(obj)] = _verdict(
                    obj, desired, by_name, ownership.owner_of(obj, self._cluster)
                )
        return verdicts

    async def _replaced_assignment(
        self,
        recorded: api.RoleAssignmentStatus,
        *,
        scope: str,
        role_definition_id: str,
        principal_id: str | None,
    ) -> RoleAssignment | None:
        """The assignment the status records, if Azure confirms it is one this object made.

        Status is only a pointer: Azure must show the assignment, its name must be the deterministic name
        of the grant Azure reports for it (made by this operator, not someone's own), and that grant must
        share the principal (`principal_id`, as Azure reported it) or both the scope and the role with what
        the spec derives to now: a grant replaced because one of them changed. A status pointed at any
        other assignment moves nothing in Azure.
        """
        if not recorded.scope or not recorded.name:
            return None
        found = await self._port.get_role_assignment(recorded.scope, recorded.name)
        if found is None:
            return None
        grant = found.properties
        if found.name.lower() != ids.role_assignment_name(
            scope=grant.scope, principal_id=grant.principal_id, role_definition_id=grant.role_definition_id
        ):
            return None
        same_principal = principal_id is not None and grant.principal_id.lower() == principal_id.lower()
        same_scope_and_role = ids.same_id(grant.scope, scope) and ids.role_definition_guid(
            grant.role_definition_id
        ) == ids.role_definition_guid(role_definition_id)
        return found if same_principal or same_scope_and_role else None

    async def remove(self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec) -> flow.Removal:
        """Remove the assignment the spec derives to, as Azure holds it, unless another object declares it.

        The principal is the one Azure reports for the referenced identity; the assignment is the one
        Azure holds under the deterministic name, or the one the status records if Azure confirms it is
        this object's (see `_replaced_assignment`). The rule for a deletion Azure refuses: a 404 (the
        assignment, or its whole scope, is gone) is done. When Azure refuses for a reason the user must
        fix (lost access: 403 `AuthorizationFailed`, a lock), the object reports `DeletionBlocked` and
        retries with backoff for `deletion_grace` seconds from its deletion timestamp, or until it is
        annotated `identityoperator.dev/force-delete: "true"`; then it is released with a warning that
        the assignment may remain in Azure. Transient failures (5xx, throttling) retry until they heal or
        the object is force-deleted, since giving up on them would leak grants.
        """
        try:
            targets = await self._owned_assignments(obj, spec)
        except _NeedsAttention as stop:
            # The role could not be read (Azure refused or failed): what the object owns is unknown, so
            # nothing is released yet.
            return flow.blocked(stop.result)
        refused: list[tuple[RoleAssignment, errors.ArmError]] = []
        changes: list[outcome.Change] = []
        left: list[str] = []
        owner = ownership.owner_of(obj, self._cluster)
        for assignment in targets:
            foreign = _foreign_marker(assignment, owner)
            if foreign is not None:
                left.append(
                    f"role assignment {assignment.name} at {assignment.properties.scope} belongs to "
                    f"{ownership.describe(foreign, owner, self.kind.kind)}: left in Azure"
                )
                continue
            try:
                if await _delete_if_unshared(self._port, assignment=assignment, shared_with=obj.shared_with):
                    changes.append(
                        outcome.Change(
                            reason=outcome.DELETED,
                            message=f"deleted role assignment {assignment.name} at "
                            f"{assignment.properties.scope}",
                        )
                    )
            except errors.ArmError as refusal:
                refused.append((assignment, refusal))
        if not refused and left:
            return flow.Removal(
                done=True,
                result=outcome.not_ready(reasons.DELETING, "; ".join(left)).with_changes(*changes),
                warning=f"{self.kind.kind} {obj.namespace}/{obj.name} released without deleting: "
                + "; ".join(left),
            )
        if not refused:
            return flow.removed("role assignment removed", *changes)

        assignment, error = refused[0]
        what = f"role assignment {assignment.name} at {assignment.properties.scope}"
        if error.error_class is not errors.ErrorClass.NEEDS_USER:
            return flow.blocked(errors.outcome_for(error, action=f"deleting {what}"))
        elapsed = self._clock() - obj.deleting_since if obj.deleting_since is not None else 0.0
        if elapsed >= self._deletion_grace:
            return flow.Removal(
                done=True,
                result=outcome.not_ready(
                    reasons.DELETION_BLOCKED, f"released after {int(self._deletion_grace)}s: {error}"
                ),
                warning=f"{what} may remain in Azure: deletion was refused for {int(elapsed)}s ({error})",
            )
        remaining = int(self._deletion_grace - elapsed)
        return flow.blocked(
            outcome.not_ready(
                reasons.DELETION_BLOCKED,
                f"Azure refused to delete {what}: {error}. Grant the operator "
                "Microsoft.Authorization/roleAssignments/delete at the scope; the object is released anyway "
                f"in {remaining}s, or at once with the annotation {flow.FORCE_DELETE_ANNOTATION}=true, and "
                "the assignment may then remain in Azure",
                retry_after=flow.DELETION_RETRY_SECONDS,
            )
        )

    async def _owned_assignments(
        self, obj: flow.ObjectState, spec: api.RoleAssignmentSpec
    ) -> list[RoleAssignment]:
        """What this object owns in Azure now: the grant the spec derives to (with the principal Azure
        reported for the referenced identity, even while that identity is being deleted too), plus the
        assignment the status records if Azure confirms it is this object's."""
        scope = ids.parse_resource_id(spec.normalized_scope)
        try:
            role = await _resolve_role(spec, scope, self._roles, self._custom_role_id(obj, spec, scope))
        except _NeedsAttention as stop:
            if stop.result.reason in (reasons.ROLE_NOT_FOUND, reasons.WAITING_FOR_ROLE_DEFINITION) or (
                stop.error is not None and stop.error.is_gone
            ):
                return []  # no such role, or the scope is gone: nothing is granted there
            raise
        principal_id = _removal_principal(spec, obj.identity)
        found: dict[str, RoleAssignment] = {}
        desired: RoleAssignmentProperties | None = None
        if principal_id is not None:
            desired = _desired(spec, scope, role, Principal(id=principal_id, type=None, description=""))
            name = ids.role_assignment_name(
                scope=desired.scope, principal_id=principal_id, role_definition_id=role.id
            )
            current = await self._port.get_role_assignment(desired.scope, name)
            if current is not None and current.properties.same_grant(desired):
                found[current.name.lower()] = current
        recorded = api.parse_status(obj.status)
        if recorded.name and recorded.scope and recorded.name.lower() not in found:
            if recorded.adopted:
                # Adopted under another name: Azure must show it granting exactly the declared grant.
                adopted = await self._port.get_role_assignment(recorded.scope, recorded.name)
                if adopted is not None and desired is not None and adopted.properties.same_grant(desired):
                    found[adopted.name.lower()] = adopted
            else:
                replaced = await self._replaced_assignment(
                    recorded, scope=str(scope), role_definition_id=role.id, principal_id=principal_id
                )
                if replaced is not None:
                    found[replaced.name.lower()] = replaced
        return list(found.values())


def _removal_principal(spec: api.RoleAssignmentSpec, identity: PrincipalSnapshot | None) -> str | None:
    """The principal whose grant a deleted object removes: the raw one, or the one Azure reported for the
    referenced identity (also while that identity is being deleted or is no longer Ready)."""
    if spec.principal.principal_id is not None:
        return spec.principal.principal_id.lower()
    if identity is not None and identity.principal_id:
        return identity.principal_id.lower()
    return None


def _verdict(
    obj: flow.ObjectState,
    desired: RoleAssignmentProperties,
    by_name: Mapping[str, RoleAssignment],
    owner: ownership.Owner,
) -> flow.Verdict:
    recorded = api.parse_status(obj.status)
    current = by_name.get((recorded.name or "").lower())
    if current is None:
        return flow.Verdict(drifted=True, why="missing in Azure")
    claim, marker = _marking(current, owner, obj)
    if claim is ownership.Claim.FOREIGN:
        return flow.Verdict(drifted=True, why="another owner's marker")
    if not current.properties.same_grant(desired) or _drifted(current, _described(desired, current, marker)):
        return flow.Verdict(drifted=True, why="Azure grants something else")
    expected_name = ids.role_assignment_name(
        scope=desired.scope, principal_id=desired.principal_id, role_definition_id=desired.role_definition_id
    )
    if current.name.lower() != expected_name and not recorded.adopted:
        return flow.Verdict(drifted=True, why="not the assignment the spec derives to")
    if (recorded.principal_id or "").lower() != desired.principal_id.lower():
        return flow.Verdict(drifted=True, why="status differs from Azure")
    return flow.Verdict()


def _desired(
    spec: api.RoleAssignmentSpec, scope: ids.ResourceId, role: RoleDefinition, principal: Principal
) -> RoleAssignmentProperties:
    return RoleAssignmentProperties(
        # The canonical spelling of the scope's fixed segments: ARM IDs are case-insensitive, and a scope
        # written /SUBSCRIPTIONS/... is the same scope.
        scope=str(scope),
        role_definition_id=role.id,
        principal_id=principal.id,
        principal_type=principal.type,
        description=spec.description,
        condition=spec.condition,
        condition_version=spec.effective_condition_version,
    )


def _assignment_failed(error: errors.ArmError, *, action: str, scope: str) -> outcome.Outcome:
    """The outcome of a failed call about `scope`, with the fix spelled out where the table's is generic."""
    failed = errors.outcome_for(error, action=action)
    if error.code == "RoleAssignmentLimitExceeded":
        return outcome.not_ready(
            reasons.ROLE_ASSIGNMENT_LIMIT_EXCEEDED,
            f"{failed.message}. The subscription holds as many role assignments as Azure allows: remove "
            "unused ones, or grant to a group instead of to each identity (and set "
            "IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT to Azure's limit so the operator says so first)",
        )
    if error.status == 404:
        return dataclasses.replace(
            failed,
            message=f"{failed.message}. The scope {scope} does not exist: create it, or fix spec.scope",
        )
    if failed.reason == reasons.AUTHORIZATION_FAILED:
        return dataclasses.replace(
            failed,
            message=f"{failed.message}. Grant the operator's identity User Access Administrator (or Owner) "
            "at the scope",
        )
    return failed


def _foreign_marker(assignment: RoleAssignment, owner: ownership.Owner) -> str | None:
    """The marker of an assignment that belongs to another cluster (never deleted for this one), else
    `None`. A marker naming another object of this cluster is a shared grant's: `_delete_if_unshared` keeps
    the assignment while that object declares it."""
    marker = ownership.split_description(assignment.properties.description).marker
    return marker if ownership.claim(marker, owner) is ownership.Claim.FOREIGN else None


async def _delete_if_unshared(
    port: AuthorizationPort, *, assignment: RoleAssignment, shared_with: Callable[[str], Collection[str]]
) -> bool:
    """Delete one assignment unless another object declares it; whether it was deleted by this call.

    Raises the `ArmError` Azure answered, except a 404: gone already, with its scope or by itself.
    """
    others = shared_with(assignment.name.lower())
    if others:
        logger.info("Keeping role assignment %s: still declared by %s", assignment.name, ", ".join(others))
        return False
    try:
        await port.delete_role_assignment(assignment.properties.scope, assignment.name)
    except errors.ArmError as error:
        if error.is_gone:
            return False
        raise
    return True
