"""Attach a user-assigned identity to the resources its `spec.attachTo` lists, and detach it from the rest.

A resource's `identity.userAssignedIdentities` is shared: a system-assigned identity and identities other
people attached live in the same block. So every change is a merge under the resource's identity lock:
GET the resource, and PATCH only our own entry (`{<our id>: {}}` to attach, `{<our id>: null}` to detach)
with the identity type recomputed from what the fresh GET showed (`SystemAssigned, UserAssigned` →
`SystemAssigned` when ours was the last user-assigned one, `UserAssigned` → `None`).

Which resources the object attached itself to is kept in its status (`status.attachments`), so removing
an entry from `spec.attachTo` detaches exactly that resource, even after a restart. Each attachment's state
is reported there; the first failure also decides the object's Ready condition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.resources import (
    UNSUPPORTED_CODES,
    IdentityPatch,
    ResourcePort,
    identity_type,
)
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.status import outcome, reasons

AttachmentPhase = Literal["Attached", "Failed", "Detaching", "Detached"]

ATTACHED: AttachmentPhase = "Attached"
FAILED: AttachmentPhase = "Failed"
DETACHING: AttachmentPhase = "Detaching"
DETACHED: AttachmentPhase = "Detached"
"""Only in results, never in status: this pass removed the identity from the resource."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttachmentState:
    """One entry of `status.attachments`."""

    resource_id: str
    state: AttachmentPhase
    reason: str
    message: str
    retry_after: float | None = None
    changed: bool = False
    """Whether this pass wrote the resource's identity block."""

    def to_status(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
        }


@dataclasses.dataclass(frozen=True)
class AttachmentsResult:
    states: tuple[AttachmentState, ...]
    detached: tuple[str, ...] = ()
    """Resources this pass detached the identity from (their identity block was written)."""

    @property
    def failures(self) -> tuple[AttachmentState, ...]:
        return tuple(s for s in self.states if s.state != ATTACHED)

    @property
    def status_field(self) -> list[dict[str, Any]] | None:
        """The value of `status.attachments` (`None` removes the field when there is nothing to report)."""
        return [s.to_status() for s in self.states] or None

    def problem(self) -> outcome.Outcome | None:
        """A Ready=False outcome for the failures (retry when any of them heals by itself), or None."""
        failures = self.failures
        if not failures:
            return None
        retries = [f.retry_after for f in failures if f.retry_after is not None]
        first = next((f for f in failures if f.retry_after is None), failures[0])
        return outcome.not_ready(
            first.reason,
            "; ".join(f.message for f in failures),
            retry_after=min(retries) if retries else None,
        )

    @property
    def changes(self) -> tuple[outcome.Change, ...]:
        attached = [
            outcome.Change(reason=outcome.UPDATED, message=s.message) for s in self.states if s.changed
        ]
        detached = [
            outcome.Change(reason=outcome.UPDATED, message=f"detached from {resource_id}")
            for resource_id in self.detached
        ]
        return (*attached, *detached)

    def combine(self, identity_outcome: outcome.Outcome) -> outcome.Outcome:
        """The object's outcome: the identity's own, unless it is Ready and an attachment is not."""
        observed = {**identity_outcome.observed, "attachments": self.status_field}
        problem = self.problem()
        changes = (*identity_outcome.changes, *self.changes)
        if not identity_outcome.ready or problem is None:
            message = identity_outcome.message
            if identity_outcome.ready and self.states:
                attached = sum(1 for s in self.states if s.state == ATTACHED)
                message += f"; attached to {attached} resource(s)"
            return dataclasses.replace(identity_outcome, message=message, observed=observed, changes=changes)
        return dataclasses.replace(problem, observed=observed, changes=changes)


def recorded_resource_ids(attachments: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The resources a previous status says this identity may be attached to."""
    return [str(a["resourceId"]) for a in attachments or () if a.get("resourceId")]


def _unique(resource_ids: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for resource_id in resource_ids:
        cleaned = resource_id.strip().rstrip("/")
        if cleaned and not any(ids.same_id(cleaned, s) for s in seen):
            seen.append(cleaned)
    return seen


async def reconcile_attachments(
    port: ResourcePort,
    *,
    identity_id: str,
    wanted: Sequence[str],
    recorded: Sequence[str],
    principal_id: str | None = None,
) -> AttachmentsResult:
    """Attach `identity_id` to every `wanted` resource and detach it from `recorded` ones no longer wanted.

    With `principal_id`, an attachment that a resource reports with another principal (the identity was
    deleted and created again under the same ID) is renewed: detached, then attached again.
    """
    wanted_ids = _unique(wanted)
    states = [await _attach(port, identity_id, resource_id, principal_id) for resource_id in wanted_ids]
    stale = [r for r in _unique(recorded) if not any(ids.same_id(r, w) for w in wanted_ids)]
    detached: list[str] = []
    for resource_id in stale:
        state = await _detach(port, identity_id, resource_id)
        if state is None:
            continue
        if state.state == DETACHED:
            detached.append(resource_id)
        else:
            states.append(state)
    return AttachmentsResult(tuple(states), tuple(detached))


async def detach_all(
    port: ResourcePort, *, identity_id: str, resource_ids: Sequence[str]
) -> AttachmentsResult:
    """Detach `identity_id` from every resource named; the result holds only what could not be detached."""
    results = [await _detach(port, identity_id, r) for r in _unique(resource_ids)]
    return AttachmentsResult(
        tuple(s for s in results if s is not None and s.state != DETACHED),
        tuple(s.resource_id for s in results if s is not None and s.state == DETACHED),
    )


async def _attach(
    port: ResourcePort, identity_id: str, resource_id: str, principal_id: str | None
) -> AttachmentState:
    def failed(reason: str, message: str, retry_after: float | None = None) -> AttachmentState:
        return AttachmentState(
            resource_id=resource_id,
            state=FAILED,
            reason=reason,
            message=f"attaching to {resource_id}: {message}",
            retry_after=retry_after,
        )

    try:
        parsed = ids.parse_resource_id(resource_id)
    except ids.InvalidResourceId as error:
        return failed(reasons.INVALID_SPEC, str(error))
    if parsed.scope_kind != "resource":
        return failed(reasons.INVALID_SPEC, f"a {parsed.scope_kind} cannot carry a managed identity")
    try:
        async with port.identity_lock(resource_id):
            resource = await port.get_resource(resource_id)
            if resource is None:
                return failed(reasons.RESOURCE_NOT_FOUND, "the resource does not exist in Azure")
            current = resource.identity
            existing = current.attached(identity_id)
            changed = existing is None
            if existing is not None and _stale(existing.principal_id, principal_id):
                others = current.others_than(identity_id)
                resource = await port.patch_identity(
                    resource,
                    IdentityPatch(
                        type=identity_type(
                            system_assigned=current.system_assigned,
                            user_assigned=bool(others),
                            like=current.type_spelling,
                        ),
                        user_assigned={identity_id: False} if others else {},
                    ),
                )
                current, existing, changed = resource.identity, None, True
            if existing is None:
                await port.patch_identity(
                    resource,
                    IdentityPatch(
                        type=identity_type(
                            system_assigned=current.system_assigned,
                            user_assigned=True,
                            like=current.type_spelling,
                        ),
                        user_assigned={identity_id: True},
                    ),
                )
    except errors.ArmError as error:
        if error.code in UNSUPPORTED_CODES:
            return failed(
                reasons.UNSUPPORTED_RESOURCE,
                f"{parsed.resource_type} cannot carry managed identities ({error.message})",
            )
        mapped = errors.outcome_for(error, action="Azure refused")
        return failed(mapped.reason, mapped.message, mapped.retry_after)
    return AttachmentState(
        resource_id=resource_id,
        state=ATTACHED,
        reason=reasons.SUCCEEDED,
        message=f"attached to {resource.name}",
        changed=changed,
    )


def _stale(attached_principal: str | None, principal_id: str | None) -> bool:
    """The resource holds the identity with a principal that no longer is the identity's."""
    if not attached_principal or not principal_id:
        return False
    return attached_principal.lower() != principal_id.lower()


async def _detach(port: ResourcePort, identity_id: str, resource_id: str) -> AttachmentState | None:
    """Detach from one resource: `None` when there was nothing to detach, a `DETACHED` state when this
    call detached it, a `DETACHING` one when Azure refused."""
    try:
        parsed = ids.parse_resource_id(resource_id)
    except ids.InvalidResourceId:
        return None  # never attached: an invalid ID was never written to Azure
    if parsed.scope_kind != "resource":
        return None
    try:
        async with port.identity_lock(resource_id):
            resource = await port.get_resource(resource_id)
            if resource is None:
                return None
            current = resource.identity
            if current.attached(identity_id) is None:
                return None
            others = current.others_than(identity_id)
            await port.patch_identity(
                resource,
                IdentityPatch(
                    type=identity_type(
                        system_assigned=current.system_assigned,
                        user_assigned=bool(others),
                        like=current.type_spelling,
                    ),
                    # With no user-assigned identity left, the type change alone removes ours; sending
                    # a null entry next to a type without UserAssigned is rejected by some providers.
                    user_assigned={identity_id: False} if others else {},
                ),
            )
    except errors.ArmError as error:
        if error.code in UNSUPPORTED_CODES:
            return None
        mapped = errors.outcome_for(error, action=f"detaching from {resource_id}")
        return AttachmentState(
            resource_id=resource_id,
            state=DETACHING,
            reason=mapped.reason,
            message=mapped.message,
            retry_after=mapped.retry_after,
        )
    return AttachmentState(
        resource_id=resource_id,
        state=DETACHED,
        reason=reasons.SUCCEEDED,
        message=f"detached from {resource_id}",
        changed=True,
    )


async def reconcile_for_identity(
    port: ResourcePort,
    *,
    identity_outcome: outcome.Outcome,
    attach_to: Sequence[str],
    status: Mapping[str, Any] | None,
) -> outcome.Outcome:
    """The attachments part of a `UserAssignedIdentity` reconcile, after the identity's own part.

    Azure is touched only once the identity is Ready (its ID is known and it exists); until then the
    previous `status.attachments` stands.
    """
    status = status or {}
    identity_id = identity_outcome.observed.get("id")  # as Azure reported it in this pass
    if not identity_outcome.ready or not identity_id:
        return identity_outcome
    principal_id = identity_outcome.observed.get("principalId")
    result = await reconcile_attachments(
        port,
        identity_id=str(identity_id),
        wanted=attach_to,
        recorded=recorded_resource_ids(status.get("attachments")),
        principal_id=str(principal_id) if principal_id else None,
    )
    return result.combine(identity_outcome)


async def detach_before_deletion(
    port: ResourcePort, *, identity_id: str, attach_to: Sequence[str], status: Mapping[str, Any] | None
) -> outcome.Outcome | None:
    """Detach the identity `identity_id` (as Azure reports it) from every resource it may be attached to.

    `None` when done; otherwise a `DeletionBlocked` outcome naming what is still attached (Azure keeps a
    dangling reference on a resource whose user-assigned identity is deleted, so this runs first). The
    resources recorded in status are only places to look: each is read, and only this identity's own entry
    is ever removed from it.
    """
    status = status or {}
    resource_ids = [*attach_to, *recorded_resource_ids(status.get("attachments"))]
    result = await detach_all(port, identity_id=str(identity_id), resource_ids=resource_ids)
    problem = result.problem()
    if problem is None:
        return None
    return outcome.not_ready(
        reasons.DELETION_BLOCKED,
        f"{problem.message}; the identity is deleted once it is detached "
        "(or set spec.deletionPolicy: Orphan to leave it and its attachments in Azure)",
        retry_after=problem.retry_after or flow.DELETION_RETRY_SECONDS,
        observed={"attachments": result.status_field},
    )
