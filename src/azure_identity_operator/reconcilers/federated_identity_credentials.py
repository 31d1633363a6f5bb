"""Reconcile a `FederatedIdentityCredential`: make the referenced identity trust the declared issuer/subject.

One function for create, update, resume, the drift check and the wake-up from the identity: wait until the
referenced `UserAssignedIdentity` is Ready, read the credential under it, and write it only when it is
missing (also after the identity was re-created, which takes its credentials with it) or differs. Before a
write it checks Azure's two limits so the condition names the fix: at most 20 credentials per identity,
and one credential per (issuer, subject) pair. Callers serialize writes per identity, which Azure requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_identity_operator.api import federated_identity_credential as api
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.api.user_assigned_identity import InvalidSpecError
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.identities import FederatedCredential, IdentityPort, IdentityRef
from azure_identity_operator.reconcilers.user_assigned_identities import GONE_CODES
from azure_identity_operator.status import outcome, reasons

MAX_CREDENTIALS_PER_IDENTITY = 20
IDENTITY_GONE_RETRY_SECONDS = 10.0
DELETION_RETRY_SECONDS = 5.0
"""First retry of a deletion Azure refused for a reason the user must fix; doubles up to 5 minutes."""


def desired_from_spec(
    spec: Mapping[str, Any] | None, *, object_name: str, namespace: str, default_issuer: str | None
) -> api.DesiredCredential:
    desired = api.desired_credential(
        api.parse_spec(spec), object_name=object_name, namespace=namespace, default_issuer=default_issuer
    )
    if not ids.is_valid_federated_credential_name(desired.name):
        source = "spec.azureName" if desired.name != object_name else "metadata.name (set spec.azureName)"
        raise InvalidSpecError(
            f"{source}: {desired.name!r} is not a valid federated credential name "
            "(3-120 letters, digits, '-' or '_', starting with a letter or digit)"
        )
    return desired


def identity_ref_of(resource_id: str) -> IdentityRef | None:
    """The identity a user-assigned identity ID (or an ID of one of its credentials) points at."""
    try:
        parsed = ids.parse_resource_id(resource_id)
    except ids.InvalidResourceId:
        return None
    if parsed.resource_group is None or not parsed.names:
        return None
    return IdentityRef(parsed.subscription_id, parsed.resource_group, parsed.names[0])


def identity_id_for(identity: PrincipalSnapshot | None, status: Mapping[str, Any] | None) -> str | None:
    """The ID of the identity whose credential this object owns: the one recorded in status (where it
    wrote), else the one its reference resolves to now. Also the key of the per-identity write lock."""
    recorded = (status or {}).get("identityId")
    if isinstance(recorded, str) and recorded:
        return recorded
    if identity is not None and identity.resource_id:
        return identity.resource_id
    return None


async def reconcile(
    port: IdentityPort,
    spec: Mapping[str, Any] | None,
    *,
    object_name: str,
    namespace: str,
    default_issuer: str | None,
    identity: PrincipalSnapshot | None,
) -> outcome.Outcome:
    try:
        desired = desired_from_spec(
            spec, object_name=object_name, namespace=namespace, default_issuer=default_issuer
        )
    except InvalidSpecError as error:
        return outcome.not_ready(reasons.INVALID_SPEC, str(error))

    if identity is None:
        return outcome.not_ready(
            reasons.REFERENCE_NOT_FOUND,
            f"UserAssignedIdentity {desired.identity_name!r} does not exist in namespace {namespace!r}; "
            "create it or correct spec.identityRef.name (this credential follows as soon as it is Ready)",
        )
    if identity.deleting:
        return outcome.not_ready(
            reasons.WAITING_FOR_IDENTITY,
            f"UserAssignedIdentity {desired.identity_name!r} is being deleted",
        )
    ref = identity_ref_of(identity.resource_id or "") if identity.usable_principal else None
    if ref is None:
        return outcome.not_ready(
            reasons.WAITING_FOR_IDENTITY,
            f"waiting for UserAssignedIdentity {desired.identity_name!r} to be Ready",
        )

    where = f"federated credential {desired.name!r} of identity {ref.name!r}"
    try:
        current = await port.get_federated_credential(ref, desired.name)
        if current is None or not _matches(current, desired):
            refusal = await _check_limits(port, ref, desired, creating=current is None)
            if refusal is not None:
                return refusal
            current = await port.create_or_update_federated_credential(
                ref,
                name=desired.name,
                issuer=desired.issuer,
                subject=desired.subject,
                audiences=desired.audiences,
            )
    except errors.ArmError as error:
        if error.code in GONE_CODES or error.status == 404:
            # The identity vanished from Azure behind our back; its drift check re-creates it, and the
            # new principal wakes this object. The retry is only a safety net.
            return outcome.not_ready(
                reasons.WAITING_FOR_IDENTITY,
                f"identity {ref.name!r} no longer exists in Azure; waiting for it to be re-created",
                retry_after=IDENTITY_GONE_RETRY_SECONDS,
            )
        return _explained(error, action=f"writing {where}")

    return outcome.succeeded(
        f"identity {ref.name!r} trusts subject {desired.subject!r} from issuer {desired.issuer!r}",
        observed={
            "id": current.id or f"{ref.id}/federatedIdentityCredentials/{desired.name}",
            "identityId": ref.id,
            "azureName": desired.name,
            "issuer": desired.issuer,
            "subject": desired.subject,
        },
    )


async def cleanup(
    port: IdentityPort,
    spec: Mapping[str, Any] | None,
    *,
    object_name: str,
    namespace: str,
    default_issuer: str | None,
    identity: PrincipalSnapshot | None,
    status: Mapping[str, Any] | None,
) -> outcome.Outcome | None:
    """Delete the one credential this object owns; `None` when done (404 included), else why not yet."""
    status = status or {}
    try:
        parsed = api.parse_spec(spec)
    except InvalidSpecError:
        parsed = None
    if parsed is not None and parsed.deletion_policy == "Orphan":
        return None
    name = status.get("azureName")
    if not name and parsed is not None:
        name = (parsed.azure_name or object_name).strip()
    identity_id = identity_id_for(identity, status)
    ref = identity_ref_of(identity_id) if identity_id else None
    if ref is None or not name:
        # Nothing was ever written for this object: no identity to hold a credential.
        return None
    try:
        if not status.get("id"):
            # Nothing recorded: the operator may have stopped between Azure's write and the status write,
            # or never wrote at all (a Conflict, a limit). Delete only a credential that matches the spec.
            try:
                desired = desired_from_spec(
                    spec, object_name=object_name, namespace=namespace, default_issuer=default_issuer
                )
            except InvalidSpecError:
                return None
            current = await port.get_federated_credential(ref, name)
            if current is None or not _matches(current, desired):
                return None
        await port.delete_federated_credential(ref, name)
    except errors.ArmError as error:
        if error.code in GONE_CODES or error.status == 404:
            return None  # gone, or gone with its identity
        retry = errors.outcome_for(error, action="").retry_after
        return outcome.not_ready(
            reasons.DELETION_BLOCKED,
            f"deleting federated credential {name!r} of identity {ref.name!r}: {error}; the object keeps "
            "its finalizer until Azure confirms (or set spec.deletionPolicy: Orphan to leave it)",
            retry_after=retry or DELETION_RETRY_SECONDS,
        )
    return None


async def _check_limits(
    port: IdentityPort, ref: IdentityRef, desired: api.DesiredCredential, *, creating: bool
) -> outcome.Outcome | None:
    others = [c for c in await port.list_federated_credentials(ref) if c.name.lower() != desired.name.lower()]
    for other in others:
        if other.issuer == desired.issuer and other.subject == desired.subject:
            return outcome.not_ready(
                reasons.CONFLICT,
                f"identity {ref.name!r} already trusts subject {desired.subject!r} from issuer "
                f"{desired.issuer!r} through federated credential {other.name!r}; Azure allows one "
                "credential per issuer and subject: delete one of them or change the subject",
            )
    if creating and len(others) >= MAX_CREDENTIALS_PER_IDENTITY:
        return outcome.not_ready(
            reasons.CREDENTIAL_LIMIT_REACHED,
            f"identity {ref.name!r} already has {len(others)} federated credentials, the most Azure "
            f"allows ({MAX_CREDENTIALS_PER_IDENTITY}); delete one or use another identity",
        )
    return None


def _matches(current: FederatedCredential, desired: api.DesiredCredential) -> bool:
    return (
        current.issuer == desired.issuer
        and current.subject == desired.subject
        and tuple(current.audiences) == desired.audiences
    )


def _explained(error: errors.ArmError, *, action: str) -> outcome.Outcome:
    """Azure's own refusals of the limits, mapped to the same reasons as the pre-checks."""
    text = error.message.lower()
    if error.status in (400, 409) and "issuer and subject" in text:
        return outcome.not_ready(reasons.CONFLICT, f"{action}: {error}")
    if error.status in (400, 409) and ("maximum" in text or "limit" in text) and "credential" in text:
        return outcome.not_ready(reasons.CREDENTIAL_LIMIT_REACHED, f"{action}: {error}")
    return errors.outcome_for(error, action=action)
