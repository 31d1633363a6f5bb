"""Microsoft.ManagedIdentity: user-assigned identities and their federated identity credentials.

Each identity owns a service principal in the directory (its `principalId`, with the `clientId` as app
id), kept across re-PUTs and replaced when the identity is deleted and created again. Federated
credential writes hold their identity for `fic_write_seconds`, so writes that overlap get the 409 Azure
gives for concurrent writes under one identity.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from azure_emulator import state
from azure_emulator.arm import paths
from azure_emulator.arm.http import (
    Reply,
    Request,
    check_location_unchanged,
    method_not_allowed,
    offered_region,
    page,
    parse_tags,
    required_location,
)
from azure_emulator.arm.resources import TypedPath, Visible, require_group
from azure_emulator.catalog import location_slug
from azure_emulator.emulator import Emulator
from azure_emulator.errors import ArmError, bad_request, conflict, not_found, resource_not_found

IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
MAX_FEDERATED_CREDENTIALS = 20
_IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
_FIC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")
# api-versions whose responses carry `isolationScope` (2024-11-30 and later).
_ISOLATION_SCOPE_FROM = "2024-11-30"


def identity_id(path: paths.ResourcePath) -> str:
    # The MSI RP spells `resourcegroups` in lower case in every id it returns, whatever the request used.
    return (
        f"/subscriptions/{path.subscription_id}/resourcegroups/{path.resource_group}"
        f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{path.names[0]}"
    )


def _render_identity(resource: state.Resource, api_version: str | None) -> dict[str, Any]:
    properties = {
        "tenantId": resource.properties["tenantId"],
        "principalId": resource.properties["principalId"],
        "clientId": resource.properties["clientId"],
    }
    if (api_version or "") >= _ISOLATION_SCOPE_FROM and not (api_version or "").endswith("preview"):
        properties["isolationScope"] = resource.properties.get("isolationScope", "None")
    return {
        "id": resource.id,
        "name": resource.name,
        "type": IDENTITY_TYPE,
        "location": resource.location,
        "tags": dict(resource.tags),
        "properties": properties,
    }


def _identity_not_found(path: paths.ResourcePath) -> ArmError:
    return resource_not_found(IDENTITY_TYPE, path.names[0], path.resource_group)


def user_assigned_identity(emulator: Emulator, request: Request, typed: TypedPath) -> Reply:
    path = typed.path
    key = identity_id(path).lower()
    existing = emulator.world.resources.get(key)
    if request.method == "GET":
        if existing is None:
            require_group(emulator, path.subscription_id, path.resource_group)
            raise _identity_not_found(path)
        return Reply(200, _render_identity(existing, request.api_version))
    if request.method == "DELETE":
        if existing is None:
            return Reply(204)
        del emulator.world.resources[key]
        emulator.world.federated_credentials.pop(key, None)
        # The principal leaves the directory; role assignments naming it linger, as in Azure.
        emulator.world.principals.pop(existing.properties["principalId"], None)
        emulator.changed()
        return Reply(200)
    if request.method == "PATCH":
        if existing is None:
            require_group(emulator, path.subscription_id, path.resource_group)
            raise _identity_not_found(path)
        body = request.json_object()
        if "tags" in body:
            existing = dataclasses.replace(existing, tags=parse_tags(body["tags"]))
            emulator.world.resources[key] = existing
            emulator.changed()
        return Reply(200, _render_identity(existing, request.api_version))
    if request.method == "PUT":
        return _put_identity(emulator, request, typed, existing)
    raise method_not_allowed(request.method)


def _put_identity(
    emulator: Emulator, request: Request, typed: TypedPath, existing: state.Resource | None
) -> Reply:
    path = typed.path
    name = path.names[0]
    require_group(emulator, path.subscription_id, path.resource_group)
    if not _IDENTITY_NAME.match(name):
        raise bad_request(
            "InvalidResourceName",
            f"Resource name '{name}' is invalid. The name can be 3-128 characters long, must start with a "
            "letter or number, and can contain only letters, numbers, hyphens and underscores.",
        )
    body = request.json_object()
    location = required_location(body)
    region = offered_region(location, typed.info.locations, resource_type=IDENTITY_TYPE)
    if existing is not None:
        check_location_unchanged(existing.location, location, name=name, resource_group=path.resource_group)
    requested_properties = body.get("properties") or {}
    if not isinstance(requested_properties, dict):
        raise bad_request("InvalidRequestContent", "The 'properties' property must be an object.")
    isolation_scope = requested_properties.get("isolationScope", "None")
    if isolation_scope not in ("None", "Regional"):
        raise bad_request("InvalidParameter", f"The isolation scope '{isolation_scope}' is not valid.")
    if existing is None:
        resource_id = identity_id(path)
        principal = emulator.world.add_principal(display_name=name, owner_resource_id=resource_id)
        properties = {
            "tenantId": emulator.world.tenant_id,
            "principalId": principal.object_id,
            "clientId": principal.app_id,
            "isolationScope": isolation_scope,
        }
        resource = state.Resource(
            id=resource_id,
            type=IDENTITY_TYPE,
            name=name,
            location=region.name,
            tags=parse_tags(body.get("tags")),
            properties=properties,
        )
    else:
        resource = dataclasses.replace(
            existing,
            tags=parse_tags(body.get("tags")),
            properties={**existing.properties, "isolationScope": isolation_scope},
        )
    emulator.world.resources[resource.id.lower()] = resource
    emulator.changed()
    if existing is not None:
        return Reply(200, _render_identity(resource, request.api_version))
    return Reply(201, _render_identity(resource, request.api_version), {"Location": resource.id})


def list_identities(
    emulator: Emulator, request: Request, scope_prefix: str, resource_group: str | None, visible: Visible
) -> Reply:
    if resource_group is not None:
        require_group(emulator, emulator.world.subscription_id, resource_group)
    prefix = scope_prefix.lower() + "/"
    items = [
        r
        for key, r in sorted(emulator.world.resources.items())
        if r.type == IDENTITY_TYPE and key.startswith(prefix) and visible(f"{IDENTITY_TYPE}/read", r.id)
    ]
    return page(request, items, lambda r: _render_identity(r, request.api_version), emulator.knobs.page_size)


# --- federated identity credentials ------------------------------------------------------------------------


def _render_credential(credential: state.FederatedCredential) -> dict[str, Any]:
    return {
        "id": credential.id,
        "name": credential.name,
        "type": FIC_TYPE,
        "properties": {
            "issuer": credential.issuer,
            "subject": credential.subject,
            "audiences": list(credential.audiences),
        },
    }


def federated_credentials(emulator: Emulator, request: Request, typed: TypedPath) -> Reply:
    path = typed.path
    owner_key = identity_id(path).lower()
    owner = emulator.world.resources.get(owner_key)
    if owner is None:
        require_group(emulator, path.subscription_id, path.resource_group)
        raise _identity_not_found(path)
    credentials = emulator.world.federated_credentials.get(owner_key, {})
    if path.is_collection:
        if request.method != "GET":
            raise method_not_allowed(request.method)
        items = sorted(credentials.values(), key=lambda c: c.name.lower())
        return page(request, items, _render_credential, emulator.knobs.page_size)
    name = path.names[1]
    existing = credentials.get(name.lower())
    if request.method == "GET":
        if existing is None:
            raise resource_not_found(f"{FIC_TYPE}", name, path.resource_group)
        return Reply(200, _render_credential(existing))
    if request.method not in ("PUT", "DELETE"):
        raise method_not_allowed(request.method)

    now = time.monotonic()
    if emulator.fic_writes_until.get(owner_key, 0.0) > now:
        raise conflict(
            "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
            "Too many Federated Identity Credentials are written concurrently for the managed identity "
            f"'{_concurrency_id(owner.id)}'. Concurrent Federated Identity Credentials writes under the "
            "same managed identity are not supported.",
        )
    if request.method == "DELETE":
        if existing is None:
            return Reply(204)
        emulator.fic_writes_until[owner_key] = now + emulator.knobs.fic_write_seconds
        del credentials[name.lower()]
        emulator.changed()
        return Reply(200, delay=emulator.knobs.fic_write_seconds)

    credential = _validated_credential(request, owner.id, name, existing, credentials)
    emulator.fic_writes_until[owner_key] = now + emulator.knobs.fic_write_seconds
    emulator.world.federated_credentials.setdefault(owner_key, {})[name.lower()] = credential
    emulator.changed()
    return Reply(
        200 if existing else 201, _render_credential(credential), delay=emulator.knobs.fic_write_seconds
    )


def _concurrency_id(resource_id: str) -> str:
    """Azure's spelling in this message: provider and type segments lower-cased, names kept."""
    parsed = paths.parse_resource_id(resource_id)
    assert parsed is not None
    return (
        f"/subscriptions/{parsed.subscription_id}/resourcegroups/{parsed.resource_group}"
        f"/providers/microsoft.managedidentity/userassignedidentities/{parsed.names[0]}"
    )


def _validated_credential(
    request: Request,
    owner_id: str,
    name: str,
    existing: state.FederatedCredential | None,
    credentials: dict[str, state.FederatedCredential],
) -> state.FederatedCredential:
    if not _FIC_NAME.match(name):
        raise bad_request(
            "BadRequest",
            f"The request format was unexpected. Federated Identity Credential name '{name}' is invalid: it "
            "must be 3-120 characters long, start with a letter or number, and contain only letters, "
            "numbers, hyphens and underscores.",
        )
    body = request.json_object()
    properties = body.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    issuer, subject, audiences = (
        properties.get("issuer"),
        properties.get("subject"),
        properties.get("audiences"),
    )
    if (
        not isinstance(issuer, str)
        or not issuer
        or not isinstance(subject, str)
        or not subject
        or not isinstance(audiences, list)
        or not audiences
        or not all(isinstance(a, str) and a for a in audiences)
    ):
        raise bad_request(
            "BadRequest",
            "The request format was unexpected. Federated Identity Credential must specify 'issuer', "
            "'subject' and 'audience'.",
        )
    others = [c for key, c in credentials.items() if key != name.lower()]
    if any(c.issuer == issuer and c.subject == subject for c in others):
        raise bad_request(
            "BadRequest", "Issuer and subject combination already exists for this Managed Identity."
        )
    if existing is None and len(others) >= MAX_FEDERATED_CREDENTIALS:
        raise bad_request(
            "BadRequest",
            f"The managed identity '{owner_id}' already has the maximum of {MAX_FEDERATED_CREDENTIALS} "
            "Federated Identity Credentials.",
        )
    return state.FederatedCredential(
        id=f"{owner_id}/federatedIdentityCredentials/{existing.name if existing else name}",
        name=existing.name if existing else name,
        issuer=issuer,
        subject=subject,
        audiences=tuple(audiences),
    )


def system_assigned_identity(emulator: Emulator, request: Request, scope: str) -> Reply:
    """`GET {resource id}/providers/Microsoft.ManagedIdentity/identities/default`: the resource's
    system-assigned identity, with the client id of its principal."""
    if request.method != "GET":
        raise method_not_allowed(request.method)
    resource = emulator.world.resources.get(scope.lower())
    principal_id = (resource.identity or {}).get("principalId") if resource is not None else None
    principal = emulator.world.principals.get(principal_id) if isinstance(principal_id, str) else None
    if resource is None or principal is None:
        raise not_found(
            "ResourceNotFound",
            f"The Resource 'Microsoft.ManagedIdentity/identities/default' under scope '{scope}' was not "
            "found.",
        )
    tenant = emulator.world.tenant_id
    location = location_slug(resource.location)
    return Reply(
        200,
        {
            "id": f"{scope}/providers/Microsoft.ManagedIdentity/identities/default",
            "name": "default",
            "type": "Microsoft.ManagedIdentity/Identities",
            "location": resource.location,
            "tags": {},
            "properties": {
                "tenantId": tenant,
                "principalId": principal.object_id,
                "clientId": principal.app_id,
                "clientSecretUrl": (
                    f"https://control-{location}.identity.azure.net{scope}/credentials/v2/identities"
                    f"?tid={tenant}&oid={principal.object_id}&aid={principal.app_id}"
                ),
            },
        },
    )
