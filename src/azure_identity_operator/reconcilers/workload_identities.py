"""`WorkloadIdentity`: keep its parts (objects of the other kinds) matching its spec, annotate its
ServiceAccount, and report one Ready for the whole.

This kind never calls Azure itself: its parts do, each through its own kind's reconcile, and it reads
their Ready conditions from the controller's view of them (no Kubernetes read). `ensure`:

1. refuses to take over an object of a part's name that it does not own (`Conflict`), and a
   ServiceAccount another WorkloadIdentity of the namespace already declares;
2. creates the parts that are missing, puts back the spec of a part someone edited, and deletes the parts
   it owns that the spec no longer asks for (a removed role: its RoleAssignment, whose finalizer removes
   the Azure assignment);
3. sets `azure.workload.identity/client-id` and `tenant-id` on the ServiceAccount, from the identity as
   *Azure* reported it to this process (never from a status), and nothing else of it;
4. reports `Ready=True` only when every part is Ready and the ServiceAccount is annotated; otherwise the
   reason and message of the part that needs attention, parts needing a person first.

`remove` deletes every part it owns, waits until their own finalizers have cleaned Azure up (each per the
`deletionPolicy` the WorkloadIdentity passed on), then removes the two annotations.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.api import workload_identity as api
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.reconcilers.kube_port import (
    KubernetesError,
    OwnedObjectsPort,
    ServiceAccountPort,
)
from azure_identity_operator.status import outcome, reasons

SERVICE_ACCOUNT_RETRY_SECONDS = 30.0
"""How often a missing ServiceAccount is looked for (a Kubernetes read; Azure is not involved)."""
KUBERNETES_RETRY_SECONDS = 10.0
PART_GONE_RETRY_SECONDS = 5.0
"""While parts being deleted finish their Azure cleanup (their deletion also wakes this object)."""

SERVICE_ACCOUNT = "ServiceAccount"


def _sharing_key(account: str) -> str:
    return f"{SERVICE_ACCOUNT}/{account}"


def _matches(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return dict(current) == dict(desired)


def _part_line(kind: str, name: str, ready: str, reason: str, message: str = "") -> dict[str, Any]:
    line: dict[str, Any] = {"kind": kind, "name": name, "ready": ready, "reason": reason}
    if message and ready != "True":
        line["message"] = message
    return line


class WorkloadIdentityHooks(flow.BaseHooks[api.DesiredWorkload]):
    kind = constants.WORKLOAD_IDENTITY
    action = "reconciling the workload identity"
    removal = "deleting the workload identity's parts"

    def __init__(self, owned: OwnedObjectsPort, service_accounts: ServiceAccountPort) -> None:
        self._owned = owned
        self._service_accounts = service_accounts

    def parse(self, obj: flow.ObjectState) -> api.DesiredWorkload:
        return api.desired_workload(api.parse_spec(obj.spec), name=obj.name)

    def deletion_policy(self, spec: api.DesiredWorkload) -> str:
        # The parts carry the policy for Azure; the Kubernetes side (parts, annotations) always goes.
        return "Delete"

    def reference(self, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        ref = spec.get("identityRef")
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str) and ref["name"]:
            return (constants.USER_ASSIGNED_IDENTITY.kind, ref["name"])
        return None

    def reference_for(self, name: str, spec: Mapping[str, Any]) -> tuple[str, str] | None:
        # A new identity is the part named as this object.
        return self.reference(spec) or (constants.USER_ASSIGNED_IDENTITY.kind, name)

    def sharing_keys(self, obj: flow.ObjectState) -> Collection[str]:
        account = obj.spec.get("serviceAccountName")
        return (_sharing_key(account),) if isinstance(account, str) and account else ()

    # -- reconcile ----------------------------------------------------------------------------------

    async def ensure(self, obj: flow.ObjectState, spec: api.DesiredWorkload) -> outcome.Outcome:
        refusal = self._conflict(obj, spec)
        if refusal is not None:
            return refusal
        changes: list[outcome.Change] = []
        written: dict[tuple[str, str], str] = {}
        try:
            await self._write_parts(obj, spec, changes, written)
            await self._delete_unwanted(obj, spec, changes)
        except KubernetesError as error:
            return self._refused(error, changes)
        try:
            account_line, account_changes = await self._annotate(obj, spec)
        except KubernetesError as error:
            return self._refused(error, changes)
        changes.extend(account_changes)
        return self._report(obj, spec, written, account_line, tuple(changes))

    def _conflict(self, obj: flow.ObjectState, spec: api.DesiredWorkload) -> outcome.Outcome | None:
        for part in spec.parts:
            existing = obj.sibling(part.kind.kind, part.name)
            # One being deleted (a previous WorkloadIdentity's of this name, say) is waited for instead.
            if existing is not None and existing.owner_uid != obj.uid and not existing.deleting:
                hint = (
                    " (use spec.identityRef to use it)"
                    if part.kind == constants.USER_ASSIGNED_IDENTITY
                    else ""
                )
                return outcome.not_ready(
                    reasons.CONFLICT,
                    f"{part.kind.kind} {part.name} already exists and this WorkloadIdentity does not own it"
                    f"{hint}; rename one of them",
                )
        others = [other for other in obj.shared_with(_sharing_key(spec.service_account))]
        if others and min(others) < f"{obj.namespace}/{obj.name}":
            return outcome.not_ready(
                reasons.CONFLICT,
                f"ServiceAccount {spec.service_account} is already declared by WorkloadIdentity "
                f"{', '.join(sorted(others))}; a ServiceAccount acts as one identity",
            )
        return None

    async def _write_parts(
        self,
        obj: flow.ObjectState,
        spec: api.DesiredWorkload,
        changes: list[outcome.Change],
        written: dict[tuple[str, str], str],
    ) -> None:
        owner = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.WORKLOAD_IDENTITY.kind,
            "name": obj.name,
            "uid": obj.uid,
        }
        created: list[str] = []
        try:
            for part in spec.parts:
                key = (part.kind.kind, part.name)
                existing = obj.sibling(*key)
                if existing is None:
                    await self._owned.create_owned(
                        kind=part.kind,
                        namespace=obj.namespace,
                        name=part.name,
                        spec=part.spec,
                        owner=owner,
                        labels={constants.WORKLOAD_IDENTITY_LABEL: obj.name},
                    )
                    written[key] = "created"
                    created.append(f"{part.kind.kind} {part.name} ({part.describe})")
                elif existing.deleting:
                    written[key] = "waiting for the previous one to finish its deletion"
                elif not _matches(existing.spec, part.spec):
                    await self._owned.replace_owned_spec(
                        kind=part.kind,
                        namespace=obj.namespace,
                        name=part.name,
                        uid=existing.uid,
                        spec=part.spec,
                    )
                    written[key] = "updated"
                    what = "updated" if obj.spec_changed else "put back the spec of"
                    changes.append(
                        outcome.Change(
                            reason=outcome.UPDATED if obj.spec_changed else outcome.DRIFT_REPAIRED,
                            message=f"{what} {part.kind.kind} {part.name} ({part.describe})",
                        )
                    )
        finally:
            # One Event for the parts made in one pass (a new object makes them all at once).
            if created:
                changes.append(
                    outcome.Change(reason=outcome.CREATED, message=f"created {'; '.join(created)}")
                )

    async def _delete_unwanted(
        self, obj: flow.ObjectState, spec: api.DesiredWorkload, changes: list[outcome.Change]
    ) -> None:
        wanted = {(part.kind.kind, part.name) for part in spec.parts}
        for part in obj.owned:
            if (part.kind, part.name) in wanted or part.deleting:
                continue
            await self._owned.delete_owned(
                kind=_kind(part.kind), namespace=obj.namespace, name=part.name, uid=part.uid
            )
            changes.append(
                outcome.Change(
                    reason=outcome.DELETED,
                    message=f"deleted {part.kind} {part.name}: the spec no longer asks for it",
                )
            )

    async def _annotate(
        self, obj: flow.ObjectState, spec: api.DesiredWorkload
    ) -> tuple[dict[str, Any], list[outcome.Change]]:
        """Annotate the ServiceAccount with the identity's IDs once Azure has reported them."""
        name = spec.service_account
        account = await self._service_accounts.read_service_account(namespace=obj.namespace, name=name)
        if account is None:
            return (
                _part_line(
                    SERVICE_ACCOUNT,
                    name,
                    "False",
                    reasons.SERVICE_ACCOUNT_NOT_FOUND,
                    f"ServiceAccount {obj.namespace}/{name} does not exist: create it (the operator never "
                    "creates one); pods can use this identity once they run as it",
                ),
                [],
            )
        identity = obj.identity
        if identity is None or not identity.usable_principal or not identity.client_id:
            return (
                _part_line(
                    SERVICE_ACCOUNT,
                    name,
                    "False",
                    reasons.WAITING_FOR_IDENTITY,
                    f"annotated once identity {spec.identity_name} is Ready",
                ),
                [],
            )
        wanted: dict[str, str | None] = {api.CLIENT_ID_ANNOTATION: identity.client_id}
        if identity.tenant_id:
            wanted[api.TENANT_ID_ANNOTATION] = identity.tenant_id
        current = (account.get("metadata") or {}).get("annotations") or {}
        changed = any(current.get(key) != value for key, value in wanted.items()) and (
            await self._service_accounts.annotate_service_account(
                namespace=obj.namespace, name=name, annotations=wanted
            )
        )
        changes = []
        if changed:
            changes.append(
                outcome.Change(
                    reason=outcome.UPDATED,
                    message=f"annotated ServiceAccount {name} with client ID {identity.client_id}",
                )
            )
        return _part_line(SERVICE_ACCOUNT, name, "True", reasons.SUCCEEDED), changes

    def _report(
        self,
        obj: flow.ObjectState,
        spec: api.DesiredWorkload,
        written: Mapping[tuple[str, str], str],
        account_line: dict[str, Any],
        changes: tuple[outcome.Change, ...],
    ) -> outcome.Outcome:
        lines: list[dict[str, Any]] = []
        for part in spec.parts:
            key = (part.kind.kind, part.name)
            existing = obj.sibling(*key)
            if key in written or existing is None:
                lines.append(_part_line(*key, "Unknown", reasons.RECONCILING, written.get(key, "")))
            elif not existing.current:
                lines.append(_part_line(*key, "Unknown", reasons.RECONCILING, "its change is being applied"))
            else:
                lines.append(_part_line(*key, existing.ready, existing.reason, existing.message))
        if not spec.owns_identity:
            lines.insert(0, _referenced_identity_line(obj, spec.identity_name))
        lines.append(account_line)
        observed = self._observed(obj, spec, lines)
        pending = [line for line in lines if line["ready"] != "True"]
        if not pending:
            roles = sum(1 for part in spec.parts if part.kind == constants.ROLE_ASSIGNMENT)
            return outcome.succeeded(
                f"ServiceAccount {spec.service_account} acts as identity {spec.identity_name} with "
                f"{roles} role(s)",
                observed=observed,
                changes=changes,
            )
        worst = min(pending, key=_attention)
        # Nothing tells the operator when a ServiceAccount appears: look again now and then.
        missing_account = account_line["reason"] == reasons.SERVICE_ACCOUNT_NOT_FOUND
        retry = SERVICE_ACCOUNT_RETRY_SECONDS if missing_account else None
        reason = worst["reason"] if worst["ready"] == "False" else reasons.RECONCILING
        detail = worst.get("message") or worst["reason"]
        return outcome.not_ready(
            reason,
            f"{len(pending)} of {len(lines)} parts not Ready; {worst['kind']} {worst['name']}: {detail}",
            retry_after=retry,
            observed=observed,
            changes=changes,
        )

    @staticmethod
    def _observed(
        obj: flow.ObjectState, spec: api.DesiredWorkload, lines: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        identity = obj.identity
        usable = identity is not None and bool(identity.usable_principal)
        return {
            "serviceAccountName": spec.service_account,
            "identityName": spec.identity_name,
            "id": identity.resource_id if usable and identity else None,
            "principalId": identity.principal_id if usable and identity else None,
            "clientId": identity.client_id if usable and identity else None,
            "tenantId": identity.tenant_id if usable and identity else None,
            "parts": [dict(line) for line in lines],
        }

    def _refused(self, error: KubernetesError, changes: Sequence[outcome.Change]) -> outcome.Outcome:
        if error.status in (400, 422):
            return outcome.not_ready(
                reasons.INVALID_SPEC,
                f"the Kubernetes API refused a part of this WorkloadIdentity: {error.message}",
                changes=tuple(changes),
            )
        if error.status == 403:
            return outcome.not_ready(
                reasons.AUTHORIZATION_FAILED,
                "the operator may not write this WorkloadIdentity's parts or ServiceAccount: "
                f"{error.message}",
                retry_after=KUBERNETES_RETRY_SECONDS,
                changes=tuple(changes),
            )
        # 409 (created meanwhile by someone else: seen at the next pass), 5xx, no answer: try again soon.
        return outcome.not_ready(
            reasons.RECONCILING,
            f"writing a part: {error}; trying again",
            retry_after=KUBERNETES_RETRY_SECONDS,
            changes=tuple(changes),
        )

    # -- deletion -----------------------------------------------------------------------------------

    async def remove(self, obj: flow.ObjectState, spec: api.DesiredWorkload) -> flow.Removal:
        changes: list[outcome.Change] = []
        try:
            for part in obj.owned:
                if not part.deleting:
                    await self._owned.delete_owned(
                        kind=_kind(part.kind), namespace=obj.namespace, name=part.name, uid=part.uid
                    )
                    changes.append(
                        outcome.Change(reason=outcome.DELETED, message=f"deleted {part.kind} {part.name}")
                    )
        except KubernetesError as error:
            return flow.blocked(self._refused(error, changes))
        if obj.owned:
            blocked = [part for part in obj.owned if part.reason == reasons.DELETION_BLOCKED]
            waiting = blocked[0] if blocked else obj.owned[0]
            return flow.blocked(
                outcome.not_ready(
                    reasons.DELETION_BLOCKED if blocked else reasons.DELETING,
                    f"waiting for {len(obj.owned)} part(s) to clean up Azure; {waiting.kind} {waiting.name}: "
                    f"{waiting.message or waiting.reason}",
                    retry_after=PART_GONE_RETRY_SECONDS,
                    changes=tuple(changes),
                )
            )
        shared = obj.shared_with(_sharing_key(spec.service_account))
        if shared:
            return flow.removed(
                f"parts deleted; ServiceAccount {spec.service_account} keeps its annotations for "
                f"WorkloadIdentity {', '.join(shared)}"
            )
        try:
            cleared = await self._service_accounts.annotate_service_account(
                namespace=obj.namespace,
                name=spec.service_account,
                annotations=dict.fromkeys(api.SERVICE_ACCOUNT_ANNOTATIONS),
            )
        except KubernetesError as error:
            return flow.blocked(self._refused(error, changes))
        if cleared:
            changes.append(
                outcome.Change(
                    reason=outcome.UPDATED,
                    message="removed the workload identity annotations of ServiceAccount "
                    f"{spec.service_account}",
                )
            )
        return flow.removed("parts deleted and the ServiceAccount's annotations removed", *changes)


def _referenced_identity_line(obj: flow.ObjectState, name: str) -> dict[str, Any]:
    kind = constants.USER_ASSIGNED_IDENTITY.kind
    identity = obj.sibling(kind, name)
    if identity is None:
        return _part_line(
            kind,
            name,
            "False",
            reasons.REFERENCE_NOT_FOUND,
            f"UserAssignedIdentity {name} (spec.identityRef) does not exist in this namespace; create it or "
            "correct the name",
        )
    if not identity.current:
        return _part_line(kind, name, "Unknown", reasons.RECONCILING, "its change is being applied")
    return _part_line(kind, name, identity.ready, identity.reason, identity.message)


def _attention(line: Mapping[str, Any]) -> tuple[int, int]:
    """Parts a person must act on first, then parts still making progress."""
    reason = line["reason"]
    needs_person = line["ready"] == "False" and reason not in reasons.PROGRESSING and reason != reasons.PAUSED
    return (0 if needs_person else 1, 0 if line["ready"] == "False" else 1)


_KINDS = {
    kind.kind: kind
    for kind in (
        constants.USER_ASSIGNED_IDENTITY,
        constants.FEDERATED_IDENTITY_CREDENTIAL,
        constants.ROLE_ASSIGNMENT,
        constants.SYSTEM_ASSIGNED_IDENTITY,
    )
}


def _kind(name: str) -> constants.Kind:
    return _KINDS[name]
