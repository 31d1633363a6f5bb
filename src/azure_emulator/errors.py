"""Errors the emulator answers with, in the two wire shapes Azure uses.

ARM (and every resource provider behind it) answers `{"error": {"code", "message"}}`; the Entra token
endpoint answers the OAuth2 shape `{"error", "error_description", "error_codes", ...}`. Handlers raise
these exceptions; the server turns them into responses, so no handler builds an error body by hand.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any


class ArmError(Exception):
    """An ARM error response: HTTP status, error code and message (common-types ErrorResponse)."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class EntraError(Exception):
    """An Entra (AAD) OAuth2 error response with its AADSTS number."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{status} {error}: AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self) -> dict[str, Any]:
        trace_id = str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        timestamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} Correlation ID: "
                f"{correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def not_found(code: str, message: str) -> ArmError:
    return ArmError(404, code, message)


def conflict(code: str, message: str) -> ArmError:
    return ArmError(409, code, message)


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return not_found(
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. For "
        "more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def resource_group_not_found(resource_group: str) -> ArmError:
    return not_found("ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")


def location_not_available(location: str, available: list[str], resource_type: str | None) -> ArmError:
    """ARM's answer to a create in a location the resource type (None: a resource group) is not offered in.

    The location is quoted as the caller sent it; the regions are listed by name, comma-separated.
    """
    regions = ",".join(available)
    if resource_type is None:
        return bad_request(
            "LocationNotAvailableForResourceGroup",
            f"The provided location '{location}' is not available for resource group. List of available "
            f"regions is '{regions}'.",
        )
    return bad_request(
        "LocationNotAvailableForResourceType",
        f"The provided location '{location}' is not available for resource type '{resource_type}'. List of "
        f"available regions for the resource type is '{regions}'.",
    )


def invalid_request_content(detail: str) -> ArmError:
    return bad_request(
        "InvalidRequestContent", f"The request content was invalid and could not be deserialized: '{detail}'."
    )
