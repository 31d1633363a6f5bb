"""One Azure session for the whole operator: the credential, the ARM pipeline settings, the clients per
subscription, and the translation of SDK exceptions into `ArmError`.

The credential is `azure.identity.aio.DefaultAzureCredential`, so the operator authenticates the way the
environment says (workload identity, managed identity, client secret) without code changes. Clients are
created lazily per subscription and closed together at shutdown.

Sovereign clouds: an ARM endpoint of Azure US Government or Azure China alone is enough. Their ARM rejects
a token for the public cloud's audience, and their tenants live at their own Entra authority, so unless
`AZURE_RESOURCE_MANAGER_AUDIENCE` or `AZURE_AUTHORITY_HOST` say otherwise both follow the endpoint, with
the values the SDK itself uses for those clouds (`azure.mgmt.core.tools.get_arm_endpoints`,
`azure.identity.AzureAuthorityHosts`). `DefaultAzureCredential` hands that authority to its environment
(client secret, certificate) credential only; its workload identity credential reads `AZURE_AUTHORITY_HOST`
itself, which the AKS workload identity webhook sets for the cluster's cloud.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

# Only the authority-host constants of the package root; every credential used is from `.aio`.
import azure.identity
from azure.core import AzureClouds
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy, SansIOHTTPPolicy
from azure.core.pipeline.transport import AsyncHttpResponse, HttpRequest, HttpResponse
from azure.identity.aio import DefaultAzureCredential
from azure.mgmt.core.tools import get_arm_endpoints

from azure_identity_operator import config
from azure_identity_operator.arm import budget
from azure_identity_operator.arm.budget import ArmBudget
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.observability import metrics as observability_metrics
from azure_identity_operator.observability.metrics import OperatorMetrics

logger = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")


class ArmBudgetPolicy(AsyncHTTPPolicy[HttpRequest, AsyncHttpResponse]):
    """Every ARM request attempt waits for a token of its subscription's bucket (`arm.budget`), and every
    answer keeps the bucket in step with ARM's own count. A per-retry policy: retries pay too."""

    def __init__(self, budget: ArmBudget) -> None:
        super().__init__()
        self._budget = budget

    async def send(
        self, request: PipelineRequest[HttpRequest]
    ) -> PipelineResponse[HttpRequest, AsyncHttpResponse]:
        http_request = request.http_request
        kind = budget.kind_of(http_request.method)
        subscription = budget.subscription_of(urllib.parse.urlsplit(http_request.url).path)
        await self._budget.acquire(subscription, kind)
        response = await self.next.send(request)
        http_response = response.http_response
        self._budget.observe(subscription, kind, http_response.headers, http_response.status_code)
        return response


class ArmRequestObserver(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Records every ARM request attempt (metrics: operation, method, status code, latency, throttling) and
    logs it with its ARM request ID, the key Azure support asks for.

    It runs after the retry policy, so each attempt is seen: a throttled attempt shows as a 429 with the
    wait Azure asked for, followed by the attempt that was resent.
    """

    _STARTED = "azure_identity_operator_started"

    def __init__(self, metrics: OperatorMetrics | None = None) -> None:
        self._metrics = metrics if metrics is not None else observability_metrics.OPERATOR

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        request.context[self._STARTED] = time.monotonic()

    def on_response(
        self, request: PipelineRequest[HttpRequest], response: PipelineResponse[HttpRequest, HttpResponse]
    ) -> None:
        http_request = request.http_request
        http_response = response.http_response
        operation, seconds = self._observe(request, http_response.status_code)
        retry_after = _retry_after_seconds(http_response.headers)
        if http_response.status_code == 429:
            self._metrics.record_throttle(operation=operation, wait_seconds=retry_after or 0.0)
        # Failures are worth a line without --verbose; a 404 answering a read is how the operator learns
        # that something does not exist yet, so it is not one.
        failed = http_response.status_code >= 400 and not (
            http_response.status_code == 404 and http_request.method == "GET"
        )
        logger.log(
            logging.INFO if failed else logging.DEBUG,
            "ARM %s %s -> %s",
            http_request.method,
            http_request.url.split("?", 1)[0],
            http_response.status_code,
            extra={
                "arm_request_id": http_response.headers.get("x-ms-request-id"),
                "arm_operation": operation,
                "http_method": http_request.method,
                "status_code": http_response.status_code,
                "duration_seconds": round(seconds, 4),
                "retry_after_seconds": retry_after,
            },
        )

    def on_exception(self, request: PipelineRequest[HttpRequest]) -> None:
        operation, seconds = self._observe(request, None)
        logger.info(
            "ARM %s %s failed without a response",
            request.http_request.method,
            request.http_request.url.split("?", 1)[0],
            extra={
                "arm_operation": operation,
                "http_method": request.http_request.method,
                "duration_seconds": round(seconds, 4),
            },
        )

    def _observe(self, request: PipelineRequest[HttpRequest], status_code: int | None) -> tuple[str, float]:
        http_request = request.http_request
        started = request.context.get(self._STARTED)
        seconds = time.monotonic() - started if isinstance(started, float) else 0.0
        operation = observability_metrics.arm_operation(
            http_request.method, urllib.parse.urlsplit(http_request.url).path
        )
        self._metrics.record_arm_request(
            operation=operation, method=http_request.method, status_code=status_code, seconds=seconds
        )
        return operation, seconds


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds)."""
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        raw = headers.get(name)
        if raw:
            with contextlib.suppress(ValueError):
                return float(raw) * scale
    return None


@dataclasses.dataclass(frozen=True)
class Cloud:
    """Where one Azure cloud's ARM and Entra live, and the scope of an ARM token there."""

    resource_manager_host: str
    credential_scope: str
    authority_host: str


def _cloud(cloud: AzureClouds, authority_host: str) -> Cloud:
    endpoints = get_arm_endpoints(cloud)
    return Cloud(
        resource_manager_host=str(urllib.parse.urlsplit(endpoints["resource_manager"]).hostname),
        credential_scope=str(endpoints["credential_scopes"][0]),
        authority_host=f"https://{authority_host}",
    )


KNOWN_CLOUDS = (
    _cloud(AzureClouds.AZURE_PUBLIC_CLOUD, azure.identity.AzureAuthorityHosts.AZURE_PUBLIC_CLOUD),
    _cloud(AzureClouds.AZURE_US_GOVERNMENT, azure.identity.AzureAuthorityHosts.AZURE_GOVERNMENT),
    _cloud(AzureClouds.AZURE_CHINA_CLOUD, azure.identity.AzureAuthorityHosts.AZURE_CHINA),
)


def cloud_of(resource_manager_endpoint: str) -> Cloud | None:
    """The Azure cloud whose ARM `resource_manager_endpoint` is, or None (a private endpoint, an emulator)."""
    host = (urllib.parse.urlsplit(resource_manager_endpoint).hostname or "").lower()
    return next((cloud for cloud in KNOWN_CLOUDS if cloud.resource_manager_host == host), None)


def credential_scope(settings: config.Settings) -> str:
    """The scope of ARM tokens: the configured audience's, else the scope of the endpoint's cloud."""
    cloud = cloud_of(settings.resource_manager_endpoint)
    audience_configured = settings.resource_manager_audience.rstrip("/") != config.PUBLIC_CLOUD_AUDIENCE
    if cloud is not None and not audience_configured:
        return cloud.credential_scope
    return settings.credential_scope


def authority_host(settings: config.Settings) -> str | None:
    """The Entra authority: the configured one, else the endpoint's cloud's; None leaves it to the SDK."""
    if settings.authority_host:
        return settings.authority_host
    cloud = cloud_of(settings.resource_manager_endpoint)
    return cloud.authority_host if cloud is not None else None


class AzureSession:
    """Owns the credential and the SDK clients; adapters ask it for a client and for error translation."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        credential_kwargs: dict[str, Any] = {}
        authority = authority_host(settings)
        if authority:
            credential_kwargs["authority"] = authority
        self.credential = DefaultAzureCredential(**credential_kwargs)
        self.credential_scope = credential_scope(settings)
        self.budget = ArmBudget(budget.parse_limits(settings.arm_buckets, share=settings.arm_budget_share))
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, factory: Callable[..., ClientT], subscription_id: str) -> ClientT:
        """The client built by `factory` for `subscription_id`, created on first use."""
        key = (getattr(factory, "__qualname__", repr(factory)), subscription_id.lower())
        client = self._clients.get(key)
        if client is None:
            client = factory(
                self.credential,
                subscription_id,
                base_url=self.settings.resource_manager_endpoint,
                credential_scopes=[self.credential_scope],
                per_retry_policies=[ArmBudgetPolicy(self.budget), ArmRequestObserver()],
                connection_timeout=self.settings.arm_timeout,
                read_timeout=self.settings.arm_timeout,
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self.credential.close()


@contextlib.asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Re-raise any SDK failure inside the block as an `ArmError`, the one error type of the ports."""
    try:
        yield
    except ClientAuthenticationError as error:
        # Before HttpResponseError, of which it is a subclass: the credential itself failed (no token).
        if error.status_code is not None:
            raise _from_http_error(error, default_code="AuthenticationFailed") from error
        raise ArmError(
            status=None, code=_credential_failure_code(error), message=_credential_failure(error)
        ) from error
    except ResourceNotFoundError as error:
        raise _from_http_error(error, default_code="ResourceNotFound") from error
    except HttpResponseError as error:
        raise _from_http_error(error, default_code="HttpError") from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise ArmError(status=None, code="ConnectionError", message=_first_line(error)) from error


def _from_http_error(error: HttpResponseError, *, default_code: str) -> ArmError:
    status = error.status_code
    code = default_code
    message = error.message or str(error)
    odata_error = getattr(error, "error", None)
    if odata_error is not None:
        code = getattr(odata_error, "code", None) or code
        message = getattr(odata_error, "message", None) or message
    headers: Mapping[str, str] = getattr(error.response, "headers", None) or {}
    retry_after: float | None = None
    raw_retry = headers.get("Retry-After")
    if raw_retry:
        with contextlib.suppress(ValueError):
            retry_after = float(raw_retry)
    if status == 401 and code == default_code:
        code = "AuthenticationFailed"
    return ArmError(
        status=status,
        code=code,
        message=_first_line(message),
        request_id=headers.get("x-ms-request-id"),
        retry_after=retry_after,
    )


_ENTRA_ERROR = re.compile(r"Microsoft Entra ID error '\(([\w-]+)\) (AADSTS\d+: [^.']*\.?)")
_MAX_CREDENTIAL_MESSAGE = 600


def _credential_failure_code(error: ClientAuthenticationError) -> str:
    """`AuthenticationFailed` when Entra refused a credential (a person must fix it); `CredentialUnavailable`
    when no credential could ask at all, such as a projected token not mounted yet (usually heals)."""
    if isinstance(error, azure.identity.CredentialUnavailableError):
        return "CredentialUnavailable"
    text = str(error.message or error)
    if _ENTRA_ERROR.search(text) is None and "unavailable" in text.lower():
        return "CredentialUnavailable"
    return "AuthenticationFailed"


def _credential_failure(error: ClientAuthenticationError) -> str:
    """Why the operator's own credential got no token, as one line an SRE can act on.

    DefaultAzureCredential's first line only says that it failed; the reason is further down: Entra's
    answer (`invalid_client AADSTS7000215: Invalid client secret provided.`) when a credential was refused,
    else the list of credentials it tried and why each was unavailable.
    """
    text = str(error.message or error)
    refused = _ENTRA_ERROR.search(text)
    if refused:
        return f"Microsoft Entra ID refused the operator's credential: {refused.group(1)} {refused.group(2)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    attempted = [line for line in lines[1:] if line.split(":", 1)[0].endswith("Credential")]
    summary = " ".join([lines[0], *attempted]) if lines else ""
    return summary[:_MAX_CREDENTIAL_MESSAGE]


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else text
