"""`FederatedIdentityCredential`: make the referenced identity trust the declared issuer and subject.

`ensure` first refuses what would let another namespace's workloads in: a raw `subject` naming a
ServiceAccount of another namespace, trusted through this cluster's issuer, is `ForbiddenSubject` and
nothing is written to Azure. It then waits until the referenced `UserAssignedIdentity` is Ready and
observed in Azure, reads the credential under it, and writes it only when it is missing (also after the
identity was re-created, which takes its credentials with it) or differs. Before a write it checks Azure's
two limits so the condition names the fix: at most 20 credentials per identity, and one credential per
(issuer, subject) pair. Writes under one identity are serialized, as Azure requires.

A credential written for a ServiceAccount of this cluster (`serviceAccountRef`) is then checked against
the cluster, and stays in Azure whatever the check finds: an issuer other than the cluster's is
`IssuerMismatch` (no token of this cluster will ever match it); a ServiceAccount that does not exist is
`ServiceAccountNotFound`, retried until it exists, when the reconcile announces it (`ServiceAccountFound`).
The operator does not watch ServiceAccounts: the bulk drift check GETs each one a Ready credential trusts
(a Kubernetes read, no ARM) and reconciles the credentials whose ServiceAccount is gone.

A Kubernetes failure reading the ServiceAccount says nothing about it. A drift check of a Ready credential
then keeps Ready and looks again soon, as a drift check that fails on a transient Azure error keeps the
last known good status: the credential in Azure is as declared, and flipping Ready on an API server's
hiccup would page people for nothing. Any other pass (a new or changed spec, a credential not Ready) has no
good status to keep and reports `OperatorError`: progress, retried with backoff, a Warning Event, since a
lasting failure (the operator's RBAC lacking `get` on ServiceAccounts) is the operator's to fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from azure_identity_operator.api import constants
from azure_identity_operator.api import federated_identity_credential as api
from azure_identity_operator.api.user_assigned_identity import InvalidSpecError
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.identities import FederatedCredential, IdentityPort, IdentityRef
from azure_identity_operator.locks import KeyedLocks, arm_id_key
from azure_identity_operator.reconcilers import access, flow
from azure_identity_operator.reconcilers.kube_port import ClusterIssuer, KubernetesError, ServiceAccountPort
from azure_identity_operator.status import conditions, outcome, reasons

logger = logging.getLogger(__name__)

IDENTITY_KIND = constants.USER_ASSIGNED_IDENTITY

MAX_CREDENTIALS_PER_IDENTITY = 20
IDENTITY_GONE_RETRY_SECONDS = 10.0
SERVICE_ACCOUNT_RETRY_SECONDS = 30.0
"""First look again at a ServiceAccount that does not exist (or could not be read); the controller doubles
it up to its cap, never past the next drift check. A `reconcile-now` annotation looks at once."""
SERVICE_ACCOUNT_FOUND = "ServiceAccountFound"
"""The Normal Event of the reconcile that finds the ServiceAccount a credential was reported waiting for."""


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


_identity_locks = KeyedLocks(arm_id_key)


def identity_write_lock(identity_id: str) -> asyncio.Lock:
    """The lock serializing credential writes under one identity: Azure refuses concurrent ones (409
    `ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity`, still retried for writers
    outside this process)."""
    return _identity_locks.lock(identity_id)


class FederatedIdentityCredentialHooks(flow.BaseHooks[api.DesiredCredential]):
    kind = constants.FEDERATED_IDENTITY_CREDENTIAL
    action = "reconciling the federated credential"
    removal = "deleting the federated credential"

    def __init__(
        self, identities: IdentityPort, service_accounts: ServiceAccountPort, *, issuer: ClusterIssuer
    ) -> None:
        self._identities = identities
        self._service_accounts = service_accounts
        self._issuer = issuer
        """Read at every reconcile: the issuer discovered at start-up arrives after this is built."""

    def parse(self, obj: flow.ObjectState) -> api.DesiredCredential:
        return desired_from_spec(
            obj.spec, object_name=obj.name, namespace=obj.namespace, default_issuer=self._issuer.value
        )

    def deletion_policy(self, spec: api.DesiredCredential) -> str:
        return spec.deletion_policy

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        ref = spec.get("identityRef") or {}
        name = ref.get("name") if isinstance(ref, Mapping) else None
        return (IDENTITY_KIND.kind, name) if isinstance(name, str) and name else None

    def requests(self, obj: flow.ObjectState, spec: api.DesiredCredential) -> list[access.Request]:
        named = api.service_account_of(spec.subject)
        own_account = (
            named is not None and named[0].lower() == obj.namespace.lower() and self._trusts_cluster(spec)
        )
        return [access.Trust(issuer=spec.issuer, subject=spec.subject, own_account=own_account)]

    async def ensure(self, obj: flow.ObjectState, spec: api.DesiredCredential) -> outcome.Outcome:
        forbidden = self._forbidden(obj, spec)
        if forbidden is not None:
            return forbidden
        identity = obj.identity
        if identity is None:
            return outcome.not_ready(
                reasons.REFERENCE_NOT_FOUND,
                f"UserAssignedIdentity {spec.identity_name!r} does not exist in namespace "
                f"{obj.namespace!r}; create it or correct spec.identityRef.name (this credential follows "
                "as soon as it is Ready)",
            )
        if identity.deleting:
            return outcome.not_ready(
                reasons.WAITING_FOR_IDENTITY, f"UserAssignedIdentity {spec.identity_name!r} is being deleted"
            )
        ref = identity_ref_of(identity.resource_id or "") if identity.usable_principal else None
        if ref is None:
            return outcome.not_ready(
                reasons.WAITING_FOR_IDENTITY,
                f"waiting for UserAssignedIdentity {spec.identity_name!r} to be Ready",
            )
        async with identity_write_lock(ref.id):
            written = await self._ensure_under(obj, spec, ref)
        if not written.ready:
            return written
        return await self._checked_in_cluster(obj, spec, ref, written)

    def _forbidden(self, obj: flow.ObjectState, desired: api.DesiredCredential) -> outcome.Outcome | None:
        """`ForbiddenSubject` for a raw subject that names a ServiceAccount of another namespace and trusts
        this cluster's issuer: it would let that namespace's pods act as this namespace's identity."""
        named = api.service_account_of(desired.subject) if desired.service_account is None else None
        if named is None or named[0].lower() == obj.namespace.lower() or not self._trusts_cluster(desired):
            return None
        namespace, name = named
        return outcome.not_ready(
            reasons.FORBIDDEN_SUBJECT,
            f"spec.subject {desired.subject!r} is ServiceAccount {namespace}/{name} of another namespace, "
            f"trusted through this cluster's issuer {desired.issuer!r}: a credential in namespace "
            f"{obj.namespace!r} may only trust ServiceAccounts of its own namespace, so nothing is written "
            "to Azure; use spec.serviceAccountRef for a ServiceAccount of this namespace, or declare the "
            f"credential in namespace {namespace!r}",
        )

    def _trusts_cluster(self, desired: api.DesiredCredential) -> bool:
        """Whether the credential's issuer is this cluster's: defaulted to it, or the same URL up to case
        and a trailing slash (looser than Azure's exact match, so no spelling of it escapes the guard)."""
        if desired.issuer_defaulted:
            return True
        cluster = self._issuer.value
        return cluster is not None and _issuer_key(desired.issuer) == _issuer_key(cluster)

    def _mismatched_issuer(self, desired: api.DesiredCredential) -> str | None:
        """The cluster's issuer, when a credential for a ServiceAccount of this cluster names another one
        (compared exactly, as Azure compares a token's `iss`)."""
        cluster = self._issuer.value
        if desired.service_account is None or cluster is None or desired.issuer == cluster:
            return None
        return cluster

    async def _checked_in_cluster(
        self,
        obj: flow.ObjectState,
        desired: api.DesiredCredential,
        ref: IdentityRef,
        written: outcome.Outcome,
    ) -> outcome.Outcome:
        """`written` (Azure holds the credential) as far as this cluster can use it: the issuer its tokens
        carry, and the ServiceAccount `serviceAccountRef` names."""
        if desired.service_account is None:
            return written
        where = f"federated credential {desired.name!r} of identity {ref.name!r}"
        account = f"{obj.namespace}/{desired.service_account}"
        cluster = self._mismatched_issuer(desired)
        if cluster is not None:
            return _held(
                written,
                reasons.ISSUER_MISMATCH,
                f"{where} is in Azure, but it trusts ServiceAccount {account} of this cluster through issuer "
                f"{desired.issuer!r}, and this cluster's tokens are issued by {cluster!r}: no token of this "
                "cluster will ever match it; remove spec.issuer to use the cluster's issuer (or, for a "
                "ServiceAccount of another cluster, set spec.subject instead of spec.serviceAccountRef)",
            )
        try:
            found = await self._service_accounts.read_service_account(
                namespace=obj.namespace, name=desired.service_account
            )
        except KubernetesError as error:
            logger.warning("Could not read ServiceAccount %s: %s", account, error)
            if not obj.spec_changed and conditions.is_ready(obj.status):
                # A drift check of a Ready credential: keep the last known good status (module docstring).
                return dataclasses.replace(written, retry_after=SERVICE_ACCOUNT_RETRY_SECONDS)
            return _held(
                written,
                reasons.OPERATOR_ERROR,
                f"{where} is in Azure, but reading ServiceAccount {account} failed ({error}); retrying",
                retry_after=flow.UNEXPECTED_ERROR_RETRY_SECONDS,
            )
        if found is None:
            return _held(
                written,
                reasons.SERVICE_ACCOUNT_NOT_FOUND,
                f"{where} is in Azure, but no pod can use it until ServiceAccount {account} exists: create "
                "the ServiceAccount (or correct spec.serviceAccountRef.name)",
                retry_after=SERVICE_ACCOUNT_RETRY_SECONDS,
            )
        if _ready_reason(obj.status) == reasons.SERVICE_ACCOUNT_NOT_FOUND and (
            obj.status.get("subject") == desired.subject
        ):
            found_now = outcome.Change(
                reason=SERVICE_ACCOUNT_FOUND,
                message=f"ServiceAccount {account} exists now: its pods can sign in as identity {ref.name!r}",
            )
            return dataclasses.replace(written, changes=(*written.changes, found_now))
        return written

    async def _ensure_under(
        self, obj: flow.ObjectState, desired: api.DesiredCredential, ref: IdentityRef
    ) -> outcome.Outcome:
        where = f"federated credential {desired.name!r} of identity {ref.name!r}"
        changes: tuple[outcome.Change, ...] = ()
        try:
            current = await self._identities.get_federated_credential(ref, desired.name)
            if current is None or not _matches(current, desired):
                refusal = await _check_limits(self._identities, ref, desired, creating=current is None)
                if refusal is not None:
                    return refusal
                if current is None:
                    change = outcome.Change(reason=outcome.CREATED, message=f"created {where}")
                elif obj.spec_changed:
                    change = outcome.Change(reason=outcome.UPDATED, message=f"updated {where}")
                else:
                    change = outcome.Change(
                        reason=outcome.DRIFT_REPAIRED,
                        message=f"{where} was changed in Azure: made it match the spec again",
                    )
                current = await self._identities.create_or_update_federated_credential(
                    ref,
                    name=desired.name,
                    issuer=desired.issuer,
                    subject=desired.subject,
                    audiences=desired.audiences,
                )
                changes = (change,)
        except errors.ArmError as error:
            if error.is_gone:
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
            changes=changes,
        )

    async def survey(self, objects: Sequence[flow.ObjectState]) -> dict[str, flow.Verdict]:
        """Drift check of many credentials: one list per identity instead of a GET per credential.

        A credential matches when Azure holds it under the identity the spec references (as Azure
        reported that identity) trusting exactly the declared issuer, subject and audiences, and the
        ServiceAccount `serviceAccountRef` names still exists (one Kubernetes GET per ServiceAccount).
        """
        verdicts: dict[str, flow.Verdict] = {}
        by_identity: dict[str, list[tuple[flow.ObjectState, api.DesiredCredential]]] = {}
        refs: dict[str, IdentityRef] = {}
        accounts: dict[str, flow.Verdict | None] = {}
        for obj in objects:
            key = flow.object_key(obj)
            identity = obj.identity
            ref = (
                identity_ref_of(identity.resource_id or "")
                if identity and identity.usable_principal
                else None
            )
            try:
                desired = self.parse(obj)
            except InvalidSpecError:
                ref = None
            if ref is None:
                verdicts[key] = flow.Verdict(drifted=True, why="no usable identity")
                continue
            if self._forbidden(obj, desired) is not None or self._mismatched_issuer(desired) is not None:
                verdicts[key] = flow.Verdict(drifted=True, why="the credential trusts the wrong tokens")
                continue
            if desired.service_account is not None:
                account = f"{obj.namespace}/{desired.service_account}"
                if account not in accounts:
                    accounts[account] = await self._service_account_verdict(obj.namespace, desired)
                if (verdict := accounts[account]) is not None:
                    verdicts[key] = verdict
                    continue
            refs[ref.id.lower()] = ref
            by_identity.setdefault(ref.id.lower(), []).append((obj, desired))
        for identity_id, members in by_identity.items():
            try:
                listed = await self._identities.list_federated_credentials(refs[identity_id])
            except errors.ArmError as error:
                verdicts.update({flow.object_key(obj): flow.unlisted(error) for obj, _ in members})
                continue
            by_name = {credential.name.lower(): credential for credential in listed}
            for obj, desired in members:
                current = by_name.get(desired.name.lower())
                matches = (
                    current is not None
                    and _matches(current, desired)
                    and ids.same_id(str(obj.status.get("identityId") or ""), refs[identity_id].id)
                )
                verdicts[flow.object_key(obj)] = flow.Verdict(drifted=not matches)
        return verdicts

    async def _service_account_verdict(
        self, namespace: str, desired: api.DesiredCredential
    ) -> flow.Verdict | None:
        """A drift check's verdict from the ServiceAccount alone: drifted when it is gone, failed when it
        could not be read (the status is kept), `None` when it exists and Azure decides."""
        name = str(desired.service_account)
        try:
            found = await self._service_accounts.read_service_account(namespace=namespace, name=name)
        except KubernetesError as error:
            logger.warning("Could not read ServiceAccount %s/%s: %s", namespace, name, error)
            return flow.Verdict(failed=reasons.OPERATOR_ERROR, why=str(error))
        if found is None:
            return flow.Verdict(drifted=True, why=f"ServiceAccount {namespace}/{name} does not exist")
        return None

    async def remove(self, obj: flow.ObjectState, spec: api.DesiredCredential) -> flow.Removal:
        """Delete the one credential this object owns, if Azure shows it is this object's.

        Where to look: under the identity the spec references, as Azure reported it; only when that
        identity object is gone, under the status's `identityId`. What to delete: the credential named as
        the spec names it, if Azure shows it trusting what the spec declares, or exactly what the status
        records this object wrote there (a spec changed since). A same-named credential someone else wrote,
        or a status pointed elsewhere, never loses anyone's trust.
        """
        identity = obj.identity
        if identity is not None and identity.resource_id:
            ref = identity_ref_of(identity.resource_id)
        else:
            recorded = obj.status.get("identityId")
            ref = identity_ref_of(recorded) if isinstance(recorded, str) and recorded else None
        if ref is None:
            return flow.removed("no identity holds a credential of this object")
        where = f"federated credential {spec.name!r} of identity {ref.name!r}"
        async with identity_write_lock(ref.id):
            current = await self._identities.get_federated_credential(ref, spec.name)
            if current is None:
                return flow.removed(f"{where} is not in Azure")
            if not _matches(current, spec) and not _written_by(obj.status, ref, current):
                return flow.removed(f"{where} trusts something this object never declared: left in Azure")
            await self._identities.delete_federated_credential(ref, spec.name)
        return flow.removed(
            f"deleted {where}", outcome.Change(reason=outcome.DELETED, message=f"deleted {where}")
        )


def _held(
    written: outcome.Outcome, reason: str, message: str, *, retry_after: float | None = None
) -> outcome.Outcome:
    """Not Ready for `reason`, although Azure holds the credential `written` reports (its status fields
    and changes are kept: the removal finds what was written)."""
    return outcome.not_ready(
        reason, message, retry_after=retry_after, observed=written.observed, changes=written.changes
    )


def _ready_reason(status: Mapping[str, Any]) -> str | None:
    ready = conditions.find_condition(status.get("conditions"), conditions.READY)
    return str(ready.get("reason")) if ready is not None else None


def _issuer_key(issuer: str) -> tuple[str, str, str, str]:
    parts = urlsplit(issuer.strip())
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query)


def _written_by(status: Mapping[str, Any], ref: IdentityRef, current: FederatedCredential) -> bool:
    """Whether Azure holds exactly the credential the status records this object wrote under `ref`."""
    recorded_identity = status.get("identityId")
    return (
        isinstance(recorded_identity, str)
        and ids.same_id(recorded_identity, ref.id)
        and str(status.get("azureName") or "").lower() == current.name.lower()
        and status.get("issuer") == current.issuer
        and status.get("subject") == current.subject
    )


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
