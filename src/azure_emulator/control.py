"""The control endpoint tests use, under `/_emulator/` on the ARM port and outside ARM authentication.

- GET `/_emulator/health` -> `{"status": "ok"}`
- GET `/_emulator/state` -> the whole world plus the current settings
- GET|PUT `/_emulator/settings`: any of `principalDelaySeconds`, `pageSize`, `ficWriteSeconds`, `lroSeconds`,
  `verifyAssertionSignatures`, `customRoleLimit` (custom roles per tenant, Azure's 5,000),
  `roleAssignmentLimit` (role assignments per subscription, Azure's 4,000)
- POST `/_emulator/latency` `{"seconds", "pathRegex"?, "method"?}` adds latency; DELETE clears it
- POST `/_emulator/faults` `{"pathRegex", "status", "code", "message"?, "method"?, "count"?,
  "retryAfter"?}` answers the next `count` matching requests with that error; GET lists; DELETE clears
- PUT `/_emulator/throttling` `{"enabled", "limits"?: {"reads"|"writes"|"deletes":
  {"capacity", "refillPerSecond"}}}` turns 429 enforcement of the ARM token buckets on or off
- GET `/_emulator/requests` -> `{"counts": {"METHOD /path": n}, "responses": {"METHOD STATUS": n},
  "callers": {"<object id>": {"METHOD /path": n}}}` (`callers`: authenticated ARM requests by the caller's
  object id); DELETE resets all three
- POST `/_emulator/service-principals` `{"displayName"?}` -> `{"clientId", "clientSecret", "objectId"}`,
  a service principal holding no role
- PUT `/_emulator/managed-identity-host` `{"resourceId": id | null}`: the VM or app the managed-identity
  endpoints run on (only its identities are served); null serves any managed identity selected by id
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from azure_emulator import behaviour
from azure_emulator.emulator import Emulator


class ControlError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _number(body: dict[str, Any], key: str, *, minimum: float = 0.0) -> float:
    value = body.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
        raise ControlError(f"'{key}' must be a number >= {minimum}")
    return float(value)


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError(f"'{key}' must be a whole number >= 0")
    return value


def _regex(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise ControlError(f"'{key}' must be a string")
    try:
        re.compile(value)
    except re.error as error:
        raise ControlError(f"'{key}' is not a valid regular expression: {error}") from error
    return value


def _method(body: dict[str, Any]) -> str | None:
    value = body.get("method")
    if value is not None and not isinstance(value, str):
        raise ControlError("'method' must be a string")
    return value.upper() if value else None


def _knobs(emulator: Emulator) -> dict[str, Any]:
    knobs = emulator.knobs
    return {
        "principalDelaySeconds": knobs.principal_delay,
        "pageSize": knobs.page_size,
        "ficWriteSeconds": knobs.fic_write_seconds,
        "lroSeconds": knobs.lro_seconds,
        "verifyAssertionSignatures": knobs.verify_assertion_signatures,
        "customRoleLimit": knobs.custom_role_limit,
        "roleAssignmentLimit": knobs.role_assignment_limit,
        "throttlingEnabled": knobs.throttle.enforced,
        "latency": [dataclasses.asdict(rule) for rule in knobs.latency],
        "faults": [dataclasses.asdict(rule) for rule in knobs.faults],
        "managedIdentityHost": emulator.managed_identity_host,
    }


def handle(emulator: Emulator, method: str, tail: str, body: Any) -> tuple[int, Any]:
    """Apply one control request; returns (status, JSON body)."""
    if body is not None and not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    body = body or {}
    knobs = emulator.knobs
    route = (method.upper(), tail.strip("/"))
    if route == ("GET", "health"):
        return 200, {"status": "ok"}
    if route == ("GET", "state"):
        return 200, {"world": emulator.world.to_json(), "settings": _knobs(emulator)}
    if route == ("GET", "settings"):
        return 200, _knobs(emulator)
    if route == ("PUT", "settings"):
        if "principalDelaySeconds" in body:
            knobs.principal_delay = _number(body, "principalDelaySeconds")
        if "pageSize" in body:
            knobs.page_size = int(_number(body, "pageSize", minimum=1))
        if "ficWriteSeconds" in body:
            knobs.fic_write_seconds = _number(body, "ficWriteSeconds")
        if "lroSeconds" in body:
            knobs.lro_seconds = _number(body, "lroSeconds")
        if "verifyAssertionSignatures" in body:
            knobs.verify_assertion_signatures = bool(body["verifyAssertionSignatures"])
        if "customRoleLimit" in body:
            knobs.custom_role_limit = _count(body, "customRoleLimit")
        if "roleAssignmentLimit" in body:
            knobs.role_assignment_limit = _count(body, "roleAssignmentLimit")
        return 200, _knobs(emulator)
    if route == ("POST", "latency"):
        knobs.latency.append(
            behaviour.LatencyRule(_number(body, "seconds"), _regex(body, "pathRegex"), _method(body))
        )
        return 200, _knobs(emulator)
    if route == ("DELETE", "latency"):
        knobs.latency.clear()
        return 200, _knobs(emulator)
    if route == ("POST", "faults"):
        status = int(_number(body, "status", minimum=100))
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise ControlError("'code' is required")
        retry_after = _number(body, "retryAfter") if "retryAfter" in body else None
        knobs.faults.append(
            behaviour.FaultRule(
                path_regex=_regex(body, "pathRegex"),
                status=status,
                code=code,
                message=str(body.get("message") or f"Injected fault {code}."),
                method=_method(body),
                remaining=int(_number(body, "count", minimum=1)) if "count" in body else 1,
                retry_after=retry_after,
            )
        )
        return 200, _knobs(emulator)
    if route == ("GET", "faults"):
        return 200, {"faults": [dataclasses.asdict(rule) for rule in knobs.faults]}
    if route == ("DELETE", "faults"):
        knobs.faults.clear()
        return 200, _knobs(emulator)
    if route == ("PUT", "throttling"):
        limits = {}
        for kind, value in (body.get("limits") or {}).items():
            if kind not in behaviour.DEFAULT_LIMITS or not isinstance(value, dict):
                raise ControlError(f"unknown bucket '{kind}': use reads, writes or deletes")
            limits[kind] = behaviour.BucketLimits(
                _number(value, "capacity", minimum=1), _number(value, "refillPerSecond")
            )
        knobs.throttle.configure(enforced=bool(body.get("enabled", True)), limits=limits or None)
        return 200, _knobs(emulator)
    if route == ("GET", "requests"):
        return 200, {
            "counts": dict(knobs.request_counts),
            "responses": dict(knobs.response_counts),
            "callers": {caller: dict(counts) for caller, counts in knobs.caller_counts.items()},
        }
    if route == ("DELETE", "requests"):
        knobs.request_counts.clear()
        knobs.response_counts.clear()
        knobs.caller_counts.clear()
        return 200, {"counts": {}, "responses": {}, "callers": {}}
    if route == ("POST", "service-principals"):
        secret = secrets.token_urlsafe(32)
        principal = emulator.world.add_principal(
            display_name=str(body.get("displayName") or "service-principal"), client_secret=secret
        )
        emulator.changed()
        return 201, {"clientId": principal.app_id, "clientSecret": secret, "objectId": principal.object_id}
    if route == ("PUT", "managed-identity-host"):
        resource_id = body.get("resourceId")
        if resource_id is not None and not isinstance(resource_id, str):
            raise ControlError("'resourceId' must be a string or null")
        emulator.managed_identity_host = resource_id
        return 200, _knobs(emulator)
    return 404, {"error": {"code": "NotFound", "message": f"No control route {method} /_emulator/{tail}"}}
