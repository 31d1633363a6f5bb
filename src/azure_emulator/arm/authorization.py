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

from azure_emulator import catalog, conditions, rbac, state
from azure_emulator.arm import paths
from azure_emulator.arm.http import Reply, Request, is_guid, method_not_allowed, page, utc_stamp
from azure_emulator.arm.resources import find_group, require_subscription, resolve_type
from azure_emulator.emulator import Emulator
from azure_emulator.errors import (
    ArmError,
    bad_request,
    conflict,
    invalid_request_content,
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


Role = catalog.RoleDefinition | state.CustomRole


def _render_role(scope: str, role: Role) -> dict[str, Any]:
    if isinstance(role, state.CustomRole):
        stamps = {
            "createdOn": role.created_on,
            "updatedOn": role.updated_on,
            "createdBy": role.created_by,
            "updatedBy": role.updated_by,
        }
    else:
        stamps = {
            "createdOn": _BUILT_IN_STAMP,
            "updatedOn": _BUILT_IN_STAMP,
            "createdBy": None,
            "updatedBy": None,
        }
    return {
        "properties": {
            "roleName": role.role_name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": list(role.assignable_scopes),
            "permissions": [
                {
                    "actions": list(permission.actions),
                    "notActions": list(permission.not_actions),
                    "dataActions": list(permission.data_actions),
                    "notDataActions": list(permission.not_data_actions),
                }
                for permission in role.permissions
            ],
            **stamps,
        },
        "id": _role_definition_id(scope, role.guid),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": role.guid,
    }


def _role_not_found(guid: str) -> ArmError:
    return not_found(
        "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' does not exist."
    )


def _visible_at(role: Role, scope: str, *, below: bool) -> bool:
    """Whether a role shows at `scope`: assignable there or above it (a list's default), or also below it
    (`atScopeAndBelow()`, and reads of one role by GUID). The tenant level (`/providers/...`) shows all."""
    if not scope:
        return True
    return any(
        rbac.scope_covers(assignable, scope) or (below and rbac.scope_covers(scope, assignable))
        for assignable in role.assignable_scopes
    )


def _all_roles(emulator: Emulator) -> list[Role]:
    return [*catalog.BUILT_IN_ROLES, *emulator.world.custom_roles.values()]


def role_definitions(emulator: Emulator, request: Request, scope: str, name: str | None) -> Reply:
    if name is not None:
        if request.method == "PUT":
            return _put_role_definition(emulator, request, scope, name)
        if request.method == "DELETE":
            return _delete_role_definition(emulator, request, scope, name)
        if request.method != "GET":
            raise method_not_allowed(request.method)
        validate_scope(emulator, scope, must_exist=False)
        role = emulator.find_role(name) if is_guid(name) else None
        if role is None or not _visible_at(role, scope, below=True):
            raise _role_not_found(name)
        return Reply(200, _render_role(scope, role))
    if request.method != "GET":
        raise method_not_allowed(request.method)
    validate_scope(emulator, scope, must_exist=False)
    below = False
    name_filter: str | None = None
    type_filter: str | None = None
    for clause in _clauses(request.query.get("$filter")):
        if re.fullmatch(r"atScopeAndBelow\(\)", clause, re.IGNORECASE):
            below = True
            continue
        match = re.fullmatch(r"(roleName|type)\s+eq\s+'(.*)'", clause, re.IGNORECASE)
        if match is None:
            raise _unsupported_filter(clause, "roleName eq '{value}', type eq '{value}' or atScopeAndBelow()")
        # An OData string literal doubles a quote inside it.
        value = match.group(2).replace("''", "'").lower()
        if match.group(1).lower() == "rolename":
            name_filter = value
        else:
            type_filter = value
    roles = [
        role
        for role in _all_roles(emulator)
        if _visible_at(role, scope, below=below)
        and (name_filter is None or role.role_name.lower() == name_filter)
        and (type_filter is None or role.role_type.lower() == type_filter)
    ]
    return page(request, roles, lambda r: _render_role(scope, r), emulator.knobs.page_size)


def _invalid_role_definition_id(value: object) -> ArmError:
    return bad_request("InvalidRoleDefinitionId", f"The role definition ID '{value}' is not valid.")


def _assignable_scope_valid(scope: object) -> bool:
    """A fully qualified scope: a subscription, or a group or resource in one, or a management group. Not
    the root, and no wildcards."""
    if not isinstance(scope, str) or not scope.startswith("/") or "*" in scope:
        return False
    parts = scope.strip("/").split("/")
    if any(not part for part in parts):
        return False
    lowered = [part.lower() for part in parts]
    if lowered[0] == "providers":
        return len(parts) == 4 and lowered[1:3] == ["microsoft.management", "managementgroups"]
    return lowered[0] == "subscriptions" and is_guid(parts[1]) and len(parts) % 2 == 0


def _authorize_assignable_scopes(
    emulator: Emulator, caller: str, action: str, scope: str, assignable_scopes: tuple[str, ...]
) -> None:
    """The caller needs the action at every assignable scope of a custom role, besides the request's scope."""
    refused = [s for s in assignable_scopes if not emulator.is_allowed(caller, action, s)]
    if refused:
        raise ArmError(
            403,
            "LinkedAuthorizationFailed",
            f"The client '{caller}' with object id '{caller}' has permission to perform action '{action}' on "
            f"scope '{scope or '/'}'; however, it does not have permission to perform action '{action}' on "
            f"the linked scope(s) '{','.join(refused)}' or the linked scope(s) are invalid.",
        )


def _string_list(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_request_content(f"'{path}' must be an array of strings")
    return tuple(value)


def _permissions(value: object) -> tuple[catalog.Permission, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid_request_content("'properties.permissions' must be an array of objects")
    return tuple(
        catalog.Permission(
            actions=_string_list(item.get("actions"), f"properties.permissions[{i}].actions"),
            not_actions=_string_list(item.get("notActions"), f"properties.permissions[{i}].notActions"),
            data_actions=_string_list(item.get("dataActions"), f"properties.permissions[{i}].dataActions"),
            not_data_actions=_string_list(
                item.get("notDataActions"), f"properties.permissions[{i}].notDataActions"
            ),
        )
        for i, item in enumerate(value)
    )


def _put_role_definition(emulator: Emulator, request: Request, scope: str, guid: str) -> Reply:
    """Create or update a custom role under the caller's GUID: 201 either way, the same GUID kept."""
    if not is_guid(guid):
        raise _invalid_role_definition_id(guid)
    guid = guid.lower()
    validate_scope(emulator, scope, must_exist=True)
    properties = request.json_object().get("properties")
    if not isinstance(properties, dict):
        raise bad_request(
            "InvalidRequestContent", "The request content was invalid: 'properties' is required."
        )
    role_type = properties.get("type")
    if role_type is not None and (not isinstance(role_type, str) or role_type.lower() != "customrole"):
        raise bad_request(
            "InvalidRoleDefinitionType",
            f"The role definition type '{role_type}' is not valid. Only custom roles can be created or "
            "updated.",
        )
    if catalog.find_role(guid) is not None:
        raise conflict("RoleDefinitionExists", f"A role definition with ID '{guid}' already exists.")
    role_name = properties.get("roleName")
    if not isinstance(role_name, str) or not role_name.strip():
        raise bad_request(
            "RoleDefinitionNameNullOrEmpty", "The role definition name cannot be null or empty."
        )
    description = properties.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_request_content("'properties.description' must be a string")
    permissions = _permissions(properties.get("permissions"))
    raw_scopes = properties.get("assignableScopes")
    if not isinstance(raw_scopes, list) or not raw_scopes:
        raise bad_request(
            "MissingAssignableScopes", "The role definition must have at least one assignable scope."
        )
    for index, assignable in enumerate(raw_scopes):
        if not _assignable_scope_valid(assignable):
            raise bad_request(
                "LinkedInvalidPropertyId",
                f"Property id '{assignable}' at path 'properties.assignableScopes[{index}]' is invalid. "
                "Expect fully qualified resource Id that start with '/subscriptions/{subscriptionId}' or "
                "'/providers/{resourceProviderNamespace}/'.",
            )
    assignable_scopes = tuple(str(s).rstrip("/") for s in raw_scopes)
    caller = request.caller_object_id
    _authorize_assignable_scopes(
        emulator, caller, "Microsoft.Authorization/roleDefinitions/write", scope, assignable_scopes
    )
    for assignable in assignable_scopes:
        validate_scope(emulator, assignable, must_exist=True)

    existing = emulator.world.custom_roles.get(guid)
    wanted = role_name.strip().lower()
    if catalog.find_role_by_name(wanted) is not None or any(
        other.guid != guid and other.role_name.lower() == wanted
        for other in emulator.world.custom_roles.values()
    ):
        raise conflict(
            "RoleDefinitionWithSameNameExists",
            "A custom role with the same name already exists in this directory. Use a different name.",
        )
    if existing is None and len(emulator.world.custom_roles) >= emulator.knobs.custom_role_limit:
        raise bad_request(
            "RoleDefinitionLimitExceeded",
            "Role definition limit exceeded. No more role definitions can be created.",
        )
    stamp = utc_stamp()
    role = state.CustomRole(
        guid=guid,
        role_name=role_name,
        description=description,
        permissions=permissions,
        assignable_scopes=assignable_scopes,
        created_on=existing.created_on if existing else stamp,
        updated_on=stamp,
        created_by=existing.created_by if existing else caller,
        updated_by=caller,
    )
    emulator.world.custom_roles[guid] = role
    emulator.changed()
    return Reply(201, _render_role(scope, role))


def _delete_role_definition(emulator: Emulator, request: Request, scope: str, guid: str) -> Reply:
    """200 with the deleted role, 204 when there is none at the scope; refused while assignments use it."""
    if not is_guid(guid):
        raise _invalid_role_definition_id(guid)
    validate_scope(emulator, scope, must_exist=False)
    if catalog.find_role(guid) is not None:
        raise bad_request("InvalidRoleDefinitionType", "Built-in role definitions cannot be deleted.")
    role = emulator.world.custom_roles.get(guid.lower())
    if role is None or not _visible_at(role, scope, below=True):
        return Reply(204)
    _authorize_assignable_scopes(
        emulator,
        request.caller_object_id,
        "Microsoft.Authorization/roleDefinitions/delete",
        scope,
        role.assignable_scopes,
    )
    if any(_role_guid_of(a) == role.guid for a in emulator.world.role_assignments.values()):
        raise conflict(
            "RoleDefinitionHasAssignments", "There are existing role assignments referencing role."
        )
    del emulator.world.custom_roles[role.guid]
    emulator.changed()
    return Reply(200, _render_role(scope, role))


def _role_guid_of(assignment: state.RoleAssignment) -> str:
    return assignment.role_definition_id.rsplit("/", 1)[-1].lower()


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
    role = emulator.find_role(role_guid)
    if role is None:
        raise bad_request(
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{role_guid}' does not exist.",
        )
    principal_type = properties.get("principalType")
    if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
        raise bad_request("InvalidPrincipalType", f"The principal type '{principal_type}' is not valid.")
    condition, condition_version = _condition(properties)
    validate_scope(emulator, scope, must_exist=True)
    if not any(rbac.scope_covers(assignable, scope) for assignable in role.assignable_scopes):
        raise bad_request(
            "RoleAssignmentScopeNotAssignableToRoleDefinition",
            f"The role definition '{role_guid}' is not available for assignment at scope '{scope or '/'}'.",
        )

    same_name = _by_name(emulator, name)
    if same_name is not None and (
        same_name.scope.lower() != scope.lower()
        or same_name.principal_id.lower() != principal_id.lower()
        or _role_guid_of(same_name) != role_guid
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
                and _role_guid_of(a) == role_guid
            ),
            None,
        )
        if duplicate is not None:
            raise conflict(
                "RoleAssignmentExists",
                "The role assignment already exists. The ID of the existing role assignment is "
                f"{duplicate.name.replace('-', '')}.",
            )
        _check_assignment_limit(emulator, scope)
    resolved_type = _check_principal(emulator, principal_id, principal_type)

    stamp = utc_stamp()
    subscription = _subscription_of(scope) or emulator.world.subscription_id
    caller = request.caller_object_id
    description = properties.get("description")
    delegated = properties.get("delegatedManagedIdentityResourceId")
    if same_name is not None:
        assignment = dataclasses.replace(
            same_name,
            description=description if isinstance(description, str) else None,
            condition=condition,
            condition_version=condition_version,
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
            condition=condition,
            condition_version=condition_version,
            delegated_managed_identity_resource_id=delegated if isinstance(delegated, str) else None,
            created_on=stamp,
            updated_on=stamp,
            created_by=caller,
            updated_by=caller,
        )
    emulator.world.role_assignments[assignment.id.lower()] = assignment
    emulator.changed()
    return Reply(201, _render_assignment(assignment, just_written=True))


def _condition(properties: dict[str, Any]) -> tuple[str | None, str | None]:
    """The condition and its version to store, refused as Azure refuses them: only version 2.0 (the default
    when a condition comes without one), at most 8 KB, and a condition that parses."""
    condition = properties.get("condition")
    version = properties.get("conditionVersion")
    if condition is not None and not isinstance(condition, str):
        raise invalid_request_content("'properties.condition' must be a string")
    if version is not None and not isinstance(version, str):
        raise invalid_request_content("'properties.conditionVersion' must be a string")
    invalid = bad_request("InvalidRoleAssignmentCondition", "The given role assignment condition is invalid.")
    if not condition:
        if version:
            raise invalid
        return None, None
    version = version or conditions.VERSION
    if version != conditions.VERSION or len(condition.encode()) > conditions.MAX_BYTES:
        raise invalid
    try:
        conditions.check_syntax(condition)
    except conditions.ConditionError as error:
        raise invalid from error
    return condition, version


def _check_assignment_limit(emulator: Emulator, scope: str) -> None:
    """A new assignment in a subscription that already holds the limit is refused. Assignments at the
    subscription and at its groups and resources count; those at management groups and the root do not."""
    subscription = _subscription_of(scope)
    if subscription is None:
        return
    prefix = f"/subscriptions/{subscription}".lower()
    held = sum(
        1
        for a in emulator.world.role_assignments.values()
        if a.scope.lower() == prefix or a.scope.lower().startswith(prefix + "/")
    )
    if held >= emulator.knobs.role_assignment_limit:
        raise bad_request("RoleAssignmentLimitExceeded", "No more role assignments can be created.")


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
        role = emulator.find_role(guid)
        for permission in role.permissions if role is not None else ():
            value.append(
                {
                    "actions": list(permission.actions),
                    "notActions": list(permission.not_actions),
                    "dataActions": list(permission.data_actions),
                    "notDataActions": list(permission.not_data_actions),
                }
            )
    return Reply(200, {"value": value})
