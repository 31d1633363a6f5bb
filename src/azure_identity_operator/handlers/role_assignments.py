"""kopf wiring of `RoleAssignment`: one reconcile for resume/create/update and the drift timer, and delete.

The referenced identity is read from its kind's principal index (no API call), and the identity wakes
this kind through the `IDENTITY_PRINCIPAL_ANNOTATION` when its usable principal appears or changes, so a
RoleAssignment applied together with its identity is assigned the moment the identity is Ready, without
polling. A second index maps each Azure assignment name to the objects that record it, so deleting one
of two objects that declare the same grant leaves the shared assignment in place.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Collection, Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api import role_assignment as api
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.handlers import dependants, runtime
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.reconcilers import role_assignments
from azure_identity_operator.status import outcome

KIND = constants.ROLE_ASSIGNMENT
ASSIGNMENT_INDEX = f"{KIND.plural}_by_assignment"
IDENTITY_KINDS = {
    kind.kind: kind for kind in (constants.USER_ASSIGNED_IDENTITY, constants.SYSTEM_ASSIGNED_IDENTITY)
}
ACTION = "reconciling the role assignment"
MAX_BLOCKED_RETRY_SECONDS = 30.0


def referenced_identity(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(identity kind, name) the object's principal references, or None for a raw principal ID."""
    principal = (body.get("spec") or {}).get("principal") or {}
    ref = principal.get("identityRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    return str(ref.get("kind") or constants.USER_ASSIGNED_IDENTITY.kind), str(ref["name"])


def identity_snapshot(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> PrincipalSnapshot | None:
    referenced = referenced_identity(body)
    if referenced is None:
        return None
    kind = IDENTITY_KINDS.get(referenced[0])
    if kind is None:
        return None
    namespace = (body.get("metadata") or {}).get("namespace") or ""
    return dependants.lookup_principal(kind, namespace, referenced[1], indexes)


def declared_elsewhere_fn(body: kopf.Body, indexes: Mapping[str, Any]) -> role_assignments.DeclaredElsewhere:
    """Which other live objects record a given assignment name in their status."""
    index = indexes.get(ASSIGNMENT_INDEX)
    own_uid = body.metadata.uid

    def declared_elsewhere(name: str) -> Collection[str]:
        if index is None:
            return ()
        return sorted(
            f"{namespace}/{object_name}"
            for uid, namespace, object_name, deleting in index.get(name.lower(), ())
            if uid != own_uid and not deleting
        )

    return declared_elsewhere


def _deleting_since(body: kopf.Body) -> float | None:
    stamp = body.metadata.get("deletionTimestamp")
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    port = context.authorization
    roles = role_assignments.RoleResolver(port)
    context.dependants.register(KIND, referenced_identity)
    interval = context.settings.sync_interval

    @kopf.index(*runtime.resource_of(KIND), id=ASSIGNMENT_INDEX, registry=registry)
    def index_by_assignment(body: kopf.Body, **_: Any) -> dict[str, tuple[str, str, str, bool]] | None:
        name = (body.get("status") or {}).get("name")
        if not name:
            return None
        deleting = body.metadata.get("deletionTimestamp") is not None
        return {
            str(name).lower(): (
                body.metadata.uid or "",
                body.metadata.namespace or "",
                body.metadata.name or "",
                deleting,
            )
        }

    async def reconcile(
        body: kopf.Body,
        patch: kopf.Patch,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        retry: int,
        kwargs: Mapping[str, Any],
    ) -> None:
        async def run() -> outcome.Outcome:
            return await role_assignments.reconcile(
                namespace=body.metadata.namespace or "",
                spec=body.get("spec"),
                status=body.get("status"),
                identity=identity_snapshot(body, kwargs),
                port=port,
                roles=roles,
                declared_elsewhere=declared_elsewhere_fn(body, kwargs),
            )

        await runtime.reconcile_and_report(
            body=body, patch=patch, logger=logger, retry=retry, run=run, action=ACTION
        )

    runtime.register_reconcile(registry, KIND, interval=interval, reconcile=reconcile)

    async def cleanup(
        body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], kwargs: Mapping[str, Any]
    ) -> outcome.Outcome | None:
        annotations = body.metadata.annotations
        deletion = await role_assignments.delete(
            spec=body.get("spec"),
            status=body.get("status"),
            identity=identity_snapshot(body, kwargs),
            port=port,
            roles=roles,
            declared_elsewhere=declared_elsewhere_fn(body, kwargs),
            deleting_since=_deleting_since(body),
            force=str(annotations.get(api.FORCE_DELETE_ANNOTATION, "")).lower() == "true",
        )
        if deletion.warning:
            kopf.event(body, type="Warning", reason="DeletionBlocked", message=deletion.warning)
            logger.warning("Released without cleanup: %s", deletion.warning)
        if deletion.done:
            logger.info("Deleted: %s", deletion.result.message)
            return None
        return deletion.result

    runtime.register_cleanup(
        registry,
        KIND,
        cleanup=cleanup,
        action="deleting the role assignment",
        # Keep retries frequent while blocked, so the force-delete annotation takes effect soon.
        max_blocked_delay=MAX_BLOCKED_RETRY_SECONDS,
    )
