"""Routes an authenticated ARM request to its handler, after checking its api-version and the caller's
RBAC rights for the action it performs at its scope (as ARM does before it forwards to a provider).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from azure_emulator import catalog
from azure_emulator.arm import authorization, identities, paths, resources
from azure_emulator.arm.http import Reply, Request, method_not_allowed, require_api_version
from azure_emulator.emulator import Emulator
from azure_emulator.errors import ArmError, bad_request, not_found

_VERBS = {
    "GET": "read",
    "HEAD": "read",
    "PUT": "write",
    "PATCH": "write",
    "POST": "action",
    "DELETE": "delete",
}


def _verb(method: str) -> str:
    return _VERBS.get(method.upper(), "read")


def _read_only(request: Request) -> None:
    """Lists and provider metadata only answer GET (HEAD arrives here as GET)."""
    if request.method != "GET":
        raise method_not_allowed(request.method)


def _no_route(request: Request) -> ArmError:
    return not_found(
        "InvalidRequestUri", f"The request uri '{request.path}' is not valid for method '{request.method}'."
    )


def handle(emulator: Emulator, request: Request) -> Reply:
    """Route one request; HEAD is answered as ARM does for existence checks: 204 or 404, no body."""
    if request.method != "HEAD":
        return _handle(emulator, request)
    try:
        _handle(emulator, dataclasses.replace(request, method="GET"))
    except ArmError as error:
        if error.status == 404:
            return Reply(404)
        raise
    return Reply(204)


def _handle(emulator: Emulator, request: Request) -> Reply:
    segments = request.segments
    lowered = [s.lower() for s in segments]
    caller = request.caller_object_id

    def authorize(action: str, scope: str) -> None:
        emulator.authorize(caller, action, scope)

    # Microsoft.Authorization is an extension provider: `{any scope}/providers/Microsoft.Authorization/...`.
    extension_at = next(
        (
            i
            for i in range(len(lowered) - 3, -1, -1)
            if lowered[i] == "providers" and lowered[i + 1] == "microsoft.authorization"
        ),
        None,
    )
    if extension_at is not None:
        scope = "/" + "/".join(segments[:extension_at]) if extension_at else ""
        kind, rest = lowered[extension_at + 2], segments[extension_at + 3 :]
        if kind == "roleassignments" and len(rest) <= 1:
            require_api_version(
                request,
                catalog.api_versions("Microsoft.Authorization", "roleAssignments"),
                type_name="roleAssignments",
            )
            authorize(f"Microsoft.Authorization/roleAssignments/{_verb(request.method)}", scope or "/")
            if not rest:
                _read_only(request)
                return authorization.list_role_assignments(emulator, request, scope)
            return authorization.role_assignment(emulator, request, scope, rest[0])
        if kind == "roledefinitions" and len(rest) <= 1:
            require_api_version(
                request,
                catalog.api_versions("Microsoft.Authorization", "roleDefinitions"),
                type_name="roleDefinitions",
            )
            # Role definitions are readable by every principal of the tenant, at any scope; writing or
            # deleting a custom role takes roleDefinitions/write or /delete at the request's scope (and at
            # each of the role's assignable scopes, which the handler checks).
            if request.method in ("PUT", "DELETE"):
                authorize(f"Microsoft.Authorization/roleDefinitions/{_verb(request.method)}", scope or "/")
            return authorization.role_definitions(emulator, request, scope, rest[0] if rest else None)
        if kind == "permissions" and not rest:
            require_api_version(
                request,
                catalog.api_versions("Microsoft.Authorization", "permissions"),
                type_name="permissions",
            )
            return authorization.permissions(emulator, request, scope)
        raise bad_request(
            "InvalidResourceType",
            f"The resource type '{segments[extension_at + 2]}' could not be found in the namespace "
            f"'Microsoft.Authorization' for api version '{request.api_version}'.",
        )

    if not lowered:
        raise _no_route(request)
    if (
        lowered[-4:] == ["providers", "microsoft.managedidentity", "identities", "default"]
        and len(lowered) > 4
    ):
        scope = "/" + "/".join(segments[:-4])
        require_api_version(
            request,
            catalog.api_versions("Microsoft.ManagedIdentity", "userAssignedIdentities"),
            type_name="Microsoft.ManagedIdentity/identities",
        )
        authorize("Microsoft.ManagedIdentity/identities/read", scope)
        return identities.system_assigned_identity(emulator, request, scope)
    if lowered[0] == "providers":
        if len(lowered) == 3 and lowered[2] == "operations":
            _read_only(request)
            return resources.list_provider_operations(emulator, request, segments[1])
        raise _no_route(request)
    if lowered[0] != "subscriptions":
        raise _no_route(request)
    if len(lowered) == 1:
        require_api_version(request, catalog.RESOURCES_API_VERSIONS)
        _read_only(request)
        return resources.list_subscriptions(emulator, request)
    subscription = segments[1]
    resources.require_subscription(emulator, subscription)
    subscription_scope = f"/subscriptions/{subscription}"
    if len(lowered) == 2:
        require_api_version(request, catalog.RESOURCES_API_VERSIONS)
        authorize("Microsoft.Resources/subscriptions/read", subscription_scope)
        _read_only(request)
        return resources.get_subscription(emulator, request)

    if lowered[2] == "providers":
        return _subscription_providers(emulator, request, segments, authorize)

    if lowered[2] == "resourcegroups":
        if len(lowered) == 3:
            require_api_version(request, catalog.RESOURCES_API_VERSIONS)
            visible = emulator.list_filter(caller, resources.GROUP_READ, subscription_scope)
            _read_only(request)
            return resources.list_groups(emulator, request, visible)
        group_scope = f"{subscription_scope}/resourceGroups/{segments[3]}"
        if len(lowered) == 4:
            require_api_version(request, catalog.RESOURCES_API_VERSIONS)
            authorize(
                f"Microsoft.Resources/subscriptions/resourceGroups/{_verb(request.method)}", group_scope
            )
            return resources.resource_group(emulator, request, subscription, segments[3])
        if len(lowered) == 5 and lowered[4] == "resources":
            require_api_version(request, catalog.RESOURCES_API_VERSIONS)
            visible = emulator.list_filter(
                caller, "Microsoft.Resources/subscriptions/resourceGroups/resources/read", group_scope
            )
            _read_only(request)
            resources.require_group(emulator, subscription, segments[3])
            return resources.list_resources(emulator, request, None, group_scope, visible)
        path = paths.parse_resource_path(segments)
        if path is not None:
            return _resource(emulator, request, path, authorize)
    raise _no_route(request)


def _subscription_providers(
    emulator: Emulator, request: Request, segments: tuple[str, ...], authorize: Callable[[str, str], None]
) -> Reply:
    lowered = [s.lower() for s in segments]
    subscription_scope = f"/subscriptions/{segments[1]}"
    if len(lowered) == 3:
        require_api_version(request, catalog.RESOURCES_API_VERSIONS)
        authorize("Microsoft.Resources/subscriptions/providers/read", subscription_scope)
        _read_only(request)
        return resources.list_providers(emulator, request)
    namespace = segments[3]
    if len(lowered) == 4:
        require_api_version(request, catalog.RESOURCES_API_VERSIONS)
        authorize("Microsoft.Resources/subscriptions/providers/read", subscription_scope)
        _read_only(request)
        return resources.get_provider(emulator, request, namespace)
    if len(lowered) == 5 and lowered[4] == "register" and request.method == "POST":
        require_api_version(request, catalog.RESOURCES_API_VERSIONS)
        authorize(f"{namespace}/register/action", subscription_scope)
        return resources.register_provider(emulator, request, namespace)
    if len(lowered) == 8 and lowered[4] == "locations" and lowered[6] == "operations":
        provider = resources.find_provider_or_fail(namespace, status=400)
        info = provider.resource_type("locations/operations")
        require_api_version(request, info.api_versions if info else (), type_name="locations/operations")
        authorize(f"{provider.namespace}/locations/operations/read", subscription_scope)
        _read_only(request)
        return resources.operation_status(emulator, request, segments[7])
    if len(lowered) == 5:
        # A list of one type across the subscription.
        path = paths.ResourcePath(segments[1], "", namespace, (segments[4],), ())
        typed = resources.resolve_type(path, request.api_version)
        require_api_version(request, typed.info.api_versions, type_name=typed.full_type)
        visible = emulator.list_filter(
            request.caller_object_id, f"{typed.full_type}/read", subscription_scope
        )
        _read_only(request)
        if typed.full_type == identities.IDENTITY_TYPE:
            return identities.list_identities(emulator, request, subscription_scope, None, visible)
        return resources.list_resources(emulator, request, typed, subscription_scope, visible)
    raise _no_route(request)


def _resource(
    emulator: Emulator, request: Request, path: paths.ResourcePath, authorize: Callable[[str, str], None]
) -> Reply:
    typed = resources.resolve_type(path, request.api_version)
    require_api_version(request, typed.info.api_versions, type_name=typed.full_type)
    if not typed.info.served:
        raise bad_request(
            "InvalidResourceType",
            f"The resource type '{typed.path.type_path}' could not be found in the namespace "
            f"'{typed.path.namespace}' for api version '{request.api_version}'.",
        )
    path = typed.path
    if path.is_collection:
        parent = path.parent()
        scope = parent.resource_id() if parent is not None else path.resource_group_id
        if typed.full_type == identities.FIC_TYPE:
            authorize(f"{typed.full_type}/read", scope)
            _read_only(request)
            return identities.federated_credentials(emulator, request, typed)
        visible = emulator.list_filter(request.caller_object_id, f"{typed.full_type}/read", scope)
        _read_only(request)
        if typed.full_type == identities.IDENTITY_TYPE:
            return identities.list_identities(
                emulator, request, path.resource_group_id, path.resource_group, visible
            )
        resources.require_group(emulator, path.subscription_id, path.resource_group)
        return resources.list_resources(emulator, request, typed, path.resource_group_id, visible)
    authorize(f"{typed.full_type}/{_verb(request.method)}", path.resource_id())
    if typed.full_type == identities.IDENTITY_TYPE:
        return identities.user_assigned_identity(emulator, request, typed)
    if typed.full_type == identities.FIC_TYPE:
        return identities.federated_credentials(emulator, request, typed)
    return resources.generic_resource(emulator, request, typed)
