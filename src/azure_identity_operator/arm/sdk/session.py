"""One Azure session for the whole operator: the credential, the ARM pipeline settings, the clients per
subscription, and the translation of SDK exceptions into `ArmError`.

The credential is `azure.identity.aio.DefaultAzureCredential`, so the operator authenticates the way the
environment says (workload identity, managed identity, client secret) without code changes. Clients are
created lazily per subscription and closed together at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import HttpRequest, HttpResponse
from azure.identity.aio import DefaultAzureCredential

from azure_identity_operator import config
from azure_identity_operator.arm.errors import ArmError

logger = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")


class RequestIdLogging(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Logs every ARM response with its status and ARM request ID, the key Azure support asks for."""

    def on_response(
        self, request: PipelineRequest[HttpRequest], response: PipelineResponse[HttpRequest, HttpResponse]
    ) -> None:
        http_request = request.http_request
        http_response = response.http_response
        logger.debug(
            "ARM %s %s -> %s",
            http_request.method,
            http_request.url.split("?", 1)[0],
            http_response.status_code,
            extra={"arm_request_id": http_response.headers.get("x-ms-request-id")},
        )


class AzureSession:
    """Owns the credential and the SDK clients; adapters ask it for a client and for error translation."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        credential_kwargs: dict[str, Any] = {}
        if settings.authority_host:
            credential_kwargs["authority"] = settings.authority_host
        self.credential = DefaultAzureCredential(**credential_kwargs)
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
                credential_scopes=[self.settings.credential_scope],
                per_call_policies=[RequestIdLogging()],
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
        raise ArmError(status=None, code="AuthenticationFailed", message=_first_line(error)) from error
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


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else text
