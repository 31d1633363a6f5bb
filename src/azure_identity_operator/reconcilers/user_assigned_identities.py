"""Reconcile a `UserAssignedIdentity`: make Azure hold the identity the spec declares, and report its IDs.

One function for create, update, resume and the drift check: read the identity, create it when it is
missing (an identity deleted behind our back is created again and its new IDs reported), adopt one that
already exists under that name, converge its tags when they differ, and write nothing otherwise. Cleanup
honours `deletionPolicy` and treats "already gone" as done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_identity_operator.api import user_assigned_identity as api
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.identities import Identity, IdentityPort, IdentityRef
from azure_identity_operator.status import outcome, reasons

GONE_CODES = frozenset(
    {
        "ResourceNotFound",
        "NotFound",
        "ResourceGroupNotFound",
        "ParentResourceNotFound",
        "SubscriptionNotFound",
    }
)
"""Codes that, when deleting, mean the thing is already gone (with its resource group or subscription)."""

DELETION_RETRY_SECONDS = 5.0
"""First retry of a deletion Azure refused for a reason the user must fix; doubles up to 5 minutes."""


def desired_from_spec(
    spec: Mapping[str, Any] | None, *, object_name: str, default_subscription_id: str
) -> api.DesiredIdentity:
    """Parse and validate the spec with Azure's rules; raise `InvalidSpecError` saying what to fix."""
    desired = api.desired_identity(
        api.parse_spec(spec), object_name=object_name, default_subscription_id=default_subscription_id
    )
    if not ids.is_guid(desired.subscription_id):
        raise api.InvalidSpecError(f"spec.subscriptionId {desired.subscription_id!r} is not a GUID")
    if not ids.is_valid_resource_group_name(desired.resource_group):
        raise api.InvalidSpecError(
            f"spec.resourceGroup {desired.resource_group!r} is not a valid resource group name "
            "(1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.')"
        )
    if not ids.is_valid_identity_name(desired.name):
        source = "spec.azureName" if desired.name != object_name else "metadata.name (set spec.azureName)"
        raise api.InvalidSpecError(
            f"{source}: {desired.name!r} is not a valid identity name "
            "(3-128 letters, digits, '-' or '_', starting with a letter or digit)"
        )
    return desired


def identity_ref(desired: api.DesiredIdentity) -> IdentityRef:
    return IdentityRef(desired.subscription_id, desired.resource_group, desired.name)


async def reconcile(
    port: IdentityPort,
    spec: Mapping[str, Any] | None,
    *,
    object_name: str,
    default_subscription_id: str,
    default_tenant_id: str | None,
    status: Mapping[str, Any] | None,
) -> outcome.Outcome:
    try:
        desired = desired_from_spec(
            spec, object_name=object_name, default_subscription_id=default_subscription_id
        )
    except api.InvalidSpecError as error:
        return outcome.not_ready(reasons.INVALID_SPEC, str(error))
    ref = identity_ref(desired)
    where = f"identity {ref.name!r} in resource group {ref.resource_group!r}"
    status = status or {}
    try:
        current = await port.get_identity(ref)
    except errors.ArmError as error:
        return _explained(error, action=f"reading {where}", desired=desired)

    adopted = bool(status.get("adopted", False))
    if current is None:
        try:
            current = await port.create_or_update_identity(ref, location=desired.location, tags=desired.tags)
        except errors.ArmError as error:
            return _explained(error, action=f"creating {where}", desired=desired)
        # Created by this object, or created again after a deletion behind our back (new IDs).
        adopted = False
    elif not status.get("id"):
        # Found under this name before this object recorded any identity: taken over as it is.
        adopted = True

    if _normalized_location(current.location) != _normalized_location(desired.location):
        return outcome.not_ready(
            reasons.CONFLICT,
            f"{where} already exists in location {current.location!r}, not {desired.location!r}; "
            "an identity cannot move: set spec.location to its location or choose another spec.azureName",
        )
    if dict(current.tags) != dict(desired.tags):
        try:
            current = await port.update_identity_tags(ref, tags=desired.tags)
        except errors.ArmError as error:
            return _explained(error, action=f"updating the tags of {where}", desired=desired)

    return outcome.succeeded(
        f"{'adopted ' if adopted else ''}{where} is ready (client ID {current.client_id})",
        observed=_observed(current, default_tenant_id, adopted),
    )


async def cleanup(
    port: IdentityPort,
    spec: Mapping[str, Any] | None,
    *,
    object_name: str,
    default_subscription_id: str,
    status: Mapping[str, Any] | None,
) -> outcome.Outcome | None:
    """Delete what the object owns unless its policy is Orphan; `None` when done, else why it is blocked."""
    status = status or {}
    try:
        parsed = api.parse_spec(spec)
    except api.InvalidSpecError:
        parsed = None
    if parsed is not None and parsed.deletion_policy == "Orphan":
        return None
    try:
        ref = _recorded_ref(status)
        if ref is None:
            # Nothing recorded: the operator may have stopped between Azure's create and the status write,
            # or the object never took the identity over (a Conflict). Delete only an identity that
            # matches the spec, never one that merely shares the name.
            try:
                desired = desired_from_spec(
                    spec, object_name=object_name, default_subscription_id=default_subscription_id
                )
            except api.InvalidSpecError:
                return None
            ref = identity_ref(desired)
            current = await port.get_identity(ref)
            if current is None or _normalized_location(current.location) != _normalized_location(
                desired.location
            ):
                return None
        await port.delete_identity(ref)
    except errors.ArmError as error:
        if error.code in GONE_CODES or error.status == 404:
            return None
        retry = errors.outcome_for(error, action="").retry_after
        where = f"identity {ref.name!r} in resource group {ref.resource_group!r}" if ref else "the identity"
        return outcome.not_ready(
            reasons.DELETION_BLOCKED,
            f"deleting {where}: {error}; "
            "the object keeps its finalizer until Azure confirms the deletion "
            "(or set spec.deletionPolicy: Orphan to leave the identity in Azure)",
            retry_after=retry or DELETION_RETRY_SECONDS,
        )
    return None


def _recorded_ref(status: Mapping[str, Any]) -> IdentityRef | None:
    """The identity the object's status records as its own."""
    recorded = status.get("id")
    if not isinstance(recorded, str) or not recorded:
        return None
    try:
        parsed = ids.parse_resource_id(recorded)
    except ids.InvalidResourceId:
        return None
    if parsed.resource_group is None or not parsed.names:
        return None
    return IdentityRef(parsed.subscription_id, parsed.resource_group, parsed.names[-1])


def _explained(error: errors.ArmError, *, action: str, desired: api.DesiredIdentity) -> outcome.Outcome:
    """The classified outcome, with a hint where the fix is on the user's side."""
    result = errors.outcome_for(error, action=action)
    if error.code == "ResourceGroupNotFound":
        return outcome.not_ready(
            result.reason,
            f"{result.message}. Create resource group {desired.resource_group!r} in subscription "
            f"{desired.subscription_id} or correct spec.resourceGroup",
            retry_after=result.retry_after,
        )
    if error.code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
        return outcome.not_ready(
            result.reason,
            f"{result.message}. Correct spec.subscriptionId (it defaults to the operator's "
            "AZURE_SUBSCRIPTION_ID) or give the operator access to that subscription",
            retry_after=result.retry_after,
        )
    return result


def _observed(identity: Identity, default_tenant_id: str | None, adopted: bool) -> dict[str, Any]:
    return {
        "id": identity.id,
        "principalId": identity.principal_id,
        "clientId": identity.client_id,
        "tenantId": identity.tenant_id or default_tenant_id,
        "adopted": adopted,
    }


def _normalized_location(location: str) -> str:
    """ARM answers `westeurope` for `West Europe`."""
    return "".join(location.split()).lower()
