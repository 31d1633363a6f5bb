"""The HTTP face of the emulator: Kubernetes API URL routing, content negotiation, watches and audit.

One catch-all aiohttp handler parses the Kubernetes URL grammar (`/api/v1/...`, `/apis/{group}/{version}/
...`, namespaced or not, with subresources), because the set of resources changes at run time as CRDs
come and go.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web

from kube_emulator import authorization, openapi, protobuf, tables
from kube_emulator.audit import AuditLog, AuditRecord
from kube_emulator.errors import ApiError, bad_request, method_not_allowed
from kube_emulator.objects import Api, WriteOptions, WriteResult, present
from kube_emulator.openapi import OpenApiCache
from kube_emulator.resources import Registry, ResourceType
from kube_emulator.selectors import parse_field_selector, parse_label_selector
from kube_emulator.store import Store, Watcher, WatchEvent
from kube_emulator.tokens import TokenIssuer

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kube-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    bookmark_interval: float = 60.0
    default_watch_timeout: float = 1800.0
    authorization: str = "AlwaysAllow"  # or "RBAC"


@dataclasses.dataclass
class Target:
    """What a resource URL points at."""

    group: str
    version: str
    resource: ResourceType | None
    plural: str
    namespace: str | None  # None = all namespaces (or cluster-scoped)
    name: str = ""
    subresource: str = ""
    legacy_watch: bool = False


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _number_parameter(request: web.Request, name: str) -> float:
    text = request.query.get(name, "") or "0"
    try:
        value = float(text)
    except ValueError as error:
        raise bad_request(f"invalid {name}: {text!r}") from error
    if value < 0:
        raise bad_request(f"invalid {name}: {text!r} must not be negative")
    return value


def _user_manager(request: web.Request) -> str:
    explicit = request.query.get("fieldManager")
    if explicit:
        return explicit
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0] or "unknown"


class KubeApiServer:
    """The application: routing plus the request handlers on top of `Api`."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        registry: Registry | None = None,
        audit: AuditLog | None = None,
        issuer: TokenIssuer | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.api = Api(self.store, self.registry)
        self.audit = audit or AuditLog(None)
        self.issuer = issuer
        self.settings = settings or Settings()
        self.openapi = OpenApiCache(self.registry)
        self.authorizer = authorization.RbacAuthorizer(self.store)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._stopping = asyncio.Event()

    async def stop_watches(self) -> None:
        self._stopping.set()
        self.store.close_watchers()

    # Middleware: errors and audit --------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            user = self._authenticate(request)
            if user is None:
                if self.settings.authorization == "RBAC":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                # Without RBAC any token is let in; the audit log names it by the token's start
                user = authorization.UserInfo(f"token:{request.headers['Authorization'][7:].strip()[:16]}")
            request["user"] = user
            request["user_name"] = user.name
            response = await handler(request)
        except ApiError as error:
            response = _json(error.status(), status=error.code)
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("request failed: %s %s", request.method, request.path_qs)
            response = _json(
                ApiError(
                    500, "InternalError", "an error on the server has prevented the request from succeeding"
                ).status(),
                status=500,
            )
        if not request.get("audited"):
            self._audit(request, response.status)
        return response

    def _authenticate(self, request: web.Request) -> authorization.UserInfo | None:
        """Who the request is from (None: a bearer token this server does not know)."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return authorization.ANONYMOUS
        token = header[7:].strip()
        if token == authorization.ADMIN_TOKEN:
            return authorization.ADMIN
        claims = self.issuer.verify(token) if self.issuer is not None else None
        if claims is not None:
            account = (claims.get("kubernetes.io") or {}).get("serviceaccount") or {}
            namespace = (claims.get("kubernetes.io") or {}).get("namespace", "")
            return authorization.service_account_user(namespace, account.get("name", ""))
        return None

    def _audit(self, request: web.Request, code: int) -> None:
        target: Target | None = request.get("target")
        verb = request.get("verb", request.method.lower())
        self.audit.record(
            AuditRecord(
                time=datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                method=request.method,
                path=request.path,
                query=request.query_string,
                verb=verb,
                api_group=target.group if target else "",
                api_version=target.version if target else "",
                resource=target.plural if target else "",
                subresource=target.subresource if target else "",
                namespace=(target.namespace or "") if target else "",
                name=target.name if target else "",
                user_agent=request.headers.get("User-Agent", ""),
                user=request.get("user_name", ""),
                code=code,
            )
        )

    # Routing -----------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [part for part in request.path.split("/") if part]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz"]})
        head = parts[0]
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "version":
            return _json(KUBERNETES_VERSION)
        if head == "openapi":
            return self._openapi(parts)
        if head == ".well-known" and parts[1:] == ["openid-configuration"] and self.issuer:
            return _json(self.issuer.openid_configuration())
        if head == "openid" and parts[1:] == ["v1", "jwks"] and self.issuer:
            return _json(self.issuer.jwks())
        if head == "debug" and parts[1:] == ["stats"]:
            return _json(
                {
                    "resourceVersion": self.store.resource_version,
                    "objects": self.store.object_count(),
                    "watchers": self.store.watcher_count(),
                }
            )
        if head == "debug" and parts[1:] == ["audit"]:
            return _json({"records": [record.as_json() for record in self.audit.records]})
        if head == "api":
            if len(parts) == 1:
                return _json(self.registry.api_versions())
            return await self._group_version(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return _json(self.registry.api_group_list())
            if len(parts) == 2:
                group_document = self.registry.api_group(parts[1])
                if group_document is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return _json(group_document)
            return await self._group_version(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _openapi(self, parts: list[str]) -> web.Response:
        if parts[1:] == ["v3"]:
            return _json(self.openapi.root())
        if parts[1:] == ["v2"]:
            return web.Response(
                body=openapi.OPENAPI_V2_PROTOBUF, content_type=openapi.OPENAPI_V2_CONTENT_TYPE
            )
        if len(parts) > 2 and parts[1] == "v3":
            document = self.openapi.document("/".join(parts[2:]))
            if document is not None:
                return web.Response(body=document, content_type="application/json")
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    async def _group_version(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if not rest:
            document = self.registry.api_resource_list(group, version)
            if document is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(document)
        legacy_watch = False
        if rest[0] == "watch":
            legacy_watch = True
            rest = rest[1:]
        target = self._target(group, version, rest)
        target.legacy_watch = legacy_watch
        request["target"] = target
        request["verb"] = self._verb(request, target)
        if self.settings.authorization == "RBAC":
            self._authorize(request, target)  # before looking the resource up, as kube-apiserver does
        if target.resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource == "token":
            return await self._token(request, target)
        if target.subresource and target.subresource not in target.resource.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.name:
            return await self._object(request, target)
        return await self._collection(request, target)

    @staticmethod
    def _verb(request: web.Request, target: Target) -> str:
        method = request.method
        if method == "GET":
            if target.name:
                return "get"
            watching = target.legacy_watch or request.query.get("watch", "").lower() in ("1", "true")
            return "watch" if watching else "list"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def _authorize(self, request: web.Request, target: Target) -> None:
        user: authorization.UserInfo = request["user"]
        attributes = authorization.RequestAttributes(
            verb=self._verb(request, target),
            api_group=target.group,
            resource=target.plural,
            subresource=target.subresource,
            namespace=target.namespace or "",
            name=target.name,
        )
        if not self.authorizer.allowed(user, attributes):
            raise ApiError(
                403,
                "Forbidden",
                authorization.forbidden_message(user, attributes),
                name=target.name,
                group=target.group,
                kind=target.plural,
            )

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and group == ""
            and rest[2] in ("status", "finalize")
            and len(rest) == 3
        ):
            plural, name, subresource = "namespaces", rest[1], rest[2]
        elif rest[0] == "namespaces" and len(rest) >= 3:
            namespace = rest[1]
            plural = rest[2]
            name = rest[3] if len(rest) > 3 else ""
            subresource = "/".join(rest[4:])
        else:
            plural = rest[0]
            name = rest[1] if len(rest) > 1 else ""
            subresource = "/".join(rest[2:])
        resource = self.registry.lookup(group, version, plural)
        if resource is not None and not resource.namespaced and namespace is not None:
            resource = None  # cluster-scoped resources have no namespaced URL
        if resource is not None and resource.namespaced and name and namespace is None:
            resource = None  # a namespaced object needs its namespace in the URL
        return Target(group, version, resource, plural, namespace, name, subresource)

    # Bodies ------------------------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        content_type = request.content_type
        if content_type == "application/vnd.kubernetes.protobuf":
            return protobuf.decode_object(raw)
        if "protobuf" in content_type or "cbor" in content_type:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            )
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"the request body could not be decoded: {error}") from error

    @staticmethod
    def _write_options(request: web.Request) -> WriteOptions:
        validation = request.query.get("fieldValidation", "Warn")
        if validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f"fieldValidation must be one of Strict, Warn or Ignore, not {validation!r}")
        return WriteOptions(
            manager=_user_manager(request),
            dry_run=request.query.get("dryRun") == "All",
            field_validation=validation,
            force=request.query.get("force", "false").lower() == "true",
        )

    @staticmethod
    def _write_response(result: WriteResult, status: int) -> web.Response:
        headers = None
        if result.warnings:
            headers = {"Warning": ", ".join("299 - " + json.dumps(warning) for warning in result.warnings)}
        return _json(result.obj, status=status, headers=headers)

    # Object handlers ---------------------------------------------------------------------------------

    async def _object(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        namespace = target.namespace or ""
        method = request.method
        if method == "GET":
            request["verb"] = "get"
            obj = self.api.get(resource, namespace, target.name)
            if self._wants_table(request):
                return _json(
                    tables.table(
                        resource,
                        [obj],
                        list_metadata={"resourceVersion": obj["metadata"]["resourceVersion"]},
                        include_object=request.query.get("includeObject", "PartialObjectMetadata"),
                    )
                )
            return _json(obj)
        if method == "PUT":
            request["verb"] = "update"
            body = await self._body(request)
            # A namespace's finalize subresource writes spec.finalizers, which the object itself carries
            subresource = "" if target.subresource == "finalize" else target.subresource
            result = self.api.update(
                resource, namespace, target.name, body, self._write_options(request), subresource=subresource
            )
            return self._write_response(result, 201 if result.created else 200)
        if method == "PATCH":
            request["verb"] = "patch"
            patch_type = PATCH_TYPES.get(request.content_type)
            if patch_type is None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(PATCH_TYPES),
                )
            body = await self._body(request)
            options = self._write_options(request)
            if patch_type == "apply" and not request.query.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                )
            result = self.api.patch(
                resource, namespace, target.name, patch_type, body, options, subresource=target.subresource
            )
            return self._write_response(result, 201 if result.created else 200)
        if method == "DELETE":
            request["verb"] = "delete"
            body = await self._body(request) or {}
            deleted = self.api.delete(
                resource, namespace, target.name, body, dry_run=request.query.get("dryRun") == "All"
            )
            return _json(deleted)
        raise method_not_allowed()

    async def _token(self, request: web.Request, target: Target) -> web.StreamResponse:
        request["verb"] = "create"
        if request.method != "POST" or target.resource is None or target.resource.plural != "serviceaccounts":
            raise method_not_allowed()
        if self.issuer is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        account = self.api.get(target.resource, target.namespace or "", target.name)
        body = await self._body(request) or {}
        return _json(self.issuer.token_request(account, body), status=201)

    # Collection handlers -----------------------------------------------------------------------------

    @staticmethod
    def _wants_table(request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        first = accept.split(",")[0]
        return "as=Table" in first

    async def _collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        method = request.method
        if target.subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            watch = target.legacy_watch or request.query.get("watch", "").lower() in ("1", "true")
            if watch:
                request["verb"] = "watch"
                return await self._watch(request, target)
            request["verb"] = "list"
            listing = self.api.list(
                resource,
                target.namespace,
                parse_label_selector(request.query.get("labelSelector")),
                parse_field_selector(request.query.get("fieldSelector"), resource.field_selectors),
                limit=int(_number_parameter(request, "limit")),
                continue_token=request.query.get("continue", ""),
            )
            if self._wants_table(request):
                return _json(
                    tables.table(
                        resource,
                        listing["items"],
                        list_metadata=listing["metadata"],
                        include_object=request.query.get("includeObject", "PartialObjectMetadata"),
                    )
                )
            return _json(listing)
        if method == "POST":
            request["verb"] = "create"
            if target.namespace is None and resource.namespaced:
                raise method_not_allowed()
            body = await self._body(request)
            result = self.api.create(resource, target.namespace or "", body, self._write_options(request))
            return self._write_response(result, 201)
        if method == "DELETE":
            request["verb"] = "deletecollection"
            labels = parse_label_selector(request.query.get("labelSelector"))
            field_selector = parse_field_selector(
                request.query.get("fieldSelector"), resource.field_selectors
            )
            deleted = []
            for obj in list(self.store.iter_objects(resource.storage_key, target.namespace)):
                if labels.matches(obj) and field_selector.matches(obj):
                    deleted.append(present(resource, self.api.delete_stored(resource.storage_key, obj)))
            return _json(
                {
                    "kind": resource.list_kind,
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": deleted,
                }
            )
        raise method_not_allowed()

    # Watches -----------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource = target.resource
        assert resource is not None
        labels = parse_label_selector(request.query.get("labelSelector"))
        field_selector = parse_field_selector(request.query.get("fieldSelector"), resource.field_selectors)

        def matches(obj: JsonObject) -> bool:
            served = present(resource, obj)
            return labels.matches(served) and field_selector.matches(served)

        namespace = target.namespace if resource.namespaced else None
        watcher = Watcher(matches, namespace)
        requested = request.query.get("resourceVersion", "")
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("1", "true")
        send_initial = request.query.get("sendInitialEvents", "").lower() == "true"
        timeout = _number_parameter(request, "timeoutSeconds") or self.settings.default_watch_timeout
        as_table = self._wants_table(request)
        include_object = request.query.get("includeObject", "PartialObjectMetadata")

        # Register and collect the backlog without yielding to the loop, so no change falls in between.
        self.store.add_watcher(resource.storage_key, watcher)
        initial: list[WatchEvent] = []
        expired: ApiError | None = None
        try:
            if requested in ("", "0") or send_initial:
                initial = [
                    ("ADDED", obj, None)
                    for obj in self.store.iter_objects(resource.storage_key, namespace)
                    if matches(obj)
                ]
            else:
                try:
                    version = int(requested)
                except ValueError as error:
                    raise bad_request(f"invalid resource version {requested!r}") from error
                for change in self.store.changes_since(resource.storage_key, version):
                    event = watcher.translate(change)
                    if event is not None:
                        initial.append(event)
        except ApiError as error:
            if error.code != 410:
                self.store.remove_watcher(resource.storage_key, watcher)
                raise
            # Not an HTTP 410: kube-apiserver answers 200 and streams one ERROR event carrying the 410
            # Status, then ends the stream; clients (kopf, client-go reflectors) relist on it.
            expired = error
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        first_table = True

        def encode(
            event_type: str, obj: JsonObject, cache: dict[tuple[str, str], bytes] | None = None
        ) -> bytes:
            nonlocal first_table
            if cache is not None and not as_table:
                key = (event_type, resource.api_version)
                found = cache.get(key)
                if found is None:
                    found = cache[key] = encode(event_type, obj)
                return found
            if as_table and event_type in ("ADDED", "MODIFIED", "DELETED"):
                served = present(resource, obj)
                body = tables.table(
                    resource,
                    [served],
                    list_metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                    include_object=include_object,
                    with_columns=first_table,
                )
                first_table = False
            elif event_type == "BOOKMARK" or event_type == "ERROR":
                body = obj
            else:
                body = present(resource, obj)
            return json.dumps({"type": event_type, "object": body}, separators=(",", ":")).encode() + b"\n"

        def bookmark(annotations: dict[str, str] | None = None) -> bytes:
            metadata: JsonObject = {"resourceVersion": str(self.store.resource_version)}
            if annotations:
                metadata["annotations"] = annotations
            return encode(
                "BOOKMARK", {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}
            )

        # A watch is audited when its response starts (kube-apiserver's ResponseStarted stage), not when
        # it ends: a watch can outlive its client by a second, and its record belongs to when it began.
        self._audit(request, 200)
        request["audited"] = True
        try:
            await response.prepare(request)
            if expired is not None:
                await response.write(encode("ERROR", expired.status()))
                await response.write_eof()
                return response
            if initial:
                await response.write(b"".join(encode(*event) for event in initial))
            if send_initial and bookmarks:
                await response.write(bookmark({"k8s.io/initial-events-end": "true"}))
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.settings.bookmark_interval
            ended = False
            while not ended and not self._stopping.is_set():
                now = time.monotonic()
                if now >= deadline or request.transport is None or request.transport.is_closing():
                    break  # timed out, or the client went away (checked at least every second)
                wait = min(deadline, next_bookmark if bookmarks else deadline, now + 1.0) - now
                try:
                    if watcher.queue.empty():
                        async with asyncio.timeout(max(wait, 0.001)):
                            event = await watcher.queue.get()
                    else:
                        event = watcher.queue.get_nowait()
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        await response.write(bookmark())
                        next_bookmark = time.monotonic() + self.settings.bookmark_interval
                    continue
                if event is None:
                    break
                chunk = [encode(*event)]
                while not watcher.queue.empty():  # drain what is ready: one write for a burst
                    queued = watcher.queue.get_nowait()
                    if queued is None:
                        ended = True
                        break
                    chunk.append(encode(*queued))
                await response.write(b"".join(chunk))
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away; nothing left to tell it
        finally:
            self.store.remove_watcher(resource.storage_key, watcher)
        return response
