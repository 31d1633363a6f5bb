"""Role assignments: make Azure hold exactly the grant a `RoleAssignment` declares, and remove it on delete.

`reconcile` is level-based: it resolves the principal and the role, observes the assignment the object
owns, writes only what differs, and returns an `Outcome`; running it again writes nothing. Azure never
lets an assignment's principal, role or scope change, so a changed grant is a *new* assignment (with a new
deterministic name, `arm.ids.role_assignment_name`): it is created first, then the previously recorded
one is deleted, then the new one is recorded. A crash anywhere in between converges on the next run:
the PUT is repeated under the same name, and the old one is still in status to be deleted.

`delete` removes exactly what the object owns (what status records, plus what the spec derives to, for a
crash between the Azure write and the status write) unless another object still declares the same grant.
The rule for a deletion Azure refuses is documented on `delete` and in docs/usage.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from azure_identity_operator.api import role_assignment as api
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.authorization import (
    AuthorizationPort,
    RoleAssignment,
    RoleAssignmentProperties,
    RoleDefinition,
    existing_role_assignment_name,
)
from azure_identity_operator.status import outcome, reasons

logger = logging.getLogger(__name__)

ROLE_CACHE_SECONDS = 600.0
"""How long a resolved role definition is trusted before Azure is asked again."""
DELETION_GRACE_SECONDS = 600.0
"""How long a deletion Azure refuses (lost access) is retried before the object is released anyway."""
DELETION_RETRY_SECONDS = 10.0

DeclaredElsewhere = Callable[[str], Collection[str]]
"""From an assignment name: the other objects (`namespace/name`) that still declare it."""


def _nobody_else(_: str) -> Collection[str]:
    return ()


class RoleResolver:
    """Role definitions by name and by ID, cached for `ttl` seconds and shared by all objects.

    Names are keyed by (the scope's subscription, lower-cased name): built-in roles are the same in every
    subscription, and a custom role's name is unique in its tenant. Misses are not cached, so a custom role
    created after the first failure is found on the next attempt.
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
        found = [d for d in await self._port.find_role_definitions(scope, role_name.strip())]
        matching = sorted((d for d in found if d.role_name.lower() == wanted), key=lambda d: d.id.lower())
        if not matching:
            return None
        self._remember(matching[0], subscription_id)
        return matching[0]

    async def by_id(self, role_definition_id: str, subscription_id: str) -> RoleDefinition | None:
        cached = self._fresh(self._by_id.get(role_definition_id.lower()))
        if cached is not None:
            return cached
        found = await self._port.get_role_definition(role_definition_id)
        if found is None:
            return None
        # Azure reports the definition in the form it was asked for; keep the caller's for comparisons.
        definition = dataclasses.replace(found, id=role_definition_id)
        self._remember(definition, subscription_id)
        return definition


@dataclasses.dataclass(frozen=True, kw_only=True)
class Principal:
    id: str
    type: str | None
    description: str
    """How messages name it: "UserAssignedIdentity 'app' (principal <id>)"."""


class _NeedsAttention(Exception):
    """Internal: stop reconciling with this outcome."""

    def __init__(self, result: outcome.Outcome) -> None:
        super().__init__(result.message)
        self.result = result


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


def _parse_scope(spec: api.RoleAssignmentSpec) -> ids.ResourceId:
    try:
        return ids.parse_resource_id(spec.normalized_scope)
    except ids.InvalidResourceId as error:
        raise _NeedsAttention(
            outcome.not_ready(
                reasons.INVALID_SPEC,
                f"spec.scope: {error}; write a subscription, resource group or resource ID",
            )
        ) from None


async def _resolve_role(
    spec: api.RoleAssignmentSpec, scope: ids.ResourceId, roles: RoleResolver
) -> RoleDefinition:
    scope_text = spec.normalized_scope
    if spec.role is not None:
        action = f"resolving role {spec.role!r} at {scope_text}"
        try:
            definition = await roles.by_name(scope_text, scope.subscription_id, spec.role)
        except errors.ArmError as error:
            raise _NeedsAttention(_assignment_failed(error, action=action, scope=scope_text)) from None
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
            errors.outcome_for(error, action=f"reading role definition {role_definition_id}")
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


def _principal_not_found(principal: Principal, error: errors.ArmError) -> outcome.Outcome:
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


async def _ensure_assignment(
    *,
    port: AuthorizationPort,
    desired: RoleAssignmentProperties,
    name: str,
    recorded: api.RoleAssignmentStatus,
    principal: Principal,
) -> tuple[RoleAssignment, bool]:
    """The assignment granting `desired`, created or repaired as needed; and whether it was adopted."""
    current: RoleAssignment | None = None
    adopted = False
    if recorded.name and recorded.scope and recorded.name.lower() != name.lower():
        # The object adopted an assignment under another name earlier: keep using it while it grants
        # the same thing.
        found = await port.get_role_assignment(recorded.scope, recorded.name)
        if found is not None and found.properties.same_grant(desired):
            current, adopted = found, bool(recorded.adopted)
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
        try:
            return await port.create_role_assignment(name, desired), False
        except errors.ArmError as error:
            if error.code == "PrincipalNotFound":
                raise _NeedsAttention(_principal_not_found(principal, error)) from None
            if error.code != "RoleAssignmentExists":
                raise
            existing = await _find_existing_grant(port, desired, error)
            if existing is None:
                raise
            current, adopted = existing, True
    if _drifted(current, desired):
        try:
            repaired = await port.create_role_assignment(
                current.name, dataclasses.replace(desired, scope=current.properties.scope)
            )
        except errors.ArmError as error:
            if error.code == "PrincipalNotFound":
                raise _NeedsAttention(_principal_not_found(principal, error)) from None
            raise
        return repaired, adopted
    return current, adopted


async def reconcile(
    *,
    namespace: str,
    spec: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
    identity: PrincipalSnapshot | None,
    port: AuthorizationPort,
    roles: RoleResolver,
    declared_elsewhere: DeclaredElsewhere = _nobody_else,
) -> outcome.Outcome:
    """Make Azure hold the grant `spec` declares; `identity` is the referenced identity's snapshot."""
    try:
        parsed = api.parse_spec(spec)
    except api.InvalidSpec as error:
        return outcome.not_ready(reasons.INVALID_SPEC, str(error))
    recorded = api.parse_status(status)
    try:
        return await _reconcile(
            namespace=namespace,
            spec=parsed,
            recorded=recorded,
            identity=identity,
            port=port,
            roles=roles,
            declared_elsewhere=declared_elsewhere,
        )
    except _NeedsAttention as stop:
        return stop.result


async def _reconcile(
    *,
    namespace: str,
    spec: api.RoleAssignmentSpec,
    recorded: api.RoleAssignmentStatus,
    identity: PrincipalSnapshot | None,
    port: AuthorizationPort,
    roles: RoleResolver,
    declared_elsewhere: DeclaredElsewhere,
) -> outcome.Outcome:
    scope = _parse_scope(spec)
    principal = _resolve_principal(spec, identity, namespace)
    role = await _resolve_role(spec, scope, roles)
    desired = RoleAssignmentProperties(
        scope=spec.normalized_scope,
        role_definition_id=role.id,
        principal_id=principal.id,
        principal_type=principal.type,
        description=spec.description,
        condition=spec.condition,
        condition_version=spec.effective_condition_version,
    )
    name = ids.role_assignment_name(
        scope=desired.scope, principal_id=desired.principal_id, role_definition_id=desired.role_definition_id
    )
    action = f"assigning role {role.role_name!r} to {principal.description} at {desired.scope}"
    try:
        current, adopted = await _ensure_assignment(
            port=port, desired=desired, name=name, recorded=recorded, principal=principal
        )
    except errors.ArmError as error:
        raise _NeedsAttention(_assignment_failed(error, action=action, scope=desired.scope)) from None

    # Replacement: the grant changed, so the assignment recorded before is no longer what the spec asks.
    if recorded.id and recorded.name and recorded.scope and not ids.same_id(recorded.id, current.id):
        replaced = await _delete_if_unshared(
            port, scope=recorded.scope, name=recorded.name, declared_elsewhere=declared_elsewhere
        )
        if replaced is not None:
            # Keep the old assignment in status so the next attempt deletes it; the new one is found again
            # by its deterministic name.
            failed = errors.outcome_for(
                replaced, action=f"removing the replaced role assignment {recorded.name} at {recorded.scope}"
            )
            return dataclasses.replace(failed, message=f"created {current.name}; {failed.message}")

    observed = {
        "id": current.id,
        "name": current.name,
        "scope": current.properties.scope or desired.scope,
        "principalId": desired.principal_id,
        "principalType": current.properties.principal_type or desired.principal_type,
        "roleDefinitionId": role.id,
        "roleName": role.role_name,
        "adopted": True if adopted else None,
    }
    message = f"role {role.role_name!r} is assigned to {principal.description} at {desired.scope}"
    if adopted:
        message += f" (adopted the existing assignment {current.name})"
    return outcome.succeeded(message, observed)


def _assignment_failed(error: errors.ArmError, *, action: str, scope: str) -> outcome.Outcome:
    """The outcome of a failed call about `scope`, with the fix spelled out where the table's is generic."""
    failed = errors.outcome_for(error, action=action)
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


async def _delete_if_unshared(
    port: AuthorizationPort, *, scope: str, name: str, declared_elsewhere: DeclaredElsewhere
) -> errors.ArmError | None:
    """Delete one assignment unless another object declares it; the error if Azure refused."""
    others = declared_elsewhere(name)
    if others:
        logger.info("Keeping role assignment %s: still declared by %s", name, ", ".join(sorted(others)))
        return None
    try:
        await port.delete_role_assignment(scope, name)
    except errors.ArmError as error:
        if error.status == 404:
            logger.info("Role assignment %s is gone with its scope %s (%s)", name, scope, error.code)
            return None
        return error
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Deletion:
    """What a delete attempt concluded: `done` releases the object; otherwise report `result` and retry."""

    done: bool
    result: outcome.Outcome
    warning: str | None = None
    """Set when the object is released although Azure may still hold the assignment."""


async def _derived_target(
    *,
    spec: api.RoleAssignmentSpec,
    identity: PrincipalSnapshot | None,
    roles: RoleResolver,
) -> tuple[str, str] | None:
    """(scope, name) of the assignment the spec derives to now, if it can be worked out."""
    if spec.principal.principal_id is not None:
        principal_id = spec.principal.principal_id
    elif identity is not None and identity.principal_id:
        principal_id = identity.principal_id
    else:
        return None
    try:
        scope = ids.parse_resource_id(spec.normalized_scope)
        role = await _resolve_role(spec, scope, roles)
    except (ids.InvalidResourceId, _NeedsAttention, errors.ArmError):
        return None
    name = ids.role_assignment_name(
        scope=spec.normalized_scope, principal_id=principal_id, role_definition_id=role.id
    )
    return spec.normalized_scope, name


async def delete(
    *,
    spec: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
    identity: PrincipalSnapshot | None,
    port: AuthorizationPort,
    roles: RoleResolver,
    declared_elsewhere: DeclaredElsewhere = _nobody_else,
    deleting_since: float | None,
    force: bool,
    now: float | None = None,
    grace: float = DELETION_GRACE_SECONDS,
) -> Deletion:
    """Remove the assignment the object owns, honouring `deletionPolicy`.

    The rule: a 404 (the assignment, or its whole scope, is gone) is done. When Azure refuses for a reason
    the user must fix (lost access: 403 `AuthorizationFailed`, a lock), the object reports
    `DeletionBlocked` and retries with backoff for `grace` seconds from its deletion timestamp, or until it
    is annotated `identityoperator.dev/force-delete: "true"`; then it is released with a warning that
    the assignment may remain in Azure. Transient failures (5xx, throttling) retry with backoff until
    they heal or the object is force-deleted, since giving up on them would leak grants.
    """
    now = time.time() if now is None else now
    recorded = api.parse_status(status)
    try:
        parsed: api.RoleAssignmentSpec | None = api.parse_spec(spec)
    except api.InvalidSpec:
        parsed = None
    if parsed is not None and parsed.deletion_policy == "Orphan":
        return Deletion(
            done=True,
            result=outcome.not_ready(
                reasons.DELETING, "deletionPolicy is Orphan: the assignment stays in Azure"
            ),
        )
    targets: dict[str, tuple[str, str]] = {}
    if recorded.name and recorded.scope:
        targets[recorded.name.lower()] = (recorded.scope, recorded.name)
    if parsed is not None:
        derived = await _derived_target(spec=parsed, identity=identity, roles=roles)
        if derived is not None and derived[1].lower() not in targets:
            # Only what Azure actually holds: an object that never got its assignment (a forbidden scope,
            # say) must not be blocked by a DELETE of something that was never created.
            try:
                exists = await port.get_role_assignment(*derived) is not None
            except errors.ArmError:
                exists = True  # cannot tell: try the delete, which reports why
            if exists:
                targets[derived[1].lower()] = derived
    refused: list[tuple[str, str, errors.ArmError]] = []
    for scope, name in targets.values():
        error = await _delete_if_unshared(port, scope=scope, name=name, declared_elsewhere=declared_elsewhere)
        if error is not None:
            refused.append((scope, name, error))
    if not refused:
        return Deletion(done=True, result=outcome.not_ready(reasons.DELETING, "role assignment removed"))

    scope, name, error = refused[0]
    what = f"role assignment {name} at {scope}"
    if force:
        return Deletion(
            done=True,
            result=outcome.not_ready(reasons.DELETION_BLOCKED, f"released by {api.FORCE_DELETE_ANNOTATION}"),
            warning=f"{what} may remain in Azure: released by {api.FORCE_DELETE_ANNOTATION} after {error}",
        )
    if error.error_class is not errors.ErrorClass.NEEDS_USER:
        failed = errors.outcome_for(error, action=f"deleting {what}")
        return Deletion(done=False, result=failed)
    elapsed = now - deleting_since if deleting_since is not None else 0.0
    if elapsed >= grace:
        return Deletion(
            done=True,
            result=outcome.not_ready(reasons.DELETION_BLOCKED, f"released after {int(grace)}s: {error}"),
            warning=f"{what} may remain in Azure: deletion was refused for {int(elapsed)}s ({error})",
        )
    remaining = int(grace - elapsed)
    return Deletion(
        done=False,
        result=outcome.not_ready(
            reasons.DELETION_BLOCKED,
            f"Azure refused to delete {what}: {error}. Grant the operator "
            "Microsoft.Authorization/roleAssignments/delete at the scope; the object is released anyway in "
            f"{remaining}s, or at once with the annotation {api.FORCE_DELETE_ANNOTATION}=true, and the "
            "assignment may then remain in Azure",
            retry_after=DELETION_RETRY_SECONDS,
        ),
    )
