"""kopf wiring of `UserAssignedIdentity`: one reconcile for create/update/resume and the drift timer, the
export of its IDs to a ConfigMap, cleanup on delete honouring `deletionPolicy`, and the wake-up of the
objects that depend on its principal (federated credentials, role assignments).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from azure_identity_operator.api import constants
from azure_identity_operator.api import user_assigned_identity as api
from azure_identity_operator.handlers import kube, runtime
from azure_identity_operator.handlers.context import OperatorContext
from azure_identity_operator.reconcilers import attachments
from azure_identity_operator.reconcilers import user_assigned_identities as reconciler
from azure_identity_operator.status import outcome, reasons

KIND = constants.USER_ASSIGNED_IDENTITY


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    context.dependants.register_identity(KIND, context.kube)
    settings = context.settings

    async def reconcile(
        body: kopf.Body, patch: kopf.Patch, logger: Any, retry: int, _: Mapping[str, Any]
    ) -> None:
        name = body.metadata.name or ""

        async def run() -> outcome.Outcome:
            result = await reconciler.reconcile(
                context.identities,
                body.get("spec"),
                object_name=name,
                default_subscription_id=settings.subscription_id,
                default_tenant_id=settings.tenant_id,
                status=body.get("status"),
            )
            if result.ready:
                try:
                    await _export(context, body, result.observed)
                except Exception as error:
                    # The identity exists in Azure: its IDs still go to status. Without them the next pass
                    # would take the identity this object created for an adopted one.
                    logger.exception("Exporting the identity's IDs failed")
                    return outcome.not_ready(
                        reasons.OPERATOR_ERROR,
                        f"exporting the identity's IDs to a ConfigMap: {kube.describe_failure(error)}",
                        retry_after=runtime.UNEXPECTED_ERROR_RETRY_SECONDS,
                        observed=result.observed,
                    )
            return await attachments.reconcile_for_identity(
                context.resources,
                identity_outcome=result,
                attach_to=_attach_to(body),
                status=body.get("status"),
            )

        await runtime.reconcile_and_report(
            body=body, patch=patch, logger=logger, retry=retry, run=run, action="reconciling the identity"
        )

    runtime.register_reconcile(registry, KIND, interval=settings.sync_interval, reconcile=reconcile)

    async def cleanup(body: kopf.Body, logger: Any, _: Mapping[str, Any]) -> outcome.Outcome | None:
        if (body.get("spec") or {}).get("deletionPolicy", "Delete") != "Orphan":
            blocked = await attachments.detach_before_deletion(
                context.resources, attach_to=_attach_to(body), status=body.get("status")
            )
            if blocked is not None:
                return blocked
        return await reconciler.cleanup(
            context.identities,
            body.get("spec"),
            object_name=body.metadata.name or "",
            default_subscription_id=settings.subscription_id,
            status=body.get("status"),
        )

    runtime.register_cleanup(registry, KIND, cleanup=cleanup, action="deleting the identity")


def _attach_to(body: kopf.Body) -> list[str]:
    try:
        return api.parse_spec(body.get("spec")).attach_to
    except api.InvalidSpecError:
        return []


async def _export(context: OperatorContext, body: kopf.Body, observed: Mapping[str, Any]) -> None:
    """Copy the IDs to the ConfigMap `spec.exportTo.configMap` names, writing only what differs."""
    try:
        spec = api.parse_spec(body.get("spec"))
    except api.InvalidSpecError:
        return
    if spec.export_to is None or spec.export_to.config_map is None:
        return
    values = {
        "clientId": observed.get("clientId"),
        "principalId": observed.get("principalId"),
        "tenantId": observed.get("tenantId"),
        "resourceId": observed.get("id"),
    }
    data = {key: str(value) for key, value in values.items() if value}
    await context.kube.export_config_map(
        namespace=body.metadata.namespace or "",
        name=spec.export_to.config_map.name,
        data=data,
        owner={
            "apiVersion": constants.API_VERSION,
            "kind": KIND.kind,
            "name": body.metadata.name or "",
            "uid": body.metadata.uid or "",
        },
    )
