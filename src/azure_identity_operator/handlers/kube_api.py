"""A small asyncio client of the Kubernetes API for the operator's own requests: JSON over aiohttp.

kopf watches through its own client; what the operator writes (status, finalizers, Events, ConfigMaps) and
the peering object it reads at start-up go through this one. It logs in exactly as the operator's kopf does
(`login`: kopf's `login_with_service_account` in a pod, else its `login_with_kubeconfig`) and speaks to the
server the `kopf.ConnectionInfo` names: its CA (path or data), client certificate and key (path or data,
written to a private temporary file for the moment the TLS context loads them, as Python's `ssl` reads
files only), `insecure`, a bearer token (or another scheme) or basic auth, its proxy.

Credentials may change under a running process: a projected service-account token is rotated by the
kubelet. The client logs in again every `relogin_interval` seconds, before an `expiration` the login
reported, and whenever the server answers 401, then repeats that request once. Logging in reads files, so
it runs in a worker thread; nothing here blocks the event loop.

Every failure is a `KubeApiError`: the server's status, reason and `Status.message`, or `status` `None`
when no answer arrived (connection refused, timeout, TLS failure, no credentials).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
USER_AGENT = "azure-identity-operator"
RELOGIN_SECONDS = 300.0
"""How often the credentials are read again although the server still accepts them (projected
service-account tokens are refreshed by the kubelet long before they expire)."""
EXPIRATION_MARGIN_SECONDS = 30.0
"""Credentials whose login reported an expiration are renewed this long before it."""
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)

Login = Callable[[], kopf.ConnectionInfo]
"""Returns the credentials to use; blocking (it may read files): called in a worker thread."""


class KubeApiError(Exception):
    """The Kubernetes API refused a request (`status`), or no answer arrived (`status` is `None`)."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        if status is None:
            text = f"the Kubernetes API could not be reached: {message}"
        else:
            text = f"the Kubernetes API answered {status} {reason}: {message}"
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.message = message


def login(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo:
    """The operator's credentials, as its kopf logs in: the pod's service account, else the kubeconfig
    (`KUBECONFIG`, else `~/.kube/config`, with its current context). Blocking: it reads files."""
    settings = settings if settings is not None else kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no credentials: neither a service account token nor a kubeconfig was found")
    return info


def authorization(info: kopf.ConnectionInfo) -> str | None:
    """The `Authorization` header for these credentials (as kopf's own client sends it), if any."""
    if info.username and info.password:
        pair = f"{info.username}:{info.password}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"
    if info.scheme and info.token:
        return f"{info.scheme} {info.token}"
    if info.scheme:
        return info.scheme
    if info.token:
        return f"Bearer {info.token}"
    return None


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    """Trust the CA the credentials name (the system's CAs if none), present their client certificate if
    any; `insecure` verifies nothing. Blocking: reads the files."""
    context = ssl.create_default_context(
        cafile=os.fsdecode(info.ca_path) if info.ca_path else None,
        cadata=_pem(info.ca_data) if info.ca_data else None,
    )
    with contextlib.ExitStack() as stack:
        certificate = _file(stack, info.certificate_path, info.certificate_data)
        key = _file(stack, info.private_key_path, info.private_key_data)
        if certificate is not None:
            context.load_cert_chain(certfile=certificate, keyfile=key)
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _pem(data: str | bytes) -> str:
    """PEM text as given, or decoded from the base64 of it (as kubeconfigs' `*-data` fields hold it)."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    if text.lstrip().startswith("-----BEGIN "):
        return text
    return base64.b64decode(text).decode("ascii")


def _file(
    stack: contextlib.ExitStack,
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None,
    data: str | bytes | None,
) -> str | None:
    """A path to the PEM: the one given, or a private temporary file holding `data`, removed when the
    stack closes."""
    if path:
        return os.fsdecode(path)
    if not data:
        return None
    # Created readable by this user only; the stack removes it once the context has loaded it.
    handle = stack.enter_context(tempfile.NamedTemporaryFile(prefix="kube-", suffix=".pem"))  # noqa: SIM115
    handle.write(_pem(data).encode("ascii"))
    handle.flush()
    return handle.name


def _transport(info: kopf.ConnectionInfo) -> tuple[Any, ...]:
    """What the session itself depends on; the rest (the Authorization header) changes without a new one."""
    return (
        info.server,
        info.ca_path,
        info.ca_data,
        info.insecure,
        info.certificate_path,
        info.certificate_data,
        info.private_key_path,
        info.private_key_data,
        info.proxy_url,
        info.trust_env,
    )


@dataclasses.dataclass(eq=False)
class _Session:
    """An aiohttp session for one server and TLS setup; the requests running on it."""

    session: aiohttp.ClientSession
    transport: tuple[Any, ...]
    server: str
    proxy: str | None
    in_flight: int = 0
    retired: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class _Login:
    """One login's session and headers; a new login that changes only the token keeps the session."""

    session: _Session
    headers: Mapping[str, str]
    renew_at: float
    """`time.monotonic()` after which the credentials are read again."""


class KubeClient:
    """JSON requests to the Kubernetes API with the operator's credentials; one aiohttp session, created on
    the first request (inside the running event loop)."""

    def __init__(
        self,
        login: Login = login,
        *,
        relogin_interval: float = RELOGIN_SECONDS,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._login_function = login
        self._relogin_interval = relogin_interval
        self._user_agent = user_agent
        self._current: _Login | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> Any:
        """Send `body` (as JSON) to `path` (e.g. `/api/v1/namespaces/ns/events`); the decoded answer.

        Raises `KubeApiError` for any status from 400 on and when no answer arrives. A 401 logs in again
        and repeats the request once.
        """
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        current = await self._logged_in()
        status, reason, payload = await self._send(current, method, path, params, data, content_type)
        if status == 401:
            current = await self._logged_in(refused=current)
            status, reason, payload = await self._send(current, method, path, params, data, content_type)
        if status >= 400:
            raise KubeApiError(status, reason, _status_message(payload, reason))
        return payload

    async def close(self) -> None:
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            await current.session.session.close()

    async def _send(
        self,
        current: _Login,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        content_type: str,
    ) -> tuple[int, str, Any]:
        headers = dict(current.headers)
        if data is not None:
            headers["Content-Type"] = content_type
        session = current.session
        session.in_flight += 1
        try:
            async with session.session.request(
                method,
                session.server + path,
                params=params,
                data=data,
                headers=headers,
                proxy=session.proxy,
                timeout=REQUEST_TIMEOUT,
            ) as response:
                raw = await response.read()
                status, reason = response.status, response.reason or ""
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeApiError(None, "", _describe(error)) from error
        finally:
            session.in_flight -= 1
            if session.retired and session.in_flight == 0:
                await session.session.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return status, reason, payload

    def _usable(self, refused: _Login | None) -> _Login | None:
        current = self._current
        if current is None or current is refused or time.monotonic() >= current.renew_at:
            return None
        return current

    async def _logged_in(self, *, refused: _Login | None = None) -> _Login:
        """The current login; a new one if it is due, or if `refused` (answered 401) is still current."""
        current = self._usable(refused)
        if current is not None:
            return current
        async with self._lock:
            current = self._usable(refused)
            if current is not None:
                return current  # another request logged in meanwhile
            if self._closed:
                raise KubeApiError(None, "", "the client is closed")
            try:
                info = await asyncio.to_thread(self._login_function)
            except Exception as error:
                raise KubeApiError(None, "", f"logging in: {_describe(error)}") from error
            previous = self._current.session if self._current is not None else None
            self._current = _Login(
                session=await self._session_for(info, previous=previous),
                headers=self._headers(info),
                renew_at=self._renew_at(info),
            )
            return self._current

    def _headers(self, info: kopf.ConnectionInfo) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": self._user_agent}
        header = authorization(info)
        if header is not None:
            headers["Authorization"] = header
        return headers

    def _renew_at(self, info: kopf.ConnectionInfo) -> float:
        renew_at = time.monotonic() + self._relogin_interval
        if info.expiration is not None:
            expiration = info.expiration
            if expiration.tzinfo is None:
                expiration = expiration.replace(tzinfo=datetime.UTC)
            remaining = (expiration - datetime.datetime.now(datetime.UTC)).total_seconds()
            renew_at = min(renew_at, time.monotonic() + max(remaining - EXPIRATION_MARGIN_SECONDS, 0.0))
        return renew_at

    async def _session_for(self, info: kopf.ConnectionInfo, *, previous: _Session | None) -> _Session:
        transport = _transport(info)
        if previous is not None and previous.transport == transport:
            return previous
        context: ssl.SSLContext | bool = True  # plain HTTP (a local test server): nothing to verify
        if not info.server.startswith("http://"):
            try:
                context = await asyncio.to_thread(ssl_context, info)
            except (OSError, ValueError) as error:
                raise KubeApiError(None, "", f"setting up TLS: {_describe(error)}") from error
        session = _Session(
            session=aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=0),
                trust_env=info.trust_env,
            ),
            transport=transport,
            server=info.server.rstrip("/"),
            proxy=info.proxy_url,
        )
        if previous is not None:
            # The server or its TLS changed: requests still running on the old session finish first.
            previous.retired = True
            if previous.in_flight == 0:
                await previous.session.close()
        return session


def _status_message(payload: Any, reason: str) -> str:
    """The `message` of the API server's Status answer, else the payload's text, else the reason."""
    if isinstance(payload, Mapping) and payload.get("message"):
        return str(payload["message"])
    if isinstance(payload, str) and payload.strip():
        return payload.strip()[:500]
    return reason


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
