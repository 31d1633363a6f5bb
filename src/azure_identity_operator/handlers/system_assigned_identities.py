"""kopf wiring of `SystemAssignedIdentity`: one reconcile for create/update/resume and the drift timer,
cleanup on delete honouring `deletionPolicy`, and the wake-up of role assignments that use its principal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api.system_assigned_identity import InvalidSpecError
from azure_identity_operator.arm import errors
from azure_identity_operator.handlers import runtime
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.locks import arm_id_key
from azure_identity_operator.reconcilers import system_assigned_identities
from azure_identity_operator.status import outcome, reasons

KIND = constants.SYSTEM_ASSIGNED_IDENTITY
BY_RESOURCE_INDEX = f"{KIND.plural}_by_resource"
DELETION_BLOCKED_RETRY_SECONDS = 60.0


def resource_key(resource_id: str) -> str:
    return arm_id_key(resource_id)


def others_declaring(
    indexes: Mapping[str, Any], *, resource_id: str, namespace: str, name: str
) -> list[tuple[str, str]]:
    """Other SystemAssignedIdentity objects (any namespace) that declare the same resource's identity."""
    index = indexes.get(BY_RESOURCE_INDEX)
    if index is None:
        return []
    return [owner for owner in index.get(resource_key(resource_id), ()) if owner != (namespace, name)]


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    context.dependants.register_identity(KIND, context.kube)
    interval = context.settings.sync_interval

    @kopf.index(*runtime.resource_of(KIND), id=BY_RESOURCE_INDEX, registry=registry)
    def index_by_resource(body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]] | None:
        if body.metadata.get("deletionTimestamp"):
            return None
        resource_id = (body.get("spec") or {}).get("resourceId")
        if not isinstance(resource_id, str) or not resource_id:
            return None
        return {resource_key(resource_id): (body.metadata.namespace or "", body.metadata.name or "")}

    async def reconcile(
        body: kopf.Body, patch: kopf.Patch, logger: Any, retry: int, _: Mapping[str, Any]
    ) -> None:
        async def run() -> outcome.Outcome:
            try:
                spec = system_assigned_identities.parse_spec(body.get("spec"))
            except InvalidSpecError as error:
                return outcome.not_ready(reasons.INVALID_SPEC, str(error))
            return await system_assigned_identities.reconcile(context.resources, spec)

        await runtime.reconcile_and_report(
            body=body,
            patch=patch,
            logger=logger,
            retry=retry,
            run=run,
            action="enabling the system-assigned identity",
        )

    runtime.register_reconcile(registry, KIND, interval=interval, reconcile=reconcile)

    async def cleanup(body: kopf.Body, logger: Any, indexes: Mapping[str, Any]) -> outcome.Outcome | None:
        try:
            spec = system_assigned_identities.parse_spec(body.get("spec"))
        except InvalidSpecError:
            return None  # never valid, so never enabled by this object
        if spec.deletion_policy == "Orphan":
            logger.info("deletionPolicy Orphan: the system-assigned identity of %s stays", spec.resource_id)
            return None
        others = others_declaring(
            indexes,
            resource_id=spec.resource_id,
            namespace=body.metadata.namespace or "",
            name=body.metadata.name or "",
        )
        if others:
            logger.info(
                "Leaving the system-assigned identity of %s enabled: still declared by %s",
                spec.resource_id,
                ", ".join(f"{ns}/{name}" for ns, name in others),
            )
            return None
        try:
            result = await system_assigned_identities.disable(context.resources, spec)
        except errors.ArmError as error:
            failure = errors.outcome_for(
                error, action=f"disabling the system-assigned identity of {spec.resource_id}"
            )
            return outcome.not_ready(
                reasons.DELETION_BLOCKED,
                f"{failure.message}; the object keeps its finalizer until this succeeds "
                "(or set spec.deletionPolicy: Orphan to leave the identity enabled)",
                retry_after=failure.retry_after or DELETION_BLOCKED_RETRY_SECONDS,
            )
        logger.info(result.message)
        return None

    runtime.register_cleanup(registry, KIND, cleanup=cleanup, action="disabling the system-assigned identity")
