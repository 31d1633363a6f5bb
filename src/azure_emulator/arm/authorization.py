"""Microsoft.Authorization at any scope: built-in role definitions, role assignments and the caller's
permissions.

Role-assignment names are unique across the tenant, as in Azure: re-using a name for a different
principal, role or scope is `RoleAssignmentUpdateNotPermitted`; a second name for the same (scope,
principal, role) is `RoleAssignmentExists`. The directory lookup of the principal fails with
`PrincipalNotFound` while the principal is younger than the replication delay, unless the request names
the `principalType` (Azure's documented way around the delay).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from azure_emulator import catalog, rbac, state
from azure_emulator.arm import paths
from azure_emulator.arm.http import Reply, Request, is_guid, method_not_allowed, page, utc_stamp
from azure_emulator.arm.resources import find_group, require_subscription, resolve_type
from azure_emulator.emulator import Emulator
from azure_emulator.errors import (
    ArmError,
    bad_request,
    conflict,
    not_found,
    resource_group_not_found,
    resource_not_found,
)

PROVIDER_SEGMENT = "/providers/Microsoft.Authorization"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
_ROLE_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/(?P<subscription>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/(?P<guid>[^/]+)$",
    re.IGNORECASE,
)
_BUILT_IN_STAMP = "2015-02-02T21:55:09.8806423Z"


def _subscription_of(scope: str) -> str | None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1]
    return None


def validate_scope(emulator: Emulator, scope: str, *, must_exist: bool) -> None:
    """The scope must be the root, a management group, or lie in the emulated subscription."""
    parts = [p for p in scope.split("/") if p]
    if not parts:
        return
    lowered = [p.lower() for p in parts]
    if lowered[0] == "providers" and len(parts) == 4 and lowered[1] == "microsoft.management":
        return
    if lowered[0] != "subscriptions" or len(parts) < 2:
        raise bad_request("InvalidScope", f"The scope '{scope}' is not valid.")
    require_subscription(emulator, parts[1])
    if not must_exist or len(parts) < 4:
        return
    if lowered[2] != "resourcegroups":
        raise bad_request("InvalidScope", f"The scope '{scope}' is not valid.")
    if find_group(emulator, parts[1], parts[3]) is None:
        raise resource_group_not_found(parts[3])
    resource_path = paths.parse_resource_path(tuple(parts))
    if resource_path is None or resource_path.is_collection:
        return
    try:
        typed = resolve_type(resource_path, None)
    except ArmError:
        return  # a type the emulator does not serve: accept the scope as Azure would for a real resource
    # Resource ids are stored lower-cased, which also unifies `resourceGroups` and MSI's `resourcegroups`.
    if typed.info.served and scope.lower() not in emulator.world.resources:
        raise resource_not_found(
            f"{typed.path.namespace}/{typed.path.type_path}", resource_path.names[-1], parts[3]
        )


# --- role definitions ---------------------------------------------------------------------------------------


def _role_definition_id(scope: str, guid: str) -> str:
    subscription = _subscription_of(scope)
    prefix = f"/subscriptions/{subscription}" if subscription else ""
    return f"{prefix}{PROVIDER_SEGMENT}/roleDefinitions/{guid}"


def _render_role(scope: str, role: catalog.RoleDefinition) -> dict[str, Any]:
    permission = role.permission
    return {
        "id": _role_definition_id(scope, role.guid),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": role.guid,
        "properties": {
            "roleName": role.role_name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(permission.actions),
                    "notActions": list(permission.not_actions),
                    "dataActions": list(permission.data_actions),
                    "notDataActions": list(permission.not_data_actions),
                }
            ],
            "createdOn": _BUILT_IN_STAMP,
            "updatedOn": _BUILT_IN_STAMP,
            "createdBy": None,
            "updatedBy": None,
        },
    }


def _role_not_found(guid: str) -> ArmError:
    return not_found(
        "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' does not exist."
    )


def role_definitions(emulator: Emulator, request: Request, scope: str, name: str | None) -> Reply:
    if request.method != "GET":
        raise method_not_allowed(request.method)
    validate_scope(emulator, scope, must_exist=False)
    if name is not None:
        role = catalog.find_role(name) if is_guid(name) else None
        if role is None:
            raise _role_not_found(name)
        return Reply(200, _render_role(scope, role))
    roles = list(catalog.BUILT_IN_ROLES)
    for clause in _clauses(request.query.get("$filter")):
        match = re.fullmatch(r"(roleName|type)\s+eq\s+'(.*)'", clause, re.IGNORECASE)
        if match is None:
            raise _unsupported_filter(clause, "roleName eq '{value}' or type eq '{value}'")
        field, value = match.group(1).lower(), match.group(2).lower()
        if field == "rolename":
            roles = [r for r in roles if r.role_name.lower() == value]
        else:
            roles = [r for r in roles if r.role_type.lower() == value]
    return page(request, roles, lambda r: _render_role(scope, r), emulator.knobs.page_size)


def _clauses(filter_text: str | None) -> list[str]:
    if not filter_text or not filter_text.strip():
        return []
    return [c.strip() for c in re.split(r"\s+and\s+", filter_text.strip(), flags=re.IGNORECASE)]


def _unsupported_filter(clause: str, supported: str) -> ArmError:
    return bad_request(
        "UnsupportedQuery", f"The filter '{clause}' is not supported. Supported filters are {supported}."
    )


# --- role assignments ---------------------------------------------------------------------------------------


def _render_assignment(assignment: state.RoleAssignment, *, just_written: bool = False) -> dict[str, Any]:
    return {
        "properties": {
            "roleDefinitionId": assignment.role_definition_id,
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope or "/",
            "condition": assignment.condition,
            "conditionVersion": assignment.condition_version,
            "createdOn": assignment.created_on,
            "updatedOn": assignment.updated_on,
            # Azure's PUT response leaves createdBy empty; later reads fill it in.
            "createdBy": None if just_written else assignment.created_by,
            "updatedBy": assignment.updated_by,
            "delegatedManagedIdentityResourceId": assignment.delegated_managed_identity_resource_id,
            "description": assignment.description,
        },
        "id": assignment.id,
        "type": "Microsoft.Authorization/roleAssignments",
        "name": assignment.name,
    }


def _invalid_assignment_id(name: str) -> ArmError:
    return bad_request(
        "InvalidRoleAssignmentId",
        f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
    )


def _by_name(emulator: Emulator, name: str) -> state.RoleAssignment | None:
    lowered = name.lower()
    return next((a for a in emulator.world.role_assignments.values() if a.name.lower() == lowered), None)


def role_assignment(emulator: Emulator, request: Request, scope: str, name: str) -> Reply:
    if not is_guid(name):
        raise _invalid_assignment_id(name)
    validate_scope(emulator, scope, must_exist=False)
    assignment_id = f"{scope}{PROVIDER_SEGMENT}/roleAssignments/{name}"
    existing = emulator.world.role_assignments.get(assignment_id.lower())
    if request.method == "GET":
        if existing is None:
            raise not_found("RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
        return Reply(200, _render_assignment(existing))
    if request.method == "DELETE":
        if existing is None:
            return Reply(204)
        del emulator.world.role_assignments[assignment_id.lower()]
        emulator.changed()
        return Reply(200, _render_assignment(existing))
    if request.method == "PUT":
        return _put_assignment(emulator, request, scope, name, assignment_id)
    raise method_not_allowed(request.method)


def _put_assignment(emulator: Emulator, request: Request, scope: str, name: str, assignment_id: str) -> Reply:
    body = request.json_object()
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise bad_request(
            "InvalidRequestContent", "The request content was invalid: 'properties' is required."
        )
    principal_id = properties.get("principalId")
    if not is_guid(principal_id):
        raise bad_request(
            "InvalidPrincipalId",
            f"The Principal ID '{principal_id}' is not valid. Principal ID must be a GUID.",
        )
    assert isinstance(principal_id, str)
    role_definition_id = properties.get("roleDefinitionId")
    match = _ROLE_DEFINITION_ID.match(role_definition_id) if isinstance(role_definition_id, str) else None
    if match is None or not is_guid(match.group("guid")):
        raise bad_request(
            "InvalidRoleDefinitionId", f"The role definition ID '{role_definition_id}' is not valid."
        )
    role_guid = match.group("guid").lower()
    if catalog.find_role(role_guid) is None:
        raise bad_request(
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{role_guid}' does not exist.",
        )
    principal_type = properties.get("principalType")
    if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
        raise bad_request("InvalidPrincipalType", f"The principal type '{principal_type}' is not valid.")
    validate_scope(emulator, scope, must_exist=True)

    same_name = _by_name(emulator, name)
    if same_name is not None and (
        same_name.scope.lower() != scope.lower()
        or same_name.principal_id.lower() != principal_id.lower()
        or same_name.role_definition_id.rsplit("/", 1)[-1].lower() != role_guid
    ):
        raise bad_request(
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        )
    if same_name is None:
        duplicate = next(
            (
                a
                for a in emulator.world.role_assignments.values()
                if a.scope.lower() == scope.lower()
                and a.principal_id.lower() == principal_id.lower()
                and a.role_definition_id.rsplit("/", 1)[-1].lower() == role_guid
            ),
            None,
        )
        if duplicate is not None:
            raise conflict(
                "RoleAssignmentExists",
                "The role assignment already exists. The ID of the existing role assignment is "
                f"{duplicate.name.replace('-', '')}.",
            )
    resolved_type = _check_principal(emulator, principal_id, principal_type)

    stamp = utc_stamp()
    subscription = _subscription_of(scope) or emulator.world.subscription_id
    caller = request.caller_object_id
    description = properties.get("description")
    condition = properties.get("condition")
    condition_version = properties.get("conditionVersion")
    if condition is not None and condition_version is None:
        condition_version = "2.0"
    delegated = properties.get("delegatedManagedIdentityResourceId")
    if same_name is not None:
        assignment = dataclasses.replace(
            same_name,
            description=description if isinstance(description, str) else None,
            condition=condition if isinstance(condition, str) else None,
            condition_version=condition_version if isinstance(condition_version, str) else None,
            updated_on=stamp,
            updated_by=caller,
        )
    else:
        assignment = state.RoleAssignment(
            id=assignment_id,
            name=name,
            scope=scope,
            role_definition_id=f"/subscriptions/{subscription}{PROVIDER_SEGMENT}/roleDefinitions/{role_guid}",
            principal_id=principal_id,
            principal_type=resolved_type,
            description=description if isinstance(description, str) else None,
            condition=condition if isinstance(condition, str) else None,
            condition_version=condition_version if isinstance(condition_version, str) else None,
            delegated_managed_identity_resource_id=delegated if isinstance(delegated, str) else None,
            created_on=stamp,
            updated_on=stamp,
            created_by=caller,
            updated_by=caller,
        )
    emulator.world.role_assignments[assignment.id.lower()] = assignment
    emulator.changed()
    return Reply(201, _render_assignment(assignment, just_written=True))


def _check_principal(emulator: Emulator, principal_id: str, principal_type: object) -> str:
    """The principal type to store; raises PrincipalNotFound / UnmatchedPrincipalType as Azure does."""
    if isinstance(principal_type, str):
        # With principalType given, ARM skips the directory lookup entirely, so a principal that is still
        # replicating, or one that does not exist, is accepted; only a known mismatch is refused.
        known = emulator.world.principals.get(principal_id.lower())
        if (
            known is not None
            and emulator.principal_replicated(principal_id)
            and known.principal_type != principal_type
        ):
            raise bad_request(
                "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id.replace('-', '')}' has type '{known.principal_type}' , "
                f"which is different from specified PrincipalType '{principal_type}'.",
            )
        return principal_type
    if not emulator.principal_replicated(principal_id):
        raise bad_request(
            "PrincipalNotFound",
            f"Principal {principal_id.replace('-', '')} does not exist in the directory "
            f"{emulator.world.tenant_id}. Check that you have the correct principal ID. If you are creating "
            "this principal and then immediately assigning a role, this error might be related to a "
            "replication delay. In this case, set the role assignment principalType property to a value, "
            "such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
        )
    return emulator.world.principals[principal_id.lower()].principal_type


def list_role_assignments(emulator: Emulator, request: Request, scope: str) -> Reply:
    if request.method != "GET":
        raise method_not_allowed(request.method)
    validate_scope(emulator, scope, must_exist=False)
    at_scope_only = False
    principal: str | None = None
    for clause in _clauses(request.query.get("$filter")):
        if re.fullmatch(r"atScope\(\)", clause, re.IGNORECASE):
            at_scope_only = True
            continue
        match = re.fullmatch(r"principalId\s+eq\s+'([^']*)'|assignedTo\('([^']*)'\)", clause, re.IGNORECASE)
        if match is None:
            raise _unsupported_filter(
                clause, "either 'atScope()' or 'principalId eq '{value}'' or 'assignedTo('{value}')'"
            )
        principal = (match.group(1) or match.group(2) or "").lower()
    items = []
    for assignment in emulator.world.role_assignments.values():
        above = rbac.scope_covers(assignment.scope, scope)
        below = rbac.scope_covers(scope, assignment.scope)
        if not (above or (below and not at_scope_only)):
            continue
        if principal is not None and assignment.principal_id.lower() != principal:
            continue
        items.append(assignment)
    return page(request, items, _render_assignment, emulator.knobs.page_size)


# --- permissions --------------------------------------------------------------------------------------------


def permissions(emulator: Emulator, request: Request, scope: str) -> Reply:
    if request.method != "GET":
        raise method_not_allowed(request.method)
    validate_scope(emulator, scope, must_exist=False)
    value = []
    for guid in emulator.role_guids_for(request.caller_object_id, scope):
        role = catalog.find_role(guid)
        if role is not None:
            permission = role.permission
            value.append(
                {
                    "actions": list(permission.actions),
                    "notActions": list(permission.not_actions),
                    "dataActions": list(permission.data_actions),
                    "notDataActions": list(permission.not_data_actions),
                }
            )
    return Reply(200, {"value": value})
