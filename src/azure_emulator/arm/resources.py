"""Microsoft.Resources (subscriptions, providers, resource groups) and the generic tracked resources
(VMs, sites and slots, vaults, storage accounts, virtual networks), including their identity blocks and
the long-running-operation protocol of VM writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from azure_emulator import catalog, state
from azure_emulator.arm import identity_blocks, paths
from azure_emulator.arm.http import (
    Reply,
    Request,
    check_location_unchanged,
    is_guid,
    method_not_allowed,
    new_operation_id,
    offered_region,
    page,
    parse_tags,
    required_location,
    utc_stamp,
)
from azure_emulator.catalog import location_slug
from azure_emulator.emulator import Emulator
from azure_emulator.errors import (
    ArmError,
    bad_request,
    conflict,
    not_found,
    resource_group_not_found,
    resource_not_found,
)

# Whether the caller sees one item of a list: (the item's read action, its id) -> bool.
Visible = Callable[[str, str], bool]
_RESOURCE_GROUP_NAME = re.compile(r"^[-\w._()]{1,90}$", re.UNICODE)
# Top-level fields every tracked resource has; anything else the caller sends (kind, sku...) is echoed.
_ENVELOPE_FIELDS = frozenset({"id", "name", "type", "location", "tags", "properties", "identity"})


# --- subscriptions ---------------------------------------------------------------------------------------


def require_subscription(emulator: Emulator, subscription_id: str) -> None:
    if not is_guid(subscription_id):
        raise bad_request(
            "InvalidSubscriptionId",
            f"The provided subscription identifier '{subscription_id}' is malformed or invalid.",
        )
    if subscription_id.lower() != emulator.world.subscription_id.lower():
        raise not_found("SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")


def _render_subscription(emulator: Emulator) -> dict[str, Any]:
    subscription = emulator.world.subscription_id
    return {
        "id": f"/subscriptions/{subscription}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": subscription,
        "tenantId": emulator.world.tenant_id,
        "displayName": "Azure emulator subscription",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def list_subscriptions(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, {"value": [_render_subscription(emulator)]})


def get_subscription(emulator: Emulator, request: Request) -> Reply:
    return Reply(200, _render_subscription(emulator))


# --- providers -------------------------------------------------------------------------------------------


def _render_provider(emulator: Emulator, provider: catalog.ProviderInfo) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{emulator.world.subscription_id}/providers/{provider.namespace}",
        "namespace": provider.namespace,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {
                "resourceType": resource_type.name,
                "locations": [region.display_name for region in resource_type.locations],
                "apiVersions": list(resource_type.api_versions),
                "defaultApiVersion": resource_type.api_versions[0],
                "capabilities": "SupportsTags, SupportsLocation" if resource_type.served else "None",
            }
            for resource_type in provider.resource_types
        ],
    }


def find_provider_or_fail(namespace: str, *, status: int = 404) -> catalog.ProviderInfo:
    provider = catalog.find_provider(namespace)
    if provider is None:
        raise ArmError(
            status, "InvalidResourceNamespace", f"The resource namespace '{namespace}' is invalid."
        )
    return provider


def list_providers(emulator: Emulator, request: Request) -> Reply:
    return page(request, catalog.PROVIDERS, lambda p: _render_provider(emulator, p), emulator.knobs.page_size)


def get_provider(emulator: Emulator, request: Request, namespace: str) -> Reply:
    return Reply(200, _render_provider(emulator, find_provider_or_fail(namespace)))


def register_provider(emulator: Emulator, request: Request, namespace: str) -> Reply:
    return Reply(200, _render_provider(emulator, find_provider_or_fail(namespace)))


def list_provider_operations(emulator: Emulator, request: Request, namespace: str) -> Reply:
    provider = find_provider_or_fail(namespace)
    operations = [
        {
            "name": f"{provider.namespace}/{resource_type.name}/{verb}",
            "display": {
                "provider": provider.namespace,
                "resource": resource_type.name,
                "operation": verb,
                "description": f"{verb} {resource_type.name}",
            },
        }
        for resource_type in provider.resource_types
        if resource_type.served
        for verb in ("read", "write", "delete")
    ]
    return Reply(200, {"value": operations})


# --- resource groups -------------------------------------------------------------------------------------


def _render_group(group: state.ResourceGroup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": dict(group.tags),
        "properties": {"provisioningState": "Succeeded"},
    }
    if group.managed_by:
        body["managedBy"] = group.managed_by
    return body


def find_group(emulator: Emulator, subscription_id: str, name: str) -> state.ResourceGroup | None:
    return emulator.world.resource_groups.get(
        f"/subscriptions/{subscription_id}/resourcegroups/{name}".lower()
    )


def require_group(emulator: Emulator, subscription_id: str, name: str) -> state.ResourceGroup:
    group = find_group(emulator, subscription_id, name)
    if group is None:
        raise resource_group_not_found(name)
    return group


GROUP_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"


def list_groups(emulator: Emulator, request: Request, visible: Visible) -> Reply:
    groups = sorted(
        (g for g in emulator.world.resource_groups.values() if visible(GROUP_READ, g.id)),
        key=lambda g: g.name.lower(),
    )
    return page(request, groups, _render_group, emulator.knobs.page_size)


def resource_group(emulator: Emulator, request: Request, subscription_id: str, name: str) -> Reply:
    key = f"/subscriptions/{subscription_id}/resourcegroups/{name}".lower()
    existing = emulator.world.resource_groups.get(key)
    if request.method == "GET":
        if existing is None:
            raise resource_group_not_found(name)
        return Reply(200, _render_group(existing))
    if request.method == "PUT":
        _check_group_name(name)
        body = request.json_object()
        location = required_location(body)
        region = offered_region(location, catalog.RESOURCE_GROUP_REGIONS, resource_type=None)
        if existing is not None and location_slug(existing.location) != region.name:
            raise conflict(
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already exists in "
                f"location '{existing.location}'.",
            )
        group = state.ResourceGroup(
            subscription_id=emulator.world.subscription_id,
            name=existing.name if existing else name,
            location=existing.location if existing else region.name,
            tags=parse_tags(body.get("tags")),
            managed_by=body.get("managedBy") if isinstance(body.get("managedBy"), str) else None,
        )
        emulator.world.resource_groups[key] = group
        emulator.changed()
        return Reply(200 if existing else 201, _render_group(group))
    if request.method == "PATCH":
        if existing is None:
            raise resource_group_not_found(name)
        body = request.json_object()
        if "tags" in body:
            existing = dataclasses.replace(existing, tags=parse_tags(body["tags"]))
            emulator.world.resource_groups[key] = existing
            emulator.changed()
        return Reply(200, _render_group(existing))
    if request.method == "DELETE":
        if existing is None:
            raise resource_group_not_found(name)
        _delete_group_contents(emulator, existing)
        del emulator.world.resource_groups[key]
        emulator.changed()
        # Azure answers 202 and deletes in the background; here deletion is done, so the final 200.
        return Reply(200)
    raise method_not_allowed(request.method)


def _check_group_name(name: str) -> None:
    if _RESOURCE_GROUP_NAME.match(name) and not name.endswith("."):
        return
    invalid = "".join(sorted({c for c in name if not (c.isalnum() or c in "-_.()")})) or "."
    raise bad_request(
        "InvalidResourceGroup",
        f"The provided resource group name '{name}' has these invalid characters: '{invalid}'. The name can "
        "only be a letter, digit, '-', '.', '(', ')' or '_', at most 90 characters, and cannot end in '.'.",
    )


def _delete_group_contents(emulator: Emulator, group: state.ResourceGroup) -> None:
    prefix = group.id.lower() + "/"
    for key in [k for k in emulator.world.resources if k.startswith(prefix)]:
        _forget_resource(emulator, key)


# --- generic tracked resources ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TypedPath:
    """A resource path resolved against the catalogue: the provider's casing and the type's behaviour."""

    path: paths.ResourcePath
    info: catalog.ResourceTypeInfo

    @property
    def full_type(self) -> str:
        return f"{self.path.namespace}/{self.path.type_path}"


def resolve_type(path: paths.ResourcePath, api_version: str | None) -> TypedPath:
    provider = find_provider_or_fail(path.namespace, status=400)
    info = provider.resource_type(path.type_path)
    if info is None:
        raise bad_request(
            "InvalidResourceType",
            f"The resource type '{path.type_path}' could not be found in the namespace "
            f"'{provider.namespace}' for api version '{api_version}'.",
        )
    return TypedPath(path.with_canonical_types(provider.namespace, info.name), info)


def _etags(info: catalog.ResourceTypeInfo, api_version: str | None) -> bool:
    return info.etags_since is not None and (api_version or "") >= info.etags_since


def _etag(resource: state.Resource) -> str:
    """A strong etag derived from the stored state, so every change of the resource changes it."""
    content = json.dumps(dataclasses.asdict(resource), sort_keys=True, default=str)
    return f'"{hashlib.sha256(content.encode()).hexdigest()[:16]}"'


def _check_if_match(request: Request, typed: TypedPath, existing: state.Resource | None) -> None:
    """`If-Match` on a write: `*` needs the resource to exist, anything else its current etag."""
    wanted = request.if_match
    if wanted is None or not _etags(typed.info, request.api_version):
        return
    current = _etag(existing) if existing is not None else None
    if current is None or (wanted.strip() != "*" and wanted.strip() != current):
        raise ArmError(
            412,
            "PreconditionFailed",
            f"The etag {wanted} in the If-Match header does not match the current etag "
            f"{current or '(none: the resource does not exist)'} of resource '{typed.path.resource_id()}'.",
        )


def _render_resource(
    emulator: Emulator, resource: state.Resource, api_version: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": resource.id,
        "name": resource.name,
        "type": resource.type,
        "location": resource.location,
        "tags": dict(resource.tags),
    }
    body.update(resource.extra)
    properties = dict(resource.properties)
    properties["provisioningState"] = _provisioning_state(emulator, resource.id)
    body["properties"] = properties
    identity = identity_blocks.render(resource.identity)
    if identity is not None:
        body["identity"] = identity
    info = _type_info(resource.type)
    if info is not None and _etags(info, api_version):
        body["etag"] = _etag(resource)
    return body


def _type_info(resource_type: str) -> catalog.ResourceTypeInfo | None:
    namespace, _, type_path = resource_type.partition("/")
    provider = next((p for p in catalog.PROVIDERS if p.namespace.lower() == namespace.lower()), None)
    return provider.resource_type(type_path) if provider is not None else None


def _provisioning_state(emulator: Emulator, resource_id: str) -> str:
    for operation_resource, completes_at, _ in emulator.operations.values():
        if operation_resource.lower() == resource_id.lower() and time.monotonic() < completes_at:
            return "Updating"
    return "Succeeded"


def _not_found(typed: TypedPath) -> ArmError:
    path = typed.path
    chain = "/".join(f"{t}/{n}" for t, n in zip(path.types[:-1], path.names[:-1], strict=False))
    resource_type = f"{path.namespace}/{chain + '/' if chain else ''}{path.types[-1]}"
    return resource_not_found(resource_type, path.names[-1], path.resource_group)


def _forget_resource(emulator: Emulator, key: str) -> None:
    """Remove a resource, its children, its system-assigned principal and its federated credentials."""
    for child_key in [k for k in emulator.world.resources if k.startswith(key + "/")]:
        _forget_resource(emulator, child_key)
    resource = emulator.world.resources.pop(key, None)
    if resource is None:
        return
    if resource.type == identity_blocks.USER_ASSIGNED_IDENTITY_TYPE:
        emulator.world.principals.pop(resource.properties.get("principalId", ""), None)
        emulator.world.federated_credentials.pop(key, None)
    identity_blocks.release(emulator, resource.identity)


def generic_resource(emulator: Emulator, request: Request, typed: TypedPath) -> Reply:
    path = typed.path
    resource_id = path.resource_id()
    key = resource_id.lower()
    existing = emulator.world.resources.get(key)
    if request.method == "GET":
        if existing is None:
            require_group(emulator, path.subscription_id, path.resource_group)
            raise _not_found(typed)
        return Reply(200, _render_resource(emulator, existing, request.api_version))
    if request.method == "DELETE":
        if existing is None:
            return Reply(204)
        _forget_resource(emulator, key)
        emulator.changed()
        return Reply(200)
    if request.method == "PUT":
        _check_if_match(request, typed, existing)
        return _put_resource(emulator, request, typed, existing)
    if request.method == "PATCH":
        if existing is None:
            require_group(emulator, path.subscription_id, path.resource_group)
            raise _not_found(typed)
        _check_if_match(request, typed, existing)
        return _patch_resource(emulator, request, typed, existing)
    raise method_not_allowed(request.method)


def _check_parent(emulator: Emulator, typed: TypedPath) -> None:
    require_group(emulator, typed.path.subscription_id, typed.path.resource_group)
    parent = typed.path.parent()
    if parent is not None and parent.resource_id().lower() not in emulator.world.resources:
        raise not_found(
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource "
            f"'{'/'.join(parent.names)}' not found.",
        )


def _put_resource(
    emulator: Emulator, request: Request, typed: TypedPath, existing: state.Resource | None
) -> Reply:
    _check_parent(emulator, typed)
    body = request.json_object()
    location = required_location(body)
    region = offered_region(location, typed.info.locations, resource_type=typed.full_type)
    if existing is not None:
        check_location_unchanged(
            existing.location, location, name=typed.path.names[-1], resource_group=typed.path.resource_group
        )
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_request("InvalidRequestContent", "The 'properties' property must be an object.")
    resource_id = existing.id if existing else typed.path.resource_id()
    identity = existing.identity if existing else None
    write_action = f"{typed.full_type}/write"
    if typed.info.supports_identity:
        identity = identity_blocks.resolve(
            emulator,
            caller=request.caller_object_id,
            write_action=write_action,
            resource_id=resource_id,
            type_info=typed.info,
            current=identity,
            requested=body.get("identity"),
            merge=False,
        )
    resource = state.Resource(
        id=resource_id,
        type=typed.full_type,
        name="/".join(typed.path.names),
        location=existing.location if existing else region.name,
        tags=parse_tags(body.get("tags")),
        properties={k: v for k, v in properties.items() if k != "provisioningState"},
        identity=identity,
        extra={k: v for k, v in body.items() if k not in _ENVELOPE_FIELDS},
    )
    emulator.world.resources[resource_id.lower()] = resource
    emulator.changed()
    return _write_reply(emulator, request, typed, resource, 200 if existing else 201)


def _patch_resource(
    emulator: Emulator, request: Request, typed: TypedPath, existing: state.Resource
) -> Reply:
    body = request.json_object()
    tags = parse_tags(body["tags"]) if "tags" in body else existing.tags
    properties = dict(existing.properties)
    patch_properties = body.get("properties")
    if isinstance(patch_properties, dict):
        properties.update({k: v for k, v in patch_properties.items() if k != "provisioningState"})
    identity = existing.identity
    if typed.info.supports_identity and "identity" in body:
        identity = identity_blocks.resolve(
            emulator,
            caller=request.caller_object_id,
            write_action=f"{typed.full_type}/write",
            resource_id=existing.id,
            type_info=typed.info,
            current=existing.identity,
            requested=body["identity"],
            merge=True,
        )
    extra = dict(existing.extra)
    extra.update({k: v for k, v in body.items() if k not in _ENVELOPE_FIELDS})
    resource = dataclasses.replace(existing, tags=tags, properties=properties, identity=identity, extra=extra)
    emulator.world.resources[existing.id.lower()] = resource
    emulator.changed()
    return _write_reply(emulator, request, typed, resource, 200)


def _write_reply(
    emulator: Emulator, request: Request, typed: TypedPath, resource: state.Resource, status: int
) -> Reply:
    """Synchronous answer, or for long-running types with `lro_seconds` > 0 the Azure-AsyncOperation dance."""
    seconds = emulator.knobs.lro_seconds
    if not typed.info.long_running or seconds <= 0:
        return Reply(status, _render_resource(emulator, resource, request.api_version))
    operation_id = new_operation_id()
    emulator.operations[operation_id] = (resource.id, time.monotonic() + seconds, "Succeeded")
    location = location_slug(resource.location)
    status_url = (
        f"{request.base_url}/subscriptions/{typed.path.subscription_id}/providers/{typed.path.namespace}"
        f"/locations/{location}/operations/{operation_id}?api-version={request.api_version}"
    )
    body = _render_resource(emulator, resource, request.api_version)
    body["properties"]["provisioningState"] = "Creating" if status == 201 else "Updating"
    headers = {"Azure-AsyncOperation": status_url, "Retry-After": str(max(1, math.ceil(seconds)))}
    return Reply(status, body, headers)


def operation_status(emulator: Emulator, request: Request, operation_id: str) -> Reply:
    operation = emulator.operations.get(operation_id.lower())
    if operation is None:
        raise not_found("OperationNotFound", f"The operation '{operation_id}' could not be found.")
    _, completes_at, final_status = operation
    remaining = completes_at - time.monotonic()
    if remaining > 0:
        return Reply(
            200,
            {"name": operation_id, "status": "InProgress", "startTime": utc_stamp()},
            {"Retry-After": str(max(1, math.ceil(remaining)))},
        )
    return Reply(
        200, {"name": operation_id, "status": final_status, "startTime": utc_stamp(), "endTime": utc_stamp()}
    )


def list_resources(
    emulator: Emulator, request: Request, typed: TypedPath | None, scope_prefix: str, visible: Visible
) -> Reply:
    """Resources of one type (or of every type, `typed` None) whose id starts with `scope_prefix`."""
    prefix = scope_prefix.lower() + "/"
    items = [
        r
        for key, r in sorted(emulator.world.resources.items())
        if key.startswith(prefix)
        and (typed is None or r.type.lower() == typed.full_type.lower())
        and visible(f"{r.type}/read", r.id)
    ]
    if typed is not None and typed.path.names:  # children of one parent (slots of a site)
        parent_prefix = typed.path.parent()
        assert parent_prefix is not None
        items = [r for r in items if r.id.lower().startswith(parent_prefix.resource_id().lower() + "/")]
    return page(
        request, items, lambda r: _render_resource(emulator, r, request.api_version), emulator.knobs.page_size
    )
