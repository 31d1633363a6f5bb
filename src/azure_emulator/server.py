"""The HTTP side: two aiohttp listeners on loopback, sharing one Emulator.

- HTTPS (the emulator's CA): ARM under `/subscriptions` and `/providers`, the Entra authority under
  `/{tenant}/...`, and the control endpoint under `/_emulator/`.
- HTTP: the managed-identity endpoints, IMDS (`/metadata/identity/oauth2/token`) and App Service
  (`/msi/token`), which are plain HTTP in Azure too.

Every request is counted, may be delayed or answered by an injected fault, and (for ARM) is
authenticated, rate-limited and routed; errors always leave as Azure-shaped JSON, never as a traceback.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from azure_emulator import behaviour, control, entra, tokens
from azure_emulator.arm import router
from azure_emulator.arm.http import Reply, Request, normalise_path, parse_body
from azure_emulator.emulator import Emulator
from azure_emulator.errors import ArmError, EntraError

log = logging.getLogger("azure_emulator")

_ARM_STATIC_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Expires": "-1",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
}
_JSON = "application/json; charset=utf-8"
_ALLOWED_AUDIENCES = ", ".join(f"'{a}'" for a in tokens.ARM_AUDIENCES)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, body=json.dumps(body).encode(), headers={**(headers or {}), "Content-Type": _JSON}
    )


def _arm_headers(request: web.Request) -> dict[str, str]:
    request_id = str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        **_ARM_STATIC_HEADERS,
        "x-ms-request-id": request_id,
        "x-ms-correlation-request-id": request.headers.get("x-ms-correlation-request-id", request_id),
        "x-ms-routing-request-id": f"LOCAL:{stamp}:{request_id}",
    }


def _error(error: ArmError, headers: dict[str, str]) -> web.Response:
    return _json_response(error.status, error.body(), {**headers, **error.headers})


class Server:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    # --- applications --------------------------------------------------------------------------------

    def https_app(self) -> web.Application:
        app = web.Application(middlewares=[self._observed], client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/_emulator/{tail:.*}", self._control)
        app.router.add_route("*", "/{tail:.*}", self._https)
        return app

    def http_app(self) -> web.Application:
        app = web.Application(middlewares=[self._observed])
        app.router.add_route("*", "/{tail:.*}", self._managed_identity)
        return app

    # --- middleware: counting, latency, faults -------------------------------------------------------

    @web.middleware
    async def _observed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator/"):
            return await handler(request)
        try:
            response = await self._answer(request, handler)
        except web.HTTPException as error:
            self.emulator.knobs.count_response(request.method, error.status)
            raise
        self.emulator.knobs.count_response(request.method, response.status)
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        knobs = self.emulator.knobs
        path = normalise_path(request.path)
        knobs.count(request.method, path)
        delay = knobs.latency_for(request.method, path)
        if delay > 0:
            # A slow server has the whole request before it is slow: a client gone meanwhile does not
            # undo a write (what a crash between an Azure write and its bookkeeping looks like).
            if request.can_read_body:
                await request.read()
            await asyncio.sleep(delay)
        fault = knobs.take_fault(request.method, path)
        if fault is not None:
            headers = _arm_headers(request)
            if fault.retry_after is not None:
                headers["Retry-After"] = str(
                    int(fault.retry_after) if fault.retry_after.is_integer() else fault.retry_after
                )
            return _error(ArmError(fault.status, fault.code, fault.message), headers)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            # aiohttp refuses bodies over client_max_size itself; answer in ARM's envelope all the same.
            return _error(
                ArmError(413, "RequestEntityTooLarge", "The request content exceeds 4 MB."),
                _arm_headers(request),
            )
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unexpected failure on %s %s", request.method, request.path)
            return _error(
                ArmError(500, "InternalServerError", "Encountered internal server error. Please try again."),
                _arm_headers(request),
            )

    # --- control -----------------------------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
            status, reply = control.handle(self.emulator, request.method, request.match_info["tail"], body)
        except (ValueError, control.ControlError) as error:
            message = error.message if isinstance(error, control.ControlError) else str(error)
            return _json_response(400, {"error": {"code": "InvalidControlRequest", "message": message}})
        return _json_response(status, reply)

    # --- HTTPS: ARM and the Entra authority ----------------------------------------------------------------

    async def _https(self, request: web.Request) -> web.StreamResponse:
        path = normalise_path(request.path)
        segments = [s for s in path.split("/") if s]
        first = segments[0].lower() if segments else ""
        if first in ("subscriptions", "providers"):
            return await self._arm(request, path)
        return await self._authority(request, segments)

    async def _authority(self, request: web.Request, segments: list[str]) -> web.StreamResponse:
        authority = f"https://{request.host}"
        lowered = [s.lower() for s in segments]
        is_token = len(segments) == 4 and lowered[1:] == ["oauth2", "v2.0", "token"]
        try:
            if is_token and request.method == "POST":
                form = entra.parse_form(await request.read())
                grant = entra.authenticate_client(self.emulator, segments[0], form)
                if (
                    grant.assertion
                    and grant.assertion_issuer
                    and self.emulator.knobs.verify_assertion_signatures
                ):
                    await self.emulator.assertion_verifier.verify(grant.assertion, grant.assertion_issuer)
                return _json_response(200, entra.token_response(self.emulator, grant))
            if request.method == "GET":
                if lowered[:3] == ["common", "discovery", "instance"]:
                    return _json_response(200, entra.instance_discovery(self.emulator, authority))
                if len(segments) == 4 and lowered[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                    return _json_response(
                        200, entra.openid_configuration(self.emulator, segments[0], authority, v2=True)
                    )
                if len(segments) == 3 and lowered[1:] == [".well-known", "openid-configuration"]:
                    return _json_response(
                        200, entra.openid_configuration(self.emulator, segments[0], authority, v2=False)
                    )
                if len(segments) >= 3 and lowered[1] == "discovery" and lowered[-1] == "keys":
                    return _json_response(200, {"keys": []})
        except EntraError as error:
            return _json_response(error.status, error.body())
        status, code = (405, "MethodNotAllowed") if is_token else (404, "NotFound")
        message = f"No route for {request.method} {request.path}."
        return _json_response(status, {"error": {"code": code, "message": message}})

    def _authenticate(self, request: web.Request) -> str:
        """The caller's object id from its bearer token; ARM's 401 errors otherwise."""
        tenant = self.emulator.world.tenant_id
        header = request.headers.get("Authorization")

        def unauthorized(code: str, message: str) -> ArmError:
            challenge = (
                f'Bearer authorization_uri="https://{request.host}/{tenant}", error="invalid_token", '
                f'error_description="{message}"'
            )
            return ArmError(401, code, message, headers={"WWW-Authenticate": challenge})

        if header is None:
            raise unauthorized(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
        try:
            claims = self.emulator.issuer.verify(token.strip())
        except tokens.TokenInvalid as error:
            raise unauthorized("InvalidAuthenticationToken", "The access token is invalid.") from error
        now = time.time()
        if claims.expires_on < now:
            raise unauthorized(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_utc(claims.expires_on)}' is earlier than current UTC "
                f"time '{_utc(now)}'.",
            )
        if claims.audience not in tokens.ARM_AUDIENCES:
            raise unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{claims.audience}'. It "
                f"should exactly match with one of the allowed audiences {_ALLOWED_AUDIENCES}.",
            )
        if claims.tenant_id.lower() != tenant.lower():
            raise unauthorized(
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer 'https://sts.windows.net/{claims.tenant_id}/'. "
                f"It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this "
                "subscription.",
            )
        return claims.object_id

    async def _arm(self, request: web.Request, path: str) -> web.StreamResponse:
        headers = _arm_headers(request)
        try:
            caller = self._authenticate(request)
            self.emulator.knobs.count_caller(caller, request.method, path)
            segments = [s for s in path.split("/") if s]
            subscription = (
                segments[1] if len(segments) > 1 and segments[0].lower() == "subscriptions" else None
            )
            allowed, rate_headers, wait = self.emulator.knobs.throttle.take(
                subscription, caller, request.method
            )
            headers.update(rate_headers)
            if not allowed:
                seconds = max(1, math.ceil(wait))
                kind = behaviour.operation_kind(request.method).removesuffix("s")
                where = f"subscription '{subscription}'" if subscription else "tenant"
                raise ArmError(
                    429,
                    "SubscriptionRequestsThrottled" if subscription else "TenantRequestsThrottled",
                    f"Number of '{kind}' requests for {where} actor '{caller}' "
                    f"exceeded. Please try again after '{seconds}' seconds after additional tokens are "
                    "available. Refer to https://aka.ms/arm-throttling for additional information.",
                    headers={"Retry-After": str(seconds)},
                )
            arm_request = Request(
                method=request.method,
                path=path,
                query={k: v for k, v in request.rel_url.query.items()},
                body=parse_body(await request.read()),
                base_url=f"{request.scheme}://{request.host}",
                caller_object_id=caller,
                if_match=request.headers.get("If-Match"),
            )
            reply: Reply = router.handle(self.emulator, arm_request)
        except ArmError as error:
            log.debug("%s %s -> %s %s", request.method, path, error.status, error.code)
            return _error(error, headers)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        log.debug("%s %s api-version=%s -> %s", request.method, path, arm_request.api_version, reply.status)
        return _json_response(reply.status, reply.body, {**headers, **reply.headers})

    # --- HTTP: managed identity endpoints ----------------------------------------------------------------

    async def _managed_identity(self, request: web.Request) -> web.StreamResponse:
        path = normalise_path(request.path)
        query = {k: v for k, v in request.rel_url.query.items()}
        try:
            if path == "/metadata/identity/oauth2/token":
                if request.headers.get("Metadata", "").lower() != "true":
                    raise entra.ManagedIdentityError(400, "Required metadata header not specified")
                return _json_response(
                    200, entra.managed_identity_token(self.emulator, query, app_service=False)
                )
            if path == "/msi/token":
                if request.headers.get("X-IDENTITY-HEADER") != self.emulator.identity_header:
                    raise entra.ManagedIdentityError(401, "The X-IDENTITY-HEADER header is missing or wrong.")
                return _json_response(
                    200, entra.managed_identity_token(self.emulator, query, app_service=True)
                )
        except entra.ManagedIdentityError as error:
            return _json_response(error.status, error.body())
        return _json_response(404, {"error": "not_found", "error_description": f"No route for {path}."})


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%m/%d/%Y %H:%M:%S")
