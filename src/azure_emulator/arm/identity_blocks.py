"""The `identity` block of resources that support managed identities (VMs, sites, slots).

Turns a requested block (from a PUT, or merged from a PATCH) into the stored one: validates the type and
the user-assigned ids, creates the system-assigned principal when the type gains `SystemAssigned`, and
deletes it from the directory when the type loses it or the resource goes away.
"""

from __future__ import annotations

import json
from typing import Any

from azure_emulator import catalog
from azure_emulator.arm import paths
from azure_emulator.emulator import Emulator
from azure_emulator.errors import ArmError, bad_request

USER_ASSIGNED_IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
ASSIGN_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


def _parse_type(value: object, combined_spelling: str) -> frozenset[str]:
    allowed = f"'None', 'SystemAssigned', 'UserAssigned', '{combined_spelling}'"
    if not isinstance(value, str):
        raise bad_request(
            "InvalidIdentityType", f"The identity type is required. Allowed values are {allowed}."
        )
    parts = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    if parts == {"none"} or (parts <= {"systemassigned", "userassigned"} and parts):
        return frozenset() if parts == {"none"} else parts
    raise bad_request(
        "InvalidIdentityType", f"The identity type '{value}' is not valid. Allowed values are {allowed}."
    )


def _spell_type(kinds: frozenset[str], combined_spelling: str) -> str:
    if kinds == {"systemassigned", "userassigned"}:
        return combined_spelling
    if kinds == {"systemassigned"}:
        return "SystemAssigned"
    if kinds == {"userassigned"}:
        return "UserAssigned"
    return "None"


def _identity_not_found(resource_id: str, uai_id: str) -> ArmError:
    inner = json.dumps({"error": {"code": "NotFound", "message": f"Resource '{uai_id}' does not exist."}})
    return bad_request(
        "FailedIdentityOperation",
        f"Identity operation for resource '{resource_id}' failed with error 'Failed to perform resource "
        f"identity operation. Status: 'NotFound'. Response: '{inner}'.'.",
    )


def resolve(
    emulator: Emulator,
    *,
    caller: str,
    write_action: str,
    resource_id: str,
    type_info: catalog.ResourceTypeInfo,
    current: dict[str, Any] | None,
    requested: object,
    merge: bool,
) -> dict[str, Any] | None:
    """The identity block to store after this write; principals are created/removed as a side effect.

    `merge` is PATCH semantics: the user-assigned map is merged into the current one and a `null` value
    detaches that identity; without `merge` (PUT) the requested block replaces the current one.
    """
    combined = type_info.identity_combined_spelling
    assert combined is not None
    current_kinds = _parse_type(current["type"], combined) if current else frozenset()
    current_map: dict[str, dict[str, str]] = (
        dict(current.get("userAssignedIdentities") or {}) if current else {}
    )
    if requested is None:
        if merge:
            return current
        kinds: frozenset[str] = frozenset()
        requested_map: dict[str, Any] = {}
    else:
        if not isinstance(requested, dict):
            raise bad_request("InvalidRequestContent", "The 'identity' property must be an object.")
        kinds = _parse_type(requested.get("type"), combined)
        raw_map = requested.get("userAssignedIdentities")
        if raw_map is not None and not isinstance(raw_map, dict):
            raise bad_request("InvalidRequestContent", "'userAssignedIdentities' must be an object.")
        requested_map = dict(raw_map or {})

    # The user-assigned map after this write, keyed case-insensitively by UAI id, keeping caller casing.
    merged: dict[str, dict[str, str]] = {}
    if merge and "userassigned" in kinds:
        merged = dict(current_map)
    for key, value in requested_map.items():
        existing_key = next((k for k in merged if k.lower() == key.lower()), None)
        if existing_key is not None:
            del merged[existing_key]
        if value is None:
            continue
        merged[key] = {}
    if "userassigned" not in kinds:
        if any(v is not None for v in requested_map.values()):
            raise bad_request(
                "InvalidParameter",
                "The user-assigned identities can only be set when the identity type includes "
                "'UserAssigned'.",
            )
        merged = {}
    elif not merged:
        raise bad_request(
            "InvalidParameter",
            "The identity type includes 'UserAssigned' but no user-assigned identities are specified.",
        )

    # Resolve each attached UAI: it must exist, and attaching a NEW one needs its assign action.
    resolved: dict[str, dict[str, str]] = {}
    for key in merged:
        path = paths.parse_resource_id(key)
        uai = emulator.world.resources.get(key.lower())
        if path is None or uai is None or uai.type != USER_ASSIGNED_IDENTITY_TYPE:
            raise _identity_not_found(resource_id, key)
        already = next((v for k, v in current_map.items() if k.lower() == key.lower()), None)
        if already is None:
            emulator.authorize_linked(caller, write_action, resource_id, ASSIGN_ACTION, uai.id)
        reported_key = key.lower() if type_info.lowercases_user_assigned_ids else key
        resolved[reported_key] = {
            "principalId": uai.properties["principalId"],
            "clientId": uai.properties["clientId"],
        }

    # Only now, with every check passed, change the directory.
    block: dict[str, Any] = {"type": _spell_type(kinds, combined)}
    if "systemassigned" in kinds:
        if "systemassigned" in current_kinds and current is not None:
            block["principalId"] = current["principalId"]
        else:
            principal = emulator.world.add_principal(
                display_name=resource_id.rsplit("/", 1)[-1], owner_resource_id=resource_id
            )
            block["principalId"] = principal.object_id
        block["tenantId"] = emulator.world.tenant_id
    elif "systemassigned" in current_kinds and current is not None:
        emulator.world.principals.pop(current["principalId"], None)
    if resolved:
        block["userAssignedIdentities"] = resolved
    return None if not kinds else block


def release(emulator: Emulator, identity: dict[str, Any] | None) -> None:
    """The resource is gone: its system-assigned principal leaves the directory with it."""
    if identity and identity.get("principalId"):
        emulator.world.principals.pop(identity["principalId"], None)


def render(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    copy: dict[str, Any] = json.loads(json.dumps(identity))  # callers must not alias stored state
    return copy
