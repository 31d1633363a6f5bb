"""`RoleDefinition`: keep an Azure custom role matching the spec — its name, description, permissions and
assignable scopes — under a deterministic GUID.

`ensure` reads the role under its GUID at its first assignable scope; when it is missing it checks the
tenant's custom-role limit (as far as the subscription shows it) before creating it, and when it differs it
updates it in place (Azure keeps the GUID, so every assignment of it follows). `remove` deletes it; Azure
refuses while assignments still use it, and the refusal names them (`DeletionBlocked`), so deleting the
RoleAssignments first, or in the same apply, lets it go.
"""

from __future__ import annotations

from azure_identity_operator.api import constants
from azure_identity_operator.api import role_definition as api
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.authorization import AuthorizationPort, Permission, RoleDefinition
from azure_identity_operator.reconcilers import access, flow
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity
from azure_identity_operator.status import outcome, reasons

DEFAULT_CUSTOM_ROLE_LIMIT = 5000
"""Custom roles per tenant (Azure RBAC's documented limit)."""


def _permissions(spec: api.RoleDefinitionSpec) -> tuple[Permission, ...]:
    return tuple(
        Permission(
            actions=tuple(p.actions),
            not_actions=tuple(p.not_actions),
            data_actions=tuple(p.data_actions),
            not_data_actions=tuple(p.not_data_actions),
        )
        for p in spec.permissions
    )


def _scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(scope.strip().rstrip("/").lower() for scope in scopes)


def _matches(current: RoleDefinition, desired: RoleDefinition) -> bool:
    return (
        current.role_name == desired.role_name
        and (current.description or "") == (desired.description or "")
        and _normalized(current.permissions) == _normalized(desired.permissions)
        and sorted(_scopes(current.assignable_scopes)) == sorted(_scopes(desired.assignable_scopes))
    )


def _normalized(permissions: tuple[Permission, ...]) -> list[tuple[tuple[str, ...], ...]]:
    """Permissions compared as sets of actions (Azure keeps them as written, case included)."""
    return sorted(
        (
            tuple(sorted(p.actions)),
            tuple(sorted(p.not_actions)),
            tuple(sorted(p.data_actions)),
            tuple(sorted(p.not_data_actions)),
        )
        for p in permissions
    )


class RoleDefinitionHooks(flow.BaseHooks[api.RoleDefinitionSpec]):
    kind = constants.ROLE_DEFINITION
    action = "reconciling the custom role"
    removal = "deleting the custom role"

    def __init__(
        self,
        port: AuthorizationPort,
        *,
        cluster: ClusterIdentity | None = None,
        custom_role_limit: int = DEFAULT_CUSTOM_ROLE_LIMIT,
    ) -> None:
        self._port = port
        self._cluster = cluster or ClusterIdentity()
        self._limit = custom_role_limit

    def parse(self, obj: flow.ObjectState) -> api.RoleDefinitionSpec:
        return api.parse_spec(obj.spec)

    def requests(self, obj: flow.ObjectState, spec: api.RoleDefinitionSpec) -> list[access.Request]:
        privileged = any(
            _privileged(action) for permission in spec.permissions for action in permission.actions
        )
        return [
            access.DefineRole(
                role_name=spec.role_name, scope=scope.strip().rstrip("/"), privileged=privileged
            )
            for scope in spec.assignable_scopes
        ]

    def guid(self, obj: flow.ObjectState) -> str:
        return api.role_definition_guid(self._cluster.value, obj.namespace, obj.name)

    def _desired(self, obj: flow.ObjectState, spec: api.RoleDefinitionSpec) -> RoleDefinition:
        subscription = ids.parse_resource_id(spec.scope).subscription_id
        return RoleDefinition(
            id=f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{self.guid(obj)}",
            role_name=spec.role_name,
            role_type="CustomRole",
            assignable_scopes=tuple(scope.strip().rstrip("/") for scope in spec.assignable_scopes),
            description=spec.description,
            permissions=_permissions(spec),
        )

    async def ensure(self, obj: flow.ObjectState, spec: api.RoleDefinitionSpec) -> outcome.Outcome:
        guid = self.guid(obj)
        desired = self._desired(obj, spec)
        where = f"custom role {spec.role_name!r} ({guid})"
        current = await self._port.get_custom_role(spec.scope, guid)
        changes: tuple[outcome.Change, ...] = ()
        if current is None:
            count = await self._port.count_custom_roles(spec.scope)
            if count >= self._limit:
                return outcome.not_ready(
                    reasons.ROLE_DEFINITION_LIMIT_EXCEEDED,
                    f"{count} custom roles exist already, Azure's limit per tenant is {self._limit} "
                    "(IDENTITY_OPERATOR_CUSTOM_ROLE_LIMIT): delete unused custom roles first",
                )
            current = await self._port.put_custom_role(spec.scope, guid, desired)
            changes = (outcome.Change(reason=outcome.CREATED, message=f"created {where}"),)
        elif not _matches(current, desired):
            current = await self._port.put_custom_role(spec.scope, guid, desired)
            if obj.spec_changed:
                changes = (outcome.Change(reason=outcome.UPDATED, message=f"updated {where} in place"),)
            else:
                changes = (
                    outcome.Change(
                        reason=outcome.DRIFT_REPAIRED,
                        message=f"{where} was changed in Azure: made it match the spec again",
                    ),
                )
        return outcome.succeeded(
            f"{where} grants what the spec lists, assignable at {len(spec.assignable_scopes)} scope(s)",
            observed={
                "id": current.id or desired.id,
                "name": guid,
                "roleName": current.role_name,
                "assignableScopes": list(current.assignable_scopes),
            },
            changes=changes,
        )

    async def remove(self, obj: flow.ObjectState, spec: api.RoleDefinitionSpec) -> flow.Removal:
        guid = self.guid(obj)
        where = f"custom role {spec.role_name!r} ({guid})"
        try:
            await self._port.delete_custom_role(spec.scope, guid)
        except errors.ArmError as error:
            if error.is_gone:
                return flow.removed(f"{where} is not in Azure")
            if _in_use(error):
                users = await self._assignments_of(spec, guid)
                named = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
                return flow.blocked(
                    outcome.not_ready(
                        reasons.DELETION_BLOCKED,
                        f"Azure keeps {where} while role assignments use it"
                        + (f" ({named})" if named else "")
                        + f": {error.message}; delete those first (the finalizer retries), or set "
                        f"spec.deletionPolicy: Orphan",
                        retry_after=flow.DELETION_RETRY_SECONDS,
                    )
                )
            raise
        return flow.removed(
            f"deleted {where}", outcome.Change(reason=outcome.DELETED, message=f"deleted {where}")
        )

    async def _assignments_of(self, spec: api.RoleDefinitionSpec, guid: str) -> list[str]:
        """The role assignments that use the role, at and below its first assignable scope."""
        subscription = ids.parse_resource_id(spec.scope).subscription_id
        try:
            listed = await self._port.list_role_assignments(subscription)
        except errors.ArmError:
            return []
        return sorted(
            f"{assignment.name} at {assignment.properties.scope}"
            for assignment in listed
            if ids.role_definition_guid(assignment.properties.role_definition_id) == guid
        )

    def explain(
        self, error: errors.ArmError, *, action: str, obj: flow.ObjectState
    ) -> outcome.Outcome | None:
        code = (error.code or "").lower()
        if "samename" in code or ("exists" in code and "role" in code):
            return outcome.not_ready(
                reasons.CONFLICT,
                f"{action}: another custom role of the tenant has this roleName ({error}); rename one of "
                "them",
            )
        if "limit" in code:
            return outcome.not_ready(reasons.ROLE_DEFINITION_LIMIT_EXCEEDED, f"{action}: {error}")
        return None


def _privileged(action: str) -> bool:
    """An action that reaches role assignments or role definitions (or every write): a holder could grant
    itself or others any role. `*/read` (Reader's) is not."""
    lowered = action.strip().lower()
    return (
        lowered == "*"
        or (lowered.startswith("*/") and lowered != "*/read")
        or lowered.startswith(
            (
                "microsoft.authorization/*",
                "microsoft.authorization/roleassignments/",
                "microsoft.authorization/roledefinitions/",
            )
        )
    )


def _in_use(error: errors.ArmError) -> bool:
    """Azure's refusal to delete a custom role that assignments still use."""
    text = f"{error.code} {error.message}".lower()
    return "assignment" in text and error.status in (400, 409)
