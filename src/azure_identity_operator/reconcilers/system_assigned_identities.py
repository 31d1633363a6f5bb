"""`SystemAssignedIdentity`: the system-assigned identity of a resource is enabled, and reported.

Observe (GET the resource) → compare (is `SystemAssigned` in its identity type?) → write only what
differs (PATCH the identity type, keeping every user-assigned identity attached) → report the principal.
The read and the write run under the resource's identity lock, shared with attachments of user-assigned
identities, so concurrent changes to one resource's identity block never undo each other.

A resource deleted in Azure takes its system-assigned principal with it: the status then says the resource
is gone and drops the principal, so role assignments that use it report it too. Deleting the object turns
the identity off, unless another object still declares the same resource's identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.api.system_assigned_identity import InvalidSpecError, SystemAssignedIdentitySpec
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.resources import (
    UNSUPPORTED_CODES,
    IdentityPatch,
    ResourcePort,
    identity_type,
)
from azure_identity_operator.locks import arm_id_key
from azure_identity_operator.reconcilers import access, flow
from azure_identity_operator.status import outcome, reasons

GONE_FIELDS = {"principalId": None, "tenantId": None}
"""Status fields that go with a vanished principal (dependants must stop using it)."""


@dataclasses.dataclass(frozen=True)
class Cleanup:
    """What deleting the object did in Azure (for the handler's log and Event)."""

    disabled: bool
    message: str


def parse_spec(spec: Mapping[str, Any] | None) -> SystemAssignedIdentitySpec:
    """The spec, with `resourceId` checked against the ARM ID rules; `InvalidSpecError` says what to fix."""
    parsed = SystemAssignedIdentitySpec.from_body(spec or {})
    try:
        resource_id = ids.parse_resource_id(parsed.resource_id)
    except ids.InvalidResourceId as error:
        raise InvalidSpecError(f"spec.resourceId: {error}") from None
    if resource_id.scope_kind != "resource":
        raise InvalidSpecError(
            f"spec.resourceId: {parsed.resource_id!r} is a {resource_id.scope_kind} ID; a system-assigned "
            "identity belongs to a resource such as .../providers/Microsoft.Compute/virtualMachines/<name>"
        )
    return parsed


async def reconcile(port: ResourcePort, spec: SystemAssignedIdentitySpec) -> outcome.Outcome:
    target = spec.resource_id
    try:
        async with port.identity_lock(target):
            resource = await port.get_resource(target)
            if resource is None:
                return outcome.not_ready(
                    reasons.RESOURCE_NOT_FOUND,
                    f"resource {target} does not exist in Azure; its system-assigned identity, if it had "
                    "one, was deleted with it. The identity is enabled again as soon as the resource exists.",
                    observed=GONE_FIELDS,
                )
            identity = resource.identity
            changes: tuple[outcome.Change, ...] = ()
            if not identity.system_assigned:
                changes = (
                    outcome.Change(
                        reason=outcome.CREATED,
                        message=f"enabled the system-assigned identity of {resource.name}",
                    ),
                )
                resource = await port.patch_identity(
                    resource,
                    IdentityPatch(
                        type=identity_type(
                            system_assigned=True,
                            user_assigned=bool(identity.user_assigned),
                            like=identity.type_spelling,
                        )
                    ),
                )
    except errors.ArmError as error:
        if error.code in UNSUPPORTED_CODES:
            return outcome.not_ready(
                reasons.UNSUPPORTED_RESOURCE,
                f"{ids.parse_resource_id(target).resource_type} cannot have a system-assigned identity: "
                f"{error.message}",
                observed=GONE_FIELDS,
            )
        raise
    observed = {
        "resourceId": resource.id or target,
        "resourceName": resource.name,
        "resourceType": resource.type,
    }
    principal_id = resource.identity.principal_id
    if not resource.identity.system_assigned or not principal_id:
        # Azure answered the write without the principal (a concurrent writer disabled it again):
        # transient, the next pass re-reads the resource.
        return outcome.not_ready(
            reasons.RECONCILING,
            f"enabling the system-assigned identity of {target}: Azure has not reported its principal yet",
            retry_after=errors.DEFAULT_RETRY_SECONDS,
            observed={**observed, **GONE_FIELDS},
            changes=changes,
        )
    return outcome.succeeded(
        f"system-assigned identity of {resource.name} is enabled (principal {principal_id})",
        {**observed, "principalId": principal_id, "tenantId": resource.identity.tenant_id},
        changes=changes,
    )


async def disable(port: ResourcePort, spec: SystemAssignedIdentitySpec) -> Cleanup:
    """Turn the system-assigned identity off, keeping user-assigned ones; a missing resource is done."""
    target = spec.resource_id
    async with port.identity_lock(target):
        try:
            resource = await port.get_resource(target)
        except errors.ArmError as error:
            if error.code in UNSUPPORTED_CODES:
                return Cleanup(False, f"{target} cannot carry a managed identity: nothing to disable")
            raise
        if resource is None:
            return Cleanup(False, f"resource {target} no longer exists: its identity went with it")
        identity = resource.identity
        if not identity.system_assigned:
            return Cleanup(False, f"the system-assigned identity of {resource.name} was already disabled")
        await port.patch_identity(
            resource,
            IdentityPatch(
                type=identity_type(
                    system_assigned=False,
                    user_assigned=bool(identity.user_assigned),
                    like=identity.type_spelling,
                )
            ),
        )
    return Cleanup(True, f"disabled the system-assigned identity of {resource.name}")


class SystemAssignedIdentityHooks(flow.BaseHooks[SystemAssignedIdentitySpec]):
    kind = constants.SYSTEM_ASSIGNED_IDENTITY
    action = "enabling the system-assigned identity"
    removal = "disabling the system-assigned identity"

    def __init__(self, resources: ResourcePort) -> None:
        self._resources = resources

    def parse(self, obj: flow.ObjectState) -> SystemAssignedIdentitySpec:
        return parse_spec(obj.spec)

    def sharing_keys(self, obj: flow.ObjectState) -> tuple[str, ...]:
        resource_id = obj.spec.get("resourceId")
        return (arm_id_key(resource_id),) if isinstance(resource_id, str) and resource_id else ()

    def requests(self, obj: flow.ObjectState, spec: SystemAssignedIdentitySpec) -> list[access.Request]:
        return [
            access.UseResource(resource_id=spec.resource_id, action="enable the system-assigned identity of")
        ]

    async def ensure(self, obj: flow.ObjectState, spec: SystemAssignedIdentitySpec) -> outcome.Outcome:
        return await reconcile(self._resources, spec)

    async def remove(self, obj: flow.ObjectState, spec: SystemAssignedIdentitySpec) -> flow.Removal:
        others = obj.shared_with(arm_id_key(spec.resource_id))
        if others:
            return flow.removed(
                f"the system-assigned identity of {spec.resource_id} stays enabled: still declared by "
                + ", ".join(sorted(others))
            )
        result = await disable(self._resources, spec)
        if not result.disabled:
            return flow.removed(result.message)
        return flow.removed(result.message, outcome.Change(reason=outcome.DELETED, message=result.message))
